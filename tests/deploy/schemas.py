"""Offline schema validation of rendered objects.

Kubernetes' own kinds: kubernetes-validate (PyPI), its JSON schemas of Kubernetes 1.32's
OpenAPI, strict (unknown fields are errors, as `kubectl apply` reports them).

Custom resources (KEDA's ScaledObject, the Prometheus Operator's ServiceMonitor) are not in
Kubernetes' schemas and kubernetes-validate cannot take more: they are checked against the
openAPIV3Schema of their own CRDs, kept verbatim in tests/deploy/crds/ (pinned releases,
sha256 in crds/README.md), with unknown fields made errors the way the API server's strict
field validation reports them; their metadata is checked by kubernetes-validate as a
ConfigMap's.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

from tests.deploy.manifests import KUBERNETES_VERSION, Obj

CRDS = Path(__file__).resolve().parent / "crds"
# file -> sha256 of the upstream file, as recorded in crds/README.md
CRD_FILES = {
    "keda.sh_scaledobjects.yaml": (
        "af35555862a83933b074af14ad439c4b4ceabaf4daa3e9338e9b23e36d308d80"
    ),
    "monitoring.coreos.com_servicemonitors.yaml": (
        "a99047972c9dd7679ce2050b9968e8a08773492e671b3e17abd476d42aa78a32"
    ),
}


class SchemaError(Exception):
    """An object that does not validate, with where and why."""


def _strict(schema: Any) -> Any:
    """The structural schema with `additionalProperties: false` wherever the API server
    would report unknown fields (objects with properties, not preserving unknown fields)."""
    if isinstance(schema, dict):
        schema = {k: _strict(v) for k, v in schema.items()}
        if (
            "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


@functools.cache
def crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> strict JSON schema of every served version of the kept CRDs."""
    schemas = {}
    for name in CRD_FILES:
        crd = yaml.safe_load((CRDS / name).read_text())
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            if version.get("served"):
                schema = copy.deepcopy(version["schema"]["openAPIV3Schema"])
                # metadata: checked as Kubernetes' ObjectMeta below, not as `type: object`.
                schema["properties"].pop("metadata", None)
                schemas[(f"{group}/{version['name']}", kind)] = _strict(schema)
    return schemas


def validate(obj: Obj) -> str:
    """Raise SchemaError unless `obj` validates; return what it was validated against."""
    where = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
    custom = crd_schemas().get((obj.get("apiVersion", ""), obj.get("kind", "")))
    if custom is not None:
        body = {k: v for k, v in obj.items() if k != "metadata"}
        try:
            jsonschema.Draft4Validator(custom).validate(body)
        except jsonschema.ValidationError as e:
            path = ".".join(str(p) for p in e.absolute_path)
            raise SchemaError(f"{where}: {path}: {e.message}") from e
        _validate_kubernetes(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": obj["metadata"]}, where
        )
        return f"CRD {obj['apiVersion']} {obj['kind']}"
    _validate_kubernetes(obj, where)
    return f"Kubernetes {KUBERNETES_VERSION}"


def _validate_kubernetes(obj: Obj, where: str) -> None:
    try:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as e:
        path = ".".join(str(p) for p in e.path)
        raise SchemaError(f"{where}: {path}: {e.message}") from e
    except kubernetes_validate.SchemaNotFoundError as e:
        raise SchemaError(f"{where}: no schema: {e.message}") from e

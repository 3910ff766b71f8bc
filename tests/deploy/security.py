"""Who runs what, and who may connect, in the rendered deploy/k8s objects: the Pod Security
Standards' restricted profile for every pod the kit runs, and a NetworkPolicy for each that
lets in exactly its clients. Each check returns the problems it finds (empty: holds)."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from tests.deploy.manifests import Obj, container, containers, of_kind, pod_spec

WORKLOAD_KINDS = {"Deployment", "Job"}
# Checkov's and the restricted profile's bar for a UID clear of the host's users.
MIN_UID = 10000
# Who may reach each of the kit's pods (app.kubernetes.io/name), port name by port name.
NAMESPACE_CLIENTS = "pods of the namespace"
MONITORING = "namespace monitoring"
ALLOWED_INGRESS = {
    "unetkit-triton": {
        ("grpc", NAMESPACE_CLIENTS),
        ("http", NAMESPACE_CLIENTS),
        ("metrics", MONITORING),
    },
    "unetkit-build": set(),
    "unetkit-locust-master": {("master", "pods unetkit-locust-worker")},
    "unetkit-locust-worker": set(),
}


def workloads(objects: list[Obj]) -> list[Obj]:
    return [o for o in objects if o["kind"] in WORKLOAD_KINDS]


def _triton_deployments(objects: list[Obj]) -> list[Obj]:
    return [
        o
        for o in of_kind(objects, "Deployment")
        if o["metadata"]["labels"].get("app.kubernetes.io/name") == "unetkit-triton"
    ]


def all_containers(workload: Obj) -> list[Obj]:
    spec = pod_spec(workload)
    return [*spec.get("initContainers", []), *spec.get("containers", [])]


def check_restricted(objects: list[Obj]) -> list[str]:
    """Non-root with a fixed high UID, RuntimeDefault seccomp, and in every container no
    privilege escalation, no capabilities, a read-only root filesystem."""
    problems = []
    for workload in workloads(objects):
        name = f"{workload['kind']}/{workload['metadata']['name']}"
        pod = pod_spec(workload).get("securityContext", {})
        if pod.get("runAsNonRoot") is not True or pod.get("runAsUser", 0) < MIN_UID:
            problems.append(
                f"{name}: runAsNonRoot {pod.get('runAsNonRoot')}, UID {pod.get('runAsUser')}"
            )
        if pod.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            problems.append(f"{name}: seccomp {pod.get('seccompProfile')}")
        for c in all_containers(workload):
            context = c.get("securityContext", {})
            capabilities = context.get("capabilities", {})
            if (
                context.get("allowPrivilegeEscalation") is not False
                or capabilities.get("drop") != ["ALL"]
                or capabilities.get("add")
                or context.get("readOnlyRootFilesystem") is not True
                or context.get("privileged")
                or context.get("runAsUser", MIN_UID) < MIN_UID
            ):
                problems.append(f"{name}/{c['name']}: securityContext {context}")
    return problems


def check_secrets_as_files(objects: list[Obj]) -> list[str]:
    """No Secret reaches a container through its environment."""
    problems = []
    for workload in workloads(objects):
        for c in all_containers(workload):
            for var in c.get("env", []):
                if "secretKeyRef" in var.get("valueFrom", {}):
                    problems.append(
                        f"{workload['metadata']['name']}/{c['name']}: {var['name']} from a Secret"
                    )
            for source in c.get("envFrom", []):
                if "secretRef" in source:
                    problems.append(f"{workload['metadata']['name']}/{c['name']}: envFrom {source}")
    return problems


ADMIN_KEY_FILE = PurePosixPath("/etc/unetkit/admin/admin-key")


def check_admin_key(objects: list[Obj]) -> list[str]:
    """The admin key is a file from the Secret the user creates (never an environment
    variable); no Secret is in the manifests."""
    problems = [f"Secret {o['metadata']['name']} rendered" for o in of_kind(objects, "Secret")]
    for deployment in _triton_deployments(objects):
        name = deployment["metadata"]["name"]
        triton = container(deployment, "triton")
        env = {e["name"]: e for e in triton.get("env", [])}
        if "UNETKIT_ADMIN_KEY" in env:
            problems.append(f"{name}: UNETKIT_ADMIN_KEY in the environment")
        if env.get("UNETKIT_ADMIN_KEY_FILE", {}).get("value") != str(ADMIN_KEY_FILE):
            problems.append(f"{name}: UNETKIT_ADMIN_KEY_FILE {env.get('UNETKIT_ADMIN_KEY_FILE')}")
        mounts = [
            m
            for m in triton.get("volumeMounts", [])
            if PurePosixPath(m["mountPath"]) == ADMIN_KEY_FILE.parent
        ]
        volumes = {v["name"]: v for v in pod_spec(deployment).get("volumes", [])}
        secret = volumes.get(mounts[0]["name"], {}).get("secret", {}) if len(mounts) == 1 else {}
        items = {i["key"]: i["path"] for i in secret.get("items", [])}
        if (
            secret.get("secretName") != "unetkit-admin"
            or items != {"admin-key": ADMIN_KEY_FILE.name}
            or not mounts[0].get("readOnly")
        ):
            problems.append(f"{name}: the admin key file is not the Secret unetkit-admin: {secret}")
    for workload in objects:
        if workload["kind"] in {"Deployment", "Job"}:
            for c in containers(workload):
                for var in c.get("env", []):
                    if (
                        "KEY" in var["name"]
                        and "value" in var
                        and var["name"] not in {"UNETKIT_BUILD_KEY", "UNETKIT_ADMIN_KEY_FILE"}
                    ):
                        problems.append(
                            f"{workload['metadata']['name']}: {var['name']} in the manifest"
                        )
    return problems


def _labels(workload: Obj) -> dict[str, str]:
    return workload["spec"]["template"]["metadata"].get("labels", {})


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert not selector.get("matchExpressions"), "matchExpressions are not read here"
    return all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items())


def _source(peer: dict[str, Any]) -> str:
    """Who a `from` entry admits, in ALLOWED_INGRESS's words."""
    if set(peer) == {"podSelector"}:
        labels = peer["podSelector"].get("matchLabels") or {}
        if not labels and not peer["podSelector"].get("matchExpressions"):
            return NAMESPACE_CLIENTS
        return "pods " + labels.get("app.kubernetes.io/name", str(labels))
    if set(peer) == {"namespaceSelector"}:
        labels = peer["namespaceSelector"].get("matchLabels") or {}
        return "namespace " + labels.get("kubernetes.io/metadata.name", str(labels))
    return f"other {peer}"


def ingress_allowed(objects: list[Obj], workload: Obj) -> set[tuple[str, str]] | None:
    """(port, source) pairs the NetworkPolicies let in to this workload's pods; None when no
    policy isolates them (everything may connect). "any" stands for an unrestricted side."""
    policies = [
        p
        for p in of_kind(objects, "NetworkPolicy")
        if "Ingress" in p["spec"].get("policyTypes", ["Ingress"])
        and _selects(p["spec"]["podSelector"], _labels(workload))
    ]
    if not policies:
        return None
    allowed = set()
    for policy in policies:
        for rule in policy["spec"].get("ingress", []):
            sources = [_source(peer) for peer in rule.get("from", [])] or ["any"]
            ports = [str(p.get("port", "any")) for p in rule.get("ports", [])] or ["any"]
            allowed |= {(port, source) for port in ports for source in sources}
    return allowed


def check_network_policies(objects: list[Obj]) -> list[str]:
    """Every pod is isolated by a NetworkPolicy that lets in exactly ALLOWED_INGRESS."""
    problems = []
    for workload in workloads(objects):
        app = _labels(workload).get("app.kubernetes.io/name", "")
        allowed = ingress_allowed(objects, workload)
        if allowed is None:
            problems.append(f"{workload['metadata']['name']}: no NetworkPolicy selects its pods")
        elif allowed != ALLOWED_INGRESS.get(app):
            problems.append(f"{workload['metadata']['name']}: ingress {sorted(allowed)}")
    return problems


SECURITY_CHECKS = [check_restricted, check_secrets_as_files, check_network_policies]

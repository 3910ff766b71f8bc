"""Pod security and network policies of every overlay (tests/deploy/security.py), each
check also shown to catch the manifest that breaks it."""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest

from tests.deploy import invariants as inv
from tests.deploy import security as sec
from tests.deploy.manifests import OVERLAYS, Obj, container, one, pod_spec, render


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("check", sec.SECURITY_CHECKS, ids=lambda c: c.__name__)
def test_security_invariant_holds(overlay: str, check: Callable[[list[Obj]], list[str]]) -> None:
    assert check(render(overlay)) == []


def gpu() -> list[Obj]:
    return copy.deepcopy(render("overlays/gpu"))


def triton_pod(objects: list[Obj]) -> Obj:
    return pod_spec(inv.triton_deployments(objects)[0])


def build_pod(objects: list[Obj]) -> Obj:
    return pod_spec(next(o for o in objects if o["kind"] == "Job"))


def root_triton(objects: list[Obj]) -> None:
    triton_pod(objects)["securityContext"]["runAsUser"] = 0


def low_uid_build(objects: list[Obj]) -> None:
    build_pod(objects)["securityContext"]["runAsUser"] = 1000


def unconfined_seccomp(objects: list[Obj]) -> None:
    triton_pod(objects)["securityContext"]["seccompProfile"] = {"type": "Unconfined"}


def net_raw_for_the_init_container(objects: list[Obj]) -> None:
    init = triton_pod(objects)["initContainers"][0]
    init["securityContext"]["capabilities"]["add"] = ["NET_RAW"]


def writable_root_for_the_build(objects: list[Obj]) -> None:
    build_pod(objects)["containers"][0]["securityContext"]["readOnlyRootFilesystem"] = False


def secret_in_the_environment(objects: list[Obj]) -> None:
    container(inv.triton_deployments(objects)[0], "triton")["env"].append(
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "unetkit-admin", "key": "k"}}}
    )


def metrics_open_to_the_namespace(objects: list[Obj]) -> None:
    policy = one(objects, "NetworkPolicy", "unetkit-triton-metrics")
    policy["spec"]["ingress"][0]["from"] = [{"podSelector": {}}]


def inference_open_to_everyone(objects: list[Obj]) -> None:
    del one(objects, "NetworkPolicy", "unetkit-triton-inference")["spec"]["ingress"][0]["from"]


def build_reachable(objects: list[Obj]) -> None:
    one(objects, "NetworkPolicy", "unetkit-build")["spec"]["ingress"] = [{}]


def no_policies(objects: list[Obj]) -> None:
    objects[:] = [o for o in objects if o["kind"] != "NetworkPolicy"]


BREAKAGES = {
    root_triton: sec.check_restricted,
    low_uid_build: sec.check_restricted,
    unconfined_seccomp: sec.check_restricted,
    net_raw_for_the_init_container: sec.check_restricted,
    writable_root_for_the_build: sec.check_restricted,
    secret_in_the_environment: sec.check_secrets_as_files,
    metrics_open_to_the_namespace: sec.check_network_policies,
    inference_open_to_everyone: sec.check_network_policies,
    build_reachable: sec.check_network_policies,
    no_policies: sec.check_network_policies,
}


@pytest.mark.parametrize("breakage", BREAKAGES, ids=lambda b: b.__name__)
def test_each_security_check_catches_its_breakage(breakage: Callable[[list[Obj]], None]) -> None:
    objects = gpu()
    breakage(objects)
    assert BREAKAGES[breakage](objects), f"{breakage.__name__} went unnoticed"


def test_locust_pods_are_isolated_too() -> None:
    objects = render("overlays/loadtest")
    master, worker = (
        one(objects, "Deployment", f"unetkit-locust-{role}") for role in ("master", "worker")
    )
    assert sec.ingress_allowed(objects, master) == {("master", "pods unetkit-locust-worker")}
    assert sec.ingress_allowed(objects, worker) == set()

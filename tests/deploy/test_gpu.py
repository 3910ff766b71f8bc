"""The GPU route's invariants on the rendered objects (tests/deploy/invariants.py), each also
shown to catch the manifest that breaks it."""

from __future__ import annotations

import copy
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.deploy import invariants as inv
from tests.deploy.manifests import GPU_OVERLAYS, Obj, container, containers, one, render
from unetkit.triton import pytriton_server_dir


@pytest.mark.parametrize("overlay", GPU_OVERLAYS)
@pytest.mark.parametrize("check", inv.GPU_CHECKS, ids=lambda c: c.__name__)
def test_gpu_invariant_holds(overlay: str, check: Callable[[list[Obj]], list[str]]) -> None:
    assert check(render(overlay)) == []


def test_one_release_tag_and_gpu_product_per_unit() -> None:
    objects = render("overlays/gpu-mixed")
    units = {
        inv.product_of(d): (container(d, "triton")["image"], inv.build_job_for(objects, d))
        for d in inv.triton_deployments(objects)
    }
    assert set(units) == {"NVIDIA-H100-80GB-HBM3", "NVIDIA-L4"}
    for product, (image, job) in units.items():
        assert image == "unetkit-triton:26.10"
        assert job is not None and container(job, "build")["image"] == "unetkit-build:26.10"
        assert inv.node_products(job) == [product]


def gpu() -> list[Obj]:
    return copy.deepcopy(render("overlays/gpu"))


def triton(objects: list[Obj]) -> Obj:
    return container(inv.triton_deployments(objects)[0], "triton")


def build(objects: list[Obj]) -> Obj:
    return container(next(o for o in objects if o["kind"] == "Job"), "build")


def env_var(c: Obj, name: str) -> Obj:
    return next(v for v in c["env"] if v["name"] == name)


def retag(objects: list[Obj]) -> None:
    triton(objects)["image"] = "unetkit-triton:26.11"


def other_plugin_folder(objects: list[Obj]) -> None:
    env_var(triton(objects), "UNETKIT_PLUGIN_LIB")["value"] = (
        "/opt/unetkit/plugins/build/libunetkit_plugins.so"
    )


def other_plan_folder(objects: list[Obj]) -> None:
    mount = next(
        m for m in triton(objects)["volumeMounts"] if m["mountPath"].endswith("model_repository")
    )
    mount["subPathExpr"] = "trt$(TRT_TAG)/model_repository"


def writable_for_triton(objects: list[Obj]) -> None:
    for mount in triton(objects)["volumeMounts"]:
        mount.pop("readOnly", None)


def no_gpu_for_triton(objects: list[Obj]) -> None:
    del triton(objects)["resources"]["limits"]["nvidia.com/gpu"]


def job_on_another_product(objects: list[Obj]) -> None:
    job = next(o for o in objects if o["kind"] == "Job")
    affinity = job["spec"]["template"]["spec"]["affinity"]["nodeAffinity"]
    affinity["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0][
        "matchExpressions"
    ][0]["values"] = ["NVIDIA-A100-SXM4-80GB"]


def no_nvidia_entrypoint(objects: list[Obj]) -> None:
    triton(objects)["command"] = ["python3", "-m", "unetkit.cli.triton_service"]


def model_control_explicit(objects: list[Obj]) -> None:
    triton(objects)["args"].append("--model-control-mode=explicit")


def ready_is_live(objects: list[Obj]) -> None:
    triton(objects)["readinessProbe"]["httpGet"]["path"] = "/v2/health/live"


def short_startup(objects: list[Obj]) -> None:
    triton(objects)["startupProbe"]["failureThreshold"] = 6


def short_grace(objects: list[Obj]) -> None:
    inv.triton_deployments(objects)[0]["spec"]["template"]["spec"][
        "terminationGracePeriodSeconds"
    ] = 40


def literal_admin_key(objects: list[Obj]) -> None:
    triton(objects)["env"].append({"name": "UNETKIT_ADMIN_KEY", "value": "s3cret"})


def admin_key_from_env(objects: list[Obj]) -> None:
    env = triton(objects)["env"]
    env.remove(env_var(triton(objects), "UNETKIT_ADMIN_KEY_FILE"))
    env.append(
        {
            "name": "UNETKIT_ADMIN_KEY",
            "valueFrom": {"secretKeyRef": {"name": "unetkit-admin", "key": "admin-key"}},
        }
    )


def admin_key_file_of_another_secret(objects: list[Obj]) -> None:
    volumes = inv.triton_deployments(objects)[0]["spec"]["template"]["spec"]["volumes"]
    next(v for v in volumes if "secret" in v)["secret"]["secretName"] = "someone-elses"


def one_replica_minimum(objects: list[Obj]) -> None:
    next(o for o in objects if o["kind"] == "ScaledObject")["spec"]["minReplicaCount"] = 1


def clamped_request_rate(objects: list[Obj]) -> None:
    trigger = next(o for o in objects if o["kind"] == "ScaledObject")["spec"]["triggers"][0]
    numerator, denominator = trigger["metadata"]["query"].split(" / ")
    trigger["metadata"]["query"] = f"{numerator} / clamp_min({denominator}, 1)"


def committed_secret(objects: list[Obj]) -> None:
    objects.append({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "unetkit-admin"}})


def node_port(objects: list[Obj]) -> None:
    one(objects, "Service", "unetkit-triton")["spec"]["type"] = "NodePort"


def load_balancer(objects: list[Obj]) -> None:
    one(objects, "Service", "unetkit-triton-metrics")["spec"]["type"] = "LoadBalancer"


def host_port(objects: list[Obj]) -> None:
    triton(objects)["ports"][1]["hostPort"] = 8001


def metrics_port_renamed(objects: list[Obj]) -> None:
    triton(objects)["ports"][2]["name"] = "prometheus"


def service_misses_pods(objects: list[Obj]) -> None:
    one(objects, "Service", "unetkit-triton")["spec"]["selector"]["app.kubernetes.io/name"] = (
        "triton"
    )


def scaled_on_averagevalue(objects: list[Obj]) -> None:
    next(o for o in objects if o["kind"] == "ScaledObject")["spec"]["triggers"][0]["metricType"] = (
        "AverageValue"
    )


def query_of_other_product(objects: list[Obj]) -> None:
    trigger = next(o for o in objects if o["kind"] == "ScaledObject")["spec"]["triggers"][0]
    trigger["metadata"]["query"] = trigger["metadata"]["query"].replace(
        "NVIDIA-H100-80GB-HBM3", "NVIDIA-L4"
    )


def query_on_gpu_utilization(objects: list[Obj]) -> None:
    trigger = next(o for o in objects if o["kind"] == "ScaledObject")["spec"]["triggers"][0]
    trigger["metadata"]["query"] = 'avg(nv_gpu_utilization{namespace="unetkit"})'


def replicas_in_manifest(objects: list[Obj]) -> None:
    inv.triton_deployments(objects)[0]["spec"]["replicas"] = 2


def unscraped(objects: list[Obj]) -> None:
    next(o for o in objects if o["kind"] == "ServiceMonitor")["spec"]["selector"]["matchLabels"][
        "app.kubernetes.io/component"
    ] = "server"


def pvc_left_out_of_the_build(objects: list[Obj]) -> None:
    del one(objects, "PersistentVolumeClaim", "unetkit-plans")["metadata"]["labels"][
        "unetkit.dev/stage"
    ]


def triton_in_the_build(objects: list[Obj]) -> None:
    inv.triton_deployments(objects)[0]["metadata"]["labels"]["unetkit.dev/stage"] = "build"


BREAKAGES = {
    retag: inv.check_release,
    other_plugin_folder: inv.check_plan_handover,
    other_plan_folder: inv.check_plan_handover,
    writable_for_triton: inv.check_plan_handover,
    no_gpu_for_triton: inv.check_gpu_placement,
    job_on_another_product: inv.check_gpu_placement,
    no_nvidia_entrypoint: inv.check_entrypoints,
    model_control_explicit: inv.check_entrypoints,
    ready_is_live: inv.check_probes_and_ports,
    short_startup: inv.check_probes_and_ports,
    short_grace: inv.check_probes_and_ports,
    metrics_port_renamed: inv.check_probes_and_ports,
    literal_admin_key: inv.check_admin_key,
    admin_key_from_env: inv.check_admin_key,
    admin_key_file_of_another_secret: inv.check_admin_key,
    one_replica_minimum: inv.check_autoscaling,
    clamped_request_rate: inv.check_autoscaling,
    committed_secret: inv.check_admin_key,
    node_port: inv.check_not_exposed,
    load_balancer: inv.check_not_exposed,
    host_port: inv.check_not_exposed,
    service_misses_pods: inv.check_services,
    scaled_on_averagevalue: inv.check_autoscaling,
    query_of_other_product: inv.check_autoscaling,
    query_on_gpu_utilization: inv.check_autoscaling,
    replicas_in_manifest: inv.check_autoscaling,
    unscraped: inv.check_autoscaling,
    pvc_left_out_of_the_build: inv.check_build_step,
    triton_in_the_build: inv.check_build_step,
}


@pytest.mark.parametrize("breakage", BREAKAGES, ids=lambda b: b.__name__)
def test_each_invariant_catches_its_breakage(breakage: Callable[[list[Obj]], None]) -> None:
    objects = gpu()
    breakage(objects)
    assert BREAKAGES[breakage](objects), f"{breakage.__name__} went unnoticed"


def test_units_never_share_a_plan_folder() -> None:
    objects = copy.deepcopy(render("overlays/gpu-mixed"))
    for o in objects:
        if o["kind"] in {"Job", "Deployment"}:
            for c in containers(o):
                for var in c.get("env", []):
                    if var["name"] == "UNETKIT_BUILD_KEY":
                        var["value"] = "trt$(TRT_TAG)"
    assert any("share the plan" in p for p in inv.check_plan_handover(objects))


def test_tritonserver_takes_the_deployments_arguments(tmp_path: Path) -> None:
    """The real tritonserver (2.51, the nvidia-pytriton wheel's) parses the command line the
    kit's entry point builds plus the Deployment's args; it stops at the (absent) model
    repository, not at an option. A misspelt option is refused by the same run."""
    binary = pytriton_server_dir() / "bin" / "tritonserver"
    deployment = inv.triton_deployments(render("overlays/gpu"))[0]
    missing = tmp_path / "no-repository"

    def run(argv: list[str]) -> str:
        result = subprocess.run(
            [str(binary), *argv[1:]], capture_output=True, text=True, timeout=60, cwd=tmp_path
        )
        assert result.returncode != 0
        return result.stdout + result.stderr

    log = run(inv.tritonserver_argv(deployment, missing))
    assert f"failed to stat file {missing}" in log, log
    assert "unrecognized option" not in log and "Usage:" not in log, log
    broken = [*inv.tritonserver_argv(deployment, missing), "--grpc-max-conection-age=1"]
    assert "unrecognized option" in run(broken)

"""The kit's invariants on rendered deploy/k8s objects, each check a function that returns
the problems it finds (empty: holds). The tests run them on the real renders and on
deliberately broken copies, so none of them can pass on anything."""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

import promql_parser

from tests.deploy.manifests import (
    KIT_ROOT,
    Obj,
    VolumeFile,
    container,
    container_env,
    containers,
    image_name,
    image_tag,
    locate,
    of_kind,
    pod_spec,
)
from tests.deploy.security import check_admin_key
from unetkit.cli import build_engine, build_service
from unetkit.core import MODEL_NAME
from unetkit.triton import tritonserver_command

NVIDIA_ENTRYPOINT = "/opt/nvidia/nvidia_entrypoint.sh"
TRITON_COMMAND = [NVIDIA_ENTRYPOINT, "python3", "-m", "unetkit.cli.triton_service"]
BUILD_COMMAND = [NVIDIA_ENTRYPOINT, "python3", "-m", "unetkit.cli.build_service"]
GPU = "nvidia.com/gpu"
PRODUCT_NODE_LABEL = "nvidia.com/gpu.product"
PRODUCT_POD_LABEL = "unetkit.dev/gpu-product"
PORTS = {"http": 8000, "grpc": 8001, "metrics": 8002}
TRITON_DEFAULT_EXIT_TIMEOUT_S = 30
MIN_STARTUP_S = 600
SERVICE_TYPES_INSIDE = {None, "ClusterIP"}
# Kinds that open a path from outside the cluster by themselves.
EXPOSING_KINDS = {"Ingress", "Gateway", "HTTPRoute", "GRPCRoute", "TCPRoute", "Route"}


def triton_deployments(objects: list[Obj]) -> list[Obj]:
    return [
        o
        for o in of_kind(objects, "Deployment")
        if o["metadata"]["labels"].get("app.kubernetes.io/name") == "unetkit-triton"
    ]


def is_gpu(workload: Obj) -> bool:
    return any(
        GPU in c.get("resources", {}).get(part, {})
        for c in containers(workload)
        for part in ("requests", "limits")
    )


def product_of(workload: Obj) -> str | None:
    return workload["spec"]["template"]["metadata"].get("labels", {}).get(PRODUCT_POD_LABEL)


def build_job_for(objects: list[Obj], deployment: Obj) -> Obj | None:
    """The build Job of the Deployment's unit: the Job of the same GPU product."""
    jobs = [j for j in of_kind(objects, "Job") if product_of(j) == product_of(deployment)]
    return jobs[0] if len(jobs) == 1 else None


def node_products(workload: Obj) -> list[str]:
    """The values of the required node affinity on nvidia.com/gpu.product."""
    affinity = pod_spec(workload).get("affinity", {}).get("nodeAffinity", {})
    terms = affinity.get("requiredDuringSchedulingIgnoredDuringExecution", {}).get(
        "nodeSelectorTerms", []
    )
    values = []
    for term in terms:
        for expression in term.get("matchExpressions", []):
            if expression["key"] == PRODUCT_NODE_LABEL and expression["operator"] == "In":
                values += expression["values"]
    return values


def build_outputs(objects: list[Obj], job: Obj) -> dict[str, VolumeFile | None]:
    """Where the Job's build writes the plan, config.pbtxt and the plugin library: the
    command lines of unetkit/cli/build_service.py (what the Job runs) for the Job's own
    environment, mapped through the Job's volume mounts."""
    build = container(job, "build")
    env = container_env(objects, build)
    steps = build_service.build_steps(env)
    engine = build_engine.parse_args(
        next(s for s in steps if s[1:2] == ["build/build_engine.py"])[2:]
    )
    plan = KIT_ROOT / engine.output.as_posix()
    files = {
        "plan": plan,
        "config": plan.parent.parent / "config.pbtxt",
        "plugin": KIT_ROOT / engine.plugin_lib.as_posix() if engine.plugin_lib else None,
    }
    return {k: locate(objects, job, build, str(v)) if v else None for k, v in files.items()}


def served_inputs(objects: list[Obj], deployment: Obj) -> dict[str, VolumeFile | None]:
    """What Triton's entry point reads (unetkit/cli/triton_service.py): the plan and
    config.pbtxt under UNETKIT_MODEL_REPOSITORY, the library in UNETKIT_PLUGIN_LIB."""
    triton = container(deployment, "triton")
    env = container_env(objects, triton)
    repository = PurePosixPath(env.get("UNETKIT_MODEL_REPOSITORY", "/models")) / MODEL_NAME
    files = {
        "plan": repository / "1" / "model.plan",
        "config": repository / "config.pbtxt",
        "plugin": PurePosixPath(env["UNETKIT_PLUGIN_LIB"]) if "UNETKIT_PLUGIN_LIB" in env else None,
    }
    return {k: locate(objects, deployment, triton, str(v)) if v else None for k, v in files.items()}


def check_release(objects: list[Obj]) -> list[str]:
    """The build Job and Triton of each unit use one TensorRT release: the same image tag,
    the kit's images of it, and TRT_TAG (which names the plugin's build folder) equal."""
    problems = []
    for deployment in filter(is_gpu, triton_deployments(objects)):
        name = deployment["metadata"]["name"]
        job = build_job_for(objects, deployment)
        if job is None:
            problems.append(f"{name}: no build Job for GPU product {product_of(deployment)}")
            continue
        images = {c["name"]: c["image"] for c in containers(deployment)}
        images["build"] = container(job, "build")["image"]
        tags = {image_tag(i) for i in images.values()}
        if len(tags) != 1:
            problems.append(f"{name}: images of different tags {sorted(images.values())}")
        expected = {"build": "unetkit-build", "triton": "unetkit-triton"}
        for c, image in images.items():
            if image_name(image) != expected.get(c, "unetkit-triton"):
                problems.append(f"{name}: container {c} runs {image}")
        for workload, c in ((job, "build"), (deployment, "triton")):
            trt_tag = container_env(objects, container(workload, c)).get("TRT_TAG")
            if trt_tag not in tags:
                problems.append(f"{workload['metadata']['name']}: TRT_TAG={trt_tag}, images {tags}")
    return problems


def check_plan_handover(objects: list[Obj]) -> list[str]:
    """Triton loads the very plan, config and plugin library its unit's Job writes, from a
    persistent volume, read-only; units never share a plan folder."""
    problems = []
    seen: dict[VolumeFile | None, str] = {}
    for deployment in filter(is_gpu, triton_deployments(objects)):
        name = deployment["metadata"]["name"]
        job = build_job_for(objects, deployment)
        if job is None:
            problems.append(f"{name}: no build Job")
            continue
        written, read = build_outputs(objects, job), served_inputs(objects, deployment)
        for key in ("plan", "config", "plugin"):
            w, r = written[key], read[key]
            if w is None or r is None or (w.volume, w.path) != (r.volume, r.path):
                problems.append(f"{name}: {key}: the Job writes {w}, Triton reads {r}")
            elif not w.volume.startswith("pvc/") or w.read_only or not r.read_only:
                problems.append(
                    f"{name}: {key} in {w.volume} (job ro={w.read_only}, triton ro={r.read_only})"
                )
        plan = written["plan"]
        if plan in seen:
            problems.append(f"{name} and {seen[plan]} share the plan {plan}")
        seen[plan] = name
        waiter = [
            c
            for c in pod_spec(deployment).get("initContainers", [])
            if c["name"] == "wait-for-plan"
        ]
        if not waiter:
            problems.append(f"{name}: no init container waits for the plan")
        else:
            folder = locate(objects, deployment, waiter[0], waiter[0]["workingDir"])
            if plan is None or folder is None or folder.path != plan.path.parent.parent.parent:
                problems.append(f"{name}: wait-for-plan looks in {folder}, the plan is {plan}")
    return problems


def check_gpu_placement(objects: list[Obj]) -> list[str]:
    """One GPU per Triton pod and per build, on nodes of the unit's product only; the
    product in the node affinity, the pod label and the build key agree."""
    problems = []
    for deployment in filter(is_gpu, triton_deployments(objects)):
        name = deployment["metadata"]["name"]
        job = build_job_for(objects, deployment)
        product = product_of(deployment)
        for workload, c in ((deployment, "triton"), (job, "build")):
            if workload is None:
                problems.append(f"{name}: no build Job")
                continue
            resources = container(workload, c).get("resources", {})
            for part in ("requests", "limits"):
                if str(resources.get(part, {}).get(GPU)) != "1":
                    problems.append(f"{workload['metadata']['name']}: {part}.{GPU} != 1")
            if node_products(workload) != [product]:
                nodes = node_products(workload)
                problems.append(f"{workload['metadata']['name']}: nodes {nodes}, pods {product}")
            env = container_env(objects, container(workload, c))
            if env.get("GPU_PRODUCT") != product or product not in env.get("UNETKIT_BUILD_KEY", ""):
                problems.append(
                    f"{workload['metadata']['name']}: build key {env.get('UNETKIT_BUILD_KEY')}"
                )
            if f"trt{env.get('TRT_TAG')}" not in env.get("UNETKIT_BUILD_KEY", ""):
                problems.append(f"{workload['metadata']['name']}: build key lacks the release")
    return problems


def check_entrypoints(objects: list[Obj]) -> list[str]:
    """NVIDIA's entry point first (CUDA forward compatibility), then the kit's; Triton's
    command line keeps model control off and its graceful exit within the grace period."""
    problems = []
    for deployment in filter(is_gpu, triton_deployments(objects)):
        triton = container(deployment, "triton")
        if triton.get("command") != TRITON_COMMAND:
            problems.append(f"{deployment['metadata']['name']}: command {triton.get('command')}")
        args = triton.get("args", [])
        if any(
            a.startswith(("--model-control-mode", "--load-model", "--model-repository"))
            for a in args
        ):
            problems.append(f"{deployment['metadata']['name']}: args change model control: {args}")
        job = build_job_for(objects, deployment)
        if job is not None and container(job, "build").get("command") != BUILD_COMMAND:
            problems.append(
                f"{job['metadata']['name']}: command {container(job, 'build').get('command')}"
            )
    return problems


def exit_timeout(c: Obj) -> int:
    for arg in c.get("args", []):
        if arg.startswith("--exit-timeout-secs="):
            return int(arg.split("=", 1)[1])
    return TRITON_DEFAULT_EXIT_TIMEOUT_S


def pre_stop_seconds(c: Obj) -> int:
    command = c.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
    return int(command[1]) if command[:1] == ["sleep"] else 0


def _probe(c: Obj, kind: str) -> dict[str, Any]:
    return c.get(kind) or {}


def check_probes_and_ports(objects: list[Obj]) -> list[str]:
    """Ready means model loaded; live means the process; a startup probe covers model load;
    SIGKILL comes only after Triton's own exit timeout; the three named ports."""
    problems = []
    for deployment in triton_deployments(objects):
        name = deployment["metadata"]["name"]
        triton = container(deployment, "triton")
        ports = {p["name"]: p["containerPort"] for p in triton.get("ports", [])}
        if ports != PORTS:
            problems.append(f"{name}: ports {ports}")
        expected = {
            "readinessProbe": "/v2/health/ready",
            "livenessProbe": "/v2/health/live",
            "startupProbe": "/v2/health/ready",
        }
        for kind, path in expected.items():
            http = _probe(triton, kind).get("httpGet", {})
            if http.get("path") != path or ports.get(http.get("port")) != PORTS["http"]:
                problems.append(f"{name}: {kind} {http}")
        startup = _probe(triton, "startupProbe")
        window = startup.get("periodSeconds", 10) * startup.get("failureThreshold", 3)
        if window < MIN_STARTUP_S:
            problems.append(f"{name}: startup probe allows {window} s for model load")
        grace = pod_spec(deployment).get("terminationGracePeriodSeconds", 30)
        if grace <= pre_stop_seconds(triton) + exit_timeout(triton):
            problems.append(
                f"{name}: grace {grace} s <= preStop + exit timeout {exit_timeout(triton)} s"
            )
    return problems


def check_not_exposed(objects: list[Obj]) -> list[str]:
    """Nothing is reachable from outside the cluster by default."""
    problems = []
    for o in objects:
        name = f"{o['kind']}/{o['metadata']['name']}"
        if o["kind"] in EXPOSING_KINDS:
            problems.append(f"{name} exposes the cluster")
        if o["kind"] == "Service":
            spec = o["spec"]
            if spec.get("type") not in SERVICE_TYPES_INSIDE or spec.get("externalIPs"):
                problems.append(
                    f"{name}: type {spec.get('type')}, externalIPs {spec.get('externalIPs')}"
                )
        if o["kind"] in {"Deployment", "Job", "DaemonSet", "StatefulSet"}:
            spec = pod_spec(o)
            if spec.get("hostNetwork") or spec.get("hostPID"):
                problems.append(f"{name}: host network/PID")
            for c in containers(o):
                for port in c.get("ports", []):
                    if "hostPort" in port:
                        problems.append(f"{name}: hostPort {port['hostPort']}")
    return problems


def _matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def check_services(objects: list[Obj]) -> list[str]:
    """gRPC and HTTP through unetkit-triton, metrics through unetkit-triton-metrics, each
    reaching every Triton pod; each unit's selector its own; the PDB covers its unit."""
    problems = []
    services = {s["metadata"]["name"]: s for s in of_kind(objects, "Service")}
    wanted = {"unetkit-triton": {"grpc", "http"}, "unetkit-triton-metrics": {"metrics"}}
    deployments = triton_deployments(objects)
    for service_name, names in wanted.items():
        service = services.get(service_name)
        if service is None:
            problems.append(f"no Service {service_name}")
            continue
        ports = {p["name"]: (p["port"], p["targetPort"]) for p in service["spec"]["ports"]}
        if ports != {n: (PORTS[n], n) for n in names}:
            problems.append(f"{service_name}: ports {ports}")
        for deployment in deployments:
            if not _matches(
                service["spec"]["selector"], deployment["spec"]["template"]["metadata"]["labels"]
            ):
                problems.append(f"{service_name} misses {deployment['metadata']['name']}")
    for deployment in deployments:
        selector = deployment["spec"]["selector"]["matchLabels"]
        for other in deployments:
            if other is not deployment and _matches(
                selector, other["spec"]["template"]["metadata"]["labels"]
            ):
                problems.append(
                    f"{deployment['metadata']['name']} selects {other['metadata']['name']}'s pods"
                )
        pdbs = [
            p
            for p in of_kind(objects, "PodDisruptionBudget")
            if p["spec"]["selector"]["matchLabels"] == selector
        ]
        if len(pdbs) != 1:
            problems.append(f"{deployment['metadata']['name']}: {len(pdbs)} PodDisruptionBudgets")
    return problems


def _selectors(expression: Any) -> list[Any]:
    """Every vector selector of a parsed PromQL expression."""
    if isinstance(expression, promql_parser.VectorSelector):
        return [expression]
    if isinstance(expression, promql_parser.MatrixSelector):
        return [expression.vector_selector]
    children: list[Any] = []
    for attribute in ("lhs", "rhs", "expr", "param"):
        children.append(getattr(expression, attribute, None))
    children += list(getattr(expression, "args", None) or [])
    return [s for child in children if child is not None for s in _selectors(child)]


def _matchers(selector: Any) -> dict[str, str]:
    return {m.name: m.value for m in selector.matchers.matchers if str(m.op) == "MatchOp.Equal"}


def _trigger_problems(name: str, trigger: dict, deployment: Obj, namespace: str) -> list[str]:
    """What is wrong with one Prometheus trigger of a GPU unit's ScaledObject."""
    problems: list[str] = []
    meta = trigger["metadata"]
    if trigger["type"] != "prometheus" or trigger.get("metricType") != "Value":
        problems.append(f"{name}: trigger {trigger['type']} {trigger.get('metricType')}")
    if not meta.get("serverAddress", "").startswith("http") or float(meta["threshold"]) <= 0:
        problems.append(f"{name}: serverAddress/threshold {meta}")
    try:
        query = promql_parser.parse(meta["query"])
    except ValueError as e:
        problems.append(f"{name}: query does not parse: {e}")
        return problems
    if not isinstance(query, promql_parser.BinaryExpr) or str(query.op) != "/":
        problems.append(f"{name}: query is not a ratio: {meta['query']}")
        return problems
    # A floor on the request rate (clamp_min(..., 1)) understates the queue time
    # whenever fewer requests than that arrive.
    if "clamp_min" in meta["query"] or "clamp(" in meta["query"]:
        problems.append(f"{name}: the request rate is clamped: {meta['query']}")
    numerator = {s.name for s in _selectors(query.lhs)}
    denominator = {s.name for s in _selectors(query.rhs)}
    if (numerator, denominator) != (
        {"nv_inference_queue_duration_us"},
        {"nv_inference_request_success"},
    ):
        problems.append(f"{name}: query divides {numerator} by {denominator}")
    want = {
        "namespace": namespace,
        "model": MODEL_NAME,
        "unetkit_dev_gpu_product": product_of(deployment),
    }
    for selector in _selectors(query):
        if _matchers(selector) != want:
            problems.append(f"{name}: {selector.name} selects {_matchers(selector)}, not {want}")
    return problems


def check_autoscaling(objects: list[Obj], namespace: str = "unetkit") -> list[str]:
    """Each GPU unit scales on its own average queue time per request, read from the
    Prometheus that scrapes Triton's metrics port through the ServiceMonitor."""
    problems = []
    scaled = of_kind(objects, "ScaledObject")
    monitors = of_kind(objects, "ServiceMonitor")
    services = of_kind(objects, "Service")
    for deployment in filter(is_gpu, triton_deployments(objects)):
        name = deployment["metadata"]["name"]
        if "replicas" in deployment["spec"]:
            problems.append(f"{name}: replicas set in the manifest would fight the autoscaler")
        mine = [s for s in scaled if s["spec"]["scaleTargetRef"]["name"] == name]
        if len(mine) != 1:
            problems.append(f"{name}: {len(mine)} ScaledObjects")
            continue
        spec = mine[0]["spec"]
        if spec["scaleTargetRef"].get("kind", "Deployment") != "Deployment":
            problems.append(f"{name}: scale target {spec['scaleTargetRef']}")
        # Two at least: with one, the PodDisruptionBudget cannot keep a pod serving in a drain.
        if not 2 <= spec.get("minReplicaCount", 0) <= spec.get("maxReplicaCount", 100):
            problems.append(
                f"{name}: replicas {spec.get('minReplicaCount')}..{spec.get('maxReplicaCount')}"
            )
        for trigger in spec["triggers"]:
            problems += _trigger_problems(name, trigger, deployment, namespace)
    if any(is_gpu(d) for d in triton_deployments(objects)):
        scraped = [
            s for m in monitors for s in services
            if _matches(m["spec"]["selector"]["matchLabels"], s["metadata"].get("labels", {}))
        ]  # fmt: skip
        if [s["metadata"]["name"] for s in scraped] != ["unetkit-triton-metrics"]:
            problems.append(f"ServiceMonitors scrape {[s['metadata']['name'] for s in scraped]}")
        for m in monitors:
            ports = {e["port"] for e in m["spec"]["endpoints"]}
            if ports != {"metrics"} or PRODUCT_POD_LABEL not in m["spec"].get(
                "podTargetLabels", []
            ):
                problems.append(f"ServiceMonitor {m['metadata']['name']}: {m['spec']}")
    return problems


BUILD_STEP = ("unetkit.dev/stage", "build")


def check_build_step(objects: list[Obj]) -> list[str]:
    """`kubectl apply -k ... -l unetkit.dev/stage=build` (docs/kubernetes.md) applies every
    build Job with all it reads (ConfigMaps, the plans volume) and nothing that holds a GPU
    while waiting: on a product with one free GPU the build must run before any Triton pod
    takes it."""
    key, value = BUILD_STEP
    selected = {
        (o["kind"], o["metadata"]["name"])
        for o in objects
        if o["metadata"].get("labels", {}).get(key) == value
    }
    inputs = {"Job", "ConfigMap", "PersistentVolumeClaim", "NetworkPolicy"}
    problems = [f"{kind}/{name} is in the build step" for kind, name in selected
                if kind not in inputs]  # fmt: skip
    for job in of_kind(objects, "Job"):
        needed = {("Job", job["metadata"]["name"])}
        for c in containers(job):
            for var in c.get("env", []):
                ref = var.get("valueFrom", {}).get("configMapKeyRef")
                if ref:
                    needed.add(("ConfigMap", ref["name"]))
            for source in c.get("envFrom", []):
                needed.add(("ConfigMap", source["configMapRef"]["name"]))
        for volume in pod_spec(job).get("volumes", []):
            if "persistentVolumeClaim" in volume:
                needed.add(("PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"]))
        # The policies that isolate the build's pods apply with it, not after it.
        pod_labels = job["spec"]["template"]["metadata"].get("labels", {})
        for policy in of_kind(objects, "NetworkPolicy"):
            selector = policy["spec"]["podSelector"].get("matchLabels") or {}
            if _matches(selector, pod_labels):
                needed.add(("NetworkPolicy", policy["metadata"]["name"]))
        problems += [f"{job['metadata']['name']} needs {k}/{n}, not in the build step"
                     for k, n in sorted(needed - selected)]  # fmt: skip
    return problems


GPU_CHECKS = (
    check_release,
    check_plan_handover,
    check_gpu_placement,
    check_entrypoints,
    check_probes_and_ports,
    check_admin_key,
    check_not_exposed,
    check_services,
    check_autoscaling,
    check_build_step,
)


def tritonserver_argv(deployment: Obj, repository: Path) -> list[str]:
    """The tritonserver command line the kit's entry point would exec in this pod (the plugin
    left out), with the model repository replaced."""
    return [
        *tritonserver_command(repository, [], "key"),
        *container(deployment, "triton").get("args", []),
    ]

"""The loadtest overlay: Locust's own parser reads the master's and workers' command lines
(with the kit's flags, as in a real run), the master waits for exactly the workers there
are, and everything points at Services that exist."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import PurePosixPath
from typing import Any

from tests.deploy.invariants import check_not_exposed, triton_deployments
from tests.deploy.manifests import KIT_ROOT, Obj, container, one, render
from tests.helpers import REPO_ROOT

PARSE = """
import json, sys
from locust.argument_parser import parse_options
from locust.util.load_locustfile import load_locustfile
load_locustfile("loadtest/locustfile.py")
options = vars(parse_options(args=sys.argv[1:]))
print(json.dumps({k: v for k, v in options.items() if isinstance(v, (str, int, float, bool))}))
"""


def locust_options(args: list[str]) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOCUST_", "UNETKIT_"))}
    result = subprocess.run(
        [sys.executable, "-c", PARSE, *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO_ROOT,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def locust(objects: list[Obj], name: str) -> Obj:
    return container(one(objects, "Deployment", name), "locust")


def test_master_and_workers_command_lines() -> None:
    objects = render("overlays/loadtest")
    master_container = locust(objects, "unetkit-locust-master")
    # sh runs `locust "$@"` with the container's args, then keeps the pod for `kubectl cp`.
    assert master_container["command"][:2] == ["sh", "-c"]
    assert master_container["command"][2].startswith('locust "$@";')
    master = locust_options(master_container["args"])
    worker = locust_options(locust(objects, "unetkit-locust-worker")["args"])
    assert master["master"] and master["headless"] and not master["worker"]
    assert worker["worker"] and not worker["master"]
    workers = one(objects, "Deployment", "unetkit-locust-worker")["spec"]["replicas"]
    assert master["expect_workers"] == workers
    assert master["num_users"] >= workers and master["run_time"] > 0
    # distributed windows: at least 10 s (workers report every 3 s)
    assert master["window"] >= 10
    # workers reach the master through its Service
    service = one(objects, "Service", worker["master_host"])
    assert {p["port"] for p in service["spec"]["ports"]} == {worker["master_port"]}
    assert service["spec"]["selector"].items() <= (
        one(objects, "Deployment", "unetkit-locust-master")["spec"]["template"]["metadata"][
            "labels"
        ].items()
    )
    reports_on_the_volume(master, master_container)


def reports_on_the_volume(master: dict[str, Any], master_container: Obj) -> None:
    mounts = [PurePosixPath(m["mountPath"]) for m in master_container["volumeMounts"]]
    for key in ("csv_prefix", "html_file", "latency_report"):
        path = KIT_ROOT / master[key]
        assert any(m in path.parents for m in mounts), f"{key}: {path} outside {mounts}"


def test_both_point_at_tritons_grpc_service() -> None:
    serving = render("overlays/gpu")
    objects = render("overlays/loadtest")
    for name in ("unetkit-locust-master", "unetkit-locust-worker"):
        url = locust_options(locust(objects, name)["args"])["triton_url"]
        host, _, port = url.partition(":")
        service = one(serving, "Service", host)
        assert {"name": "grpc", "port": int(port)}.items() <= next(
            p for p in service["spec"]["ports"] if p["port"] == int(port)
        ).items()


def test_the_load_generators_use_the_cpu_image_and_stay_inside() -> None:
    objects = render("overlays/loadtest")
    cpu_image = container(triton_deployments(render("overlays/cpu"))[0], "triton")["image"]
    images = {
        locust(objects, n)["image"] for n in ("unetkit-locust-master", "unetkit-locust-worker")
    }
    assert images == {cpu_image}
    assert check_not_exposed(objects) == []


def test_a_wrong_flag_is_refused_by_locust() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOCUST_", "UNETKIT_"))}
    result = subprocess.run(
        [sys.executable, "-c", PARSE, "-f", "loadtest/locustfile.py", "--expect-worker=4x"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO_ROOT,
        env=env,
    )
    assert result.returncode != 0

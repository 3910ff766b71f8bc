"""Faults under load: the backend stub killed, the server stopped and started again.

Each test runs its own Triton (the session server stays untouched) with Locust loading it,
injects the fault, and checks that the failures were counted and that requests succeed
again while the same Locust process keeps running.

What Triton 2.51 (nvidia-pytriton 0.7.0) does when the python backend stub dies: it does
not restart it. Server and model keep reporting ready; each request waits up to the
backend's stub-timeout-seconds (default 30) and fails with INTERNAL "Stub process
'unet_0_0' is not healthy." until the server is restarted.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from tests.helpers.serving import REPO_ROOT
from unetkit.core import INPUT_IMAGE, MODEL_NAME, OUTPUT_MASK
from unetkit.loadgen import locust_command
from unetkit.triton import TritonServer, free_ports

# A dead stub costs each request this long instead of the default 30 s.
STUB_TIMEOUT = "--backend-config=python,stub-timeout-seconds=10"
RECOVERY_DEADLINE_S = 30.0
LOCUST_SECONDS = 40


def server_on(repository: Path, ports: list[int], log_file: Path) -> TritonServer:
    http_port, grpc_port, metrics_port = ports
    return TritonServer(
        repository,
        http_port=http_port,
        grpc_port=grpc_port,
        metrics_port=metrics_port,
        log_file=log_file,
        extra_args=[STUB_TIMEOUT],
    )


@pytest.fixture
def own_server(serving_repository: Path, tmp_path: Path) -> Iterator[TritonServer]:
    with server_on(serving_repository, free_ports(3), tmp_path / "triton.log") as server:
        yield server


def same_ports(server: TritonServer, log_file: Path) -> TritonServer:
    ports = [server.http_port, server.grpc_port, server.metrics_port]
    return server_on(server.model_repository, ports, log_file)


def start_load(server: TritonServer, report: Path) -> subprocess.Popen[str]:
    command = locust_command(
        server.grpc_url,
        MODEL_NAME,
        users=2,
        run_time_s=LOCUST_SECONDS,
        report_path=report,
        extra_args=["--images", str(REPO_ROOT / "samples"), "--window", "1"],
    )
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish_load(locust: subprocess.Popen[str], report: Path) -> tuple[dict, str]:
    try:
        output, _ = locust.communicate(timeout=LOCUST_SECONDS + 60)
    finally:
        if locust.poll() is None:
            locust.kill()
            locust.wait()
    assert report.exists(), output
    return json.loads(report.read_text()), output


def succeeds(url: str) -> bool:
    image = grpcclient.InferInput(INPUT_IMAGE, [1, 64, 64, 1], "UINT8")
    image.set_data_from_numpy(np.zeros((1, 64, 64, 1), np.uint8))
    try:
        with grpcclient.InferenceServerClient(url) as client:
            client.infer(
                MODEL_NAME,
                [image],
                outputs=[grpcclient.InferRequestedOutput(OUTPUT_MASK)],
                client_timeout=10,
            )
    except InferenceServerException:
        return False
    return True


def wait_for(url: str, success: bool) -> float:
    """Seconds until a request succeeds (or fails); fails the test after the deadline."""
    started = time.monotonic()
    while succeeds(url) != success:
        assert time.monotonic() - started < RECOVERY_DEADLINE_S, f"no {success=} in time"
        time.sleep(0.2)
    return time.monotonic() - started


def wait_for_load(locust: subprocess.Popen[str], url: str) -> None:
    """Let the load run a few seconds (so requests are in flight) before the fault."""
    wait_for(url, success=True)
    assert locust.poll() is None
    time.sleep(4)


def assert_recovered_and_counted(report: dict, output: str) -> None:
    assert report["failures"] > 0, "the fault cost no request: it was not under load"
    assert report["requests"] > 0
    last = report["windows"][-3:]
    assert len(last) == 3
    timeline = " ".join(f"{w['requests']}/{w['failures']}" for w in report["windows"])
    assert all(w["failures"] == 0 and w["requests"] > 0 for w in last), timeline + output[-3000:]


def test_killed_backend_stub_fails_requests_until_the_server_restarts(
    own_server: TritonServer, tmp_path: Path
) -> None:
    report_path = tmp_path / "latency.json"
    locust = start_load(own_server, report_path)
    restarted = same_ports(own_server, tmp_path / "triton-restarted.log")
    try:
        wait_for_load(locust, own_server.grpc_url)
        killed = own_server.stub_pids()
        assert killed, "no python backend stub found"
        for pid in killed:
            os.kill(pid, signal.SIGKILL)
        wait_for(own_server.grpc_url, success=False)
        # The stuck model holds a graceful shutdown for Triton's 30 s exit timeout.
        own_server.stop(timeout_s=3)
        restarted.start()
        recovery_s = wait_for(restarted.grpc_url, success=True)
        print(f"first success {recovery_s:.1f} s after the restarted server was ready")
    finally:
        report, output = finish_load(locust, report_path)
        restarted.stop()
    assert "is not healthy" in output
    assert_recovered_and_counted(report, output)


def test_server_restarted_on_the_same_ports_under_load(
    own_server: TritonServer, tmp_path: Path
) -> None:
    report_path = tmp_path / "latency.json"
    locust = start_load(own_server, report_path)
    restarted = same_ports(own_server, tmp_path / "triton-restarted.log")
    try:
        wait_for_load(locust, own_server.grpc_url)
        own_server.stop()
        time.sleep(1)
        restarted.start()
        recovery_s = wait_for(restarted.grpc_url, success=True)
        print(f"first success {recovery_s:.1f} s after the restarted server was ready")
    finally:
        report, output = finish_load(locust, report_path)
        restarted.stop()
    assert_recovered_and_counted(report, output)

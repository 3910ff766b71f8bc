"""The Locust load test and the benchmark, against real Triton servers over real gRPC."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.serving import REPO_ROOT
from unetkit.loadgen import LOCUSTFILE, run_locust
from unetkit.triton import TritonServer, free_ports

SAMPLES = REPO_ROOT / "samples"
NULL_REPOSITORY = REPO_ROOT / "loadtest" / "repository"
STEP_SHAPE = REPO_ROOT / "loadtest" / "step_shape.py"


@pytest.fixture(scope="module")
def null_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    """The echo model: answers fast, with a MASK that is not a segmentation."""
    server = TritonServer.on_free_ports(
        NULL_REPOSITORY,
        model_config_name=None,
        log_file=tmp_path_factory.mktemp("null_log") / "triton.log",
    )
    with server:
        yield server


def test_headless_run_against_the_unet_validates_every_mask(triton: TritonServer) -> None:
    run = run_locust(
        triton.grpc_url,
        "unet",
        users=2,
        run_time_s=10,
        extra_args=["--images", str(SAMPLES), "--validate-fraction", "1", "--min-iou", "0.9"],
    )
    assert run.exit_code == 0, run.output
    assert run.report["failures"] == 0
    assert run.report["requests"] >= 4
    latency = run.report["latency_ms"]
    assert 0 < latency["p50"] <= latency["p90"] <= latency["p99"] <= latency["max"]
    assert "Exact latency of" in run.output


def test_a_fast_wrong_server_fails_validation(null_server: TritonServer) -> None:
    run = run_locust(
        null_server.grpc_url,
        "null",
        users=2,
        run_time_s=3,
        extra_args=["--images", str(SAMPLES), "--validate-fraction", "1"],
    )
    assert run.exit_code == 1, run.output
    assert run.report["requests"] == 0
    assert run.report["failures"] > 0
    assert "IoU with ground truth below 0.8" in run.output


def test_unreachable_server_is_a_one_line_error_and_exit_code_2() -> None:
    (port,) = free_ports(1)
    run = run_locust(f"127.0.0.1:{port}", "unet", users=1, run_time_s=5)
    assert run.exit_code == 2, run.output
    assert "cannot reach model 'unet'" in run.output
    assert "Traceback" not in run.output


def test_step_shape_and_open_loop_reach_every_step(null_server: TritonServer) -> None:
    run = run_locust(
        null_server.grpc_url,
        "null",
        users=1,
        run_time_s=30,
        extra_args=[
            "-f", f"{LOCUSTFILE},{STEP_SHAPE}",
            "--images", str(SAMPLES),
            "--validate-fraction", "0",
            "--step-users", "2", "--step-seconds", "2", "--step-count", "2",
            "--open-loop-rate", "20",
        ],
    )  # fmt: skip
    assert run.exit_code == 0, run.output
    assert run.report["users"] == 4
    assert run.report["open_loop_rate_per_user"] == 20
    assert run.report["requests"] > 0
    assert run.report["failures"] == 0


def test_distributed_master_merges_every_workers_exact_latencies(
    null_server: TritonServer, tmp_path: Path
) -> None:
    (master_port,) = free_ports(1)
    locust = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE)]
    worker = [*locust, "--worker", "--master-host", "127.0.0.1", "--master-port", str(master_port)]
    workers = [subprocess.Popen(worker) for _ in range(2)]
    try:
        master = subprocess.run(
            [
                *locust, "--master", "--expect-workers", "2",
                "--master-bind-host", "127.0.0.1", "--master-bind-port", str(master_port),
                "--headless", "--only-summary", "-u", "4", "-r", "4", "-t", "6s",
                "--triton-url", null_server.grpc_url, "--model-name", "null",
                "--images", str(SAMPLES), "--validate-fraction", "0",
                "--csv", str(tmp_path / "run"),
                "--latency-report", str(tmp_path / "latency.json"),
            ],
            capture_output=True,
            text=True,
            timeout=90,
        )  # fmt: skip
        assert master.returncode == 0, master.stderr
        for worker in workers:
            assert worker.wait(timeout=30) == 0
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    report = json.loads((tmp_path / "latency.json").read_text())
    with open(tmp_path / "run_stats.csv") as f:
        aggregated = next(row for row in csv.DictReader(f) if row["Name"] == "Aggregated")
    assert report["requests"] > 0
    assert report["requests"] == int(aggregated["Request Count"])
    assert report["failures"] == int(aggregated["Failure Count"]) == 0


def test_bench_quick_sweep_writes_the_table(serving_repository: Path, tmp_path: Path) -> None:
    """perf_analyzer and Locust against the served engine, in-process beside each step."""
    output = tmp_path / "bench.md"
    bench = subprocess.run(
        [
            sys.executable, str(REPO_ROOT / "loadtest" / "bench.py"), "--quick",
            "--repository", str(serving_repository), "--output", str(output),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    assert bench.returncode == 0, bench.stdout + bench.stderr
    results = json.loads(output.with_suffix(".json").read_text())
    (served,) = results["served"]
    assert served["default"] and served["engine"] == results["default_engine"]
    (engine,) = results["engines"]
    assert engine["engine"] == served["engine"] and engine["gmac_per_s"] > 0
    assert [step["concurrency"] for step in served["steps"]] == [1, 2]
    for step in served["steps"]:
        perf, locust = step["perf_analyzer"], step["locust"]
        assert perf["images_per_s"] > 0 and perf["p50_ms"] <= perf["p99_ms"]
        assert perf["cpu_ms_per_request"] > 0 and perf["marshal_us"] > 0
        assert locust["failures"] == 0 and locust["images_per_s"] > 0
        assert locust["over_perf_analyzer"] > 0 and locust["cpu_ms_per_request"] > 0
        # in-process before and after perf_analyzer, and after Locust
        assert len(step["inprocess_runs"]) == 3 and min(step["inprocess_runs"]) > 0
        assert step["served_over_inprocess"] > 0
    table = output.read_text()
    assert "| concurrency | images/s | p50 ms | p99 ms |" in table
    assert "Locust / perf_analyzer" in table and "| target | measured | met |" in table
    assert "GMAC/s" in table and "Nominal peak MAC/s" in table


def test_soak_short_run_samples_server_and_stub_memory(
    serving_repository: Path, tmp_path: Path
) -> None:
    output = tmp_path / "soak.md"
    soak = subprocess.run(
        [
            sys.executable, str(REPO_ROOT / "loadtest" / "soak.py"),
            "--repository", str(serving_repository), "--concurrency", "2",
            "--minutes", "0.25", "--warmup-s", "4", "--window-s", "3",
            "--output", str(output),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )  # fmt: skip
    # Exit code 1 is a soak criterion missed (a benchmark verdict), anything else a crash.
    assert soak.returncode in (0, 1), soak.stdout + soak.stderr
    results = json.loads(output.with_suffix(".json").read_text())
    assert results["verdicts"]["failures"] == 0
    assert len(results["verdicts"]["windows"]) >= 3
    names = {name.split("[")[0] for s in results["memory_samples"] for name in s["processes"]}
    assert {"tritonserver", "triton_python_backend_stub"} <= names
    assert results["rss_baseline_mib"] > 0
    assert "| window | req/s | p95 ms | p99 ms | failures |" in output.read_text()

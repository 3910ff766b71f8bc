"""Run loadtest/locustfile.py headless in a child process and read its latency report."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LOCUSTFILE = Path(__file__).resolve().parents[2] / "loadtest" / "locustfile.py"


@dataclass(frozen=True)
class LocustRun:
    exit_code: int
    report: dict[str, Any]
    output: str
    cpu_seconds: float  # user + system time of the Locust process, start-up included
    wall_seconds: float


def locust_command(
    triton_url: str,
    model_name: str,
    users: int,
    run_time_s: float,
    report_path: Path,
    extra_args: list[str] | None = None,
) -> list[str]:
    """Command line of one headless Locust process writing its report to `report_path`."""
    return [
        sys.executable, "-m", "locust",
        "-f", str(LOCUSTFILE),
        "--headless", "--only-summary",
        "--users", str(users), "--spawn-rate", str(users),
        "--run-time", f"{max(1, round(run_time_s))}s",
        "--stop-timeout", "5",
        "--triton-url", triton_url,
        "--model-name", model_name,
        "--latency-report", str(report_path),
        *(extra_args or []),
    ]  # fmt: skip


def run_locust(
    triton_url: str,
    model_name: str,
    users: int,
    run_time_s: float,
    extra_args: list[str] | None = None,
    timeout_s: float | None = None,
) -> LocustRun:
    """One headless Locust process with `users` users; its exact-latency report as a dict."""
    with tempfile.TemporaryDirectory(prefix="unetkit-locust-") as folder:
        report_path = Path(folder) / "latency.json"
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.monotonic()
        completed = subprocess.run(
            locust_command(triton_url, model_name, users, run_time_s, report_path, extra_args),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout_s if timeout_s is not None else run_time_s + 60,
        )
        wall = time.monotonic() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        report = json.loads(report_path.read_text()) if report_path.exists() else {}
        return LocustRun(completed.returncode, report, completed.stdout, cpu, wall)

"""What each load generator costs per request: Locust and perf_analyzer against the echo model
(loadtest/repository, a python model that answers at once), taking turns.

    .venv/bin/python loadtest/bench_generator.py        # make bench-generator

With a model that does nothing, a closed loop at one user runs at 1 / (the generator's own
time per request + Triton's request path): the difference between the two generators'
periods is what Locust adds to every request of a benchmark, whatever the model.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from bench_report import write_table  # loadtest/ is sys.path[0]

from unetkit.core import UserError, run_cli
from unetkit.loadgen import find_perf_analyzer, run_locust, run_perf_analyzer, write_input_data
from unetkit.triton import TritonServer

ROOT = Path(__file__).resolve().parent.parent
ECHO = ROOT / "loadtest" / "repository"


def locust_rate(url: str, users: int, window_s: float, max_step_s: float) -> float:
    run = run_locust(
        url, "null", users, max_step_s,
        ["--validate-fraction", "0", "--outputs", "MASK", "--window", str(window_s),
         "--stop-when-stable"],
    )  # fmt: skip
    if not run.report:
        raise UserError(f"Locust gave no report at concurrency {users}:\n{run.output}")
    return float(run.report.get("steady", {}).get("requests_per_s", 0.0))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--concurrency", default="1,2,4,8")
    parser.add_argument("--window-s", type=float, default=3.0)
    parser.add_argument("--max-step-s", type=float, default=30.0)
    parser.add_argument("--output", type=Path, default=ROOT / "loadtest/reports/bench_generator.md")
    args = parser.parse_args(argv)
    perf_analyzer = find_perf_analyzer()
    if perf_analyzer is None:
        raise UserError("perf_analyzer is not installed: `make venv` installs it")
    rows = []
    with tempfile.TemporaryDirectory() as work, TritonServer.on_free_ports(ECHO) as server:
        data = Path(work) / "input.json"
        # The samples' shape: Locust sends them; the echo model only reads the first channel.
        write_input_data([np.zeros((1, 256, 256, 1), np.uint8)], data)
        for users in (int(c) for c in args.concurrency.split(",")):
            perf = run_perf_analyzer(perf_analyzer, server.grpc_url, "null", users, data, 3.0)
            locust = locust_rate(server.grpc_url, users, args.window_s, args.max_step_s)
            rows.append(
                f"| {users} | {perf.images_per_s:.0f} | {locust:.0f} | "
                f"{locust / perf.images_per_s:.2f} | {users * 1000 / perf.images_per_s:.2f} | "
                f"{users * 1000 / locust:.2f} | {perf.cpu_ms_per_request:.2f} |"
            )
            print(rows[-1], flush=True)
    columns = (
        "| concurrency | perf_analyzer req/s | Locust req/s | Locust / perf_analyzer | "
        "perf_analyzer ms per request and user | Locust ms per request and user | "
        "perf_analyzer CPU ms/request |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    )
    write_table(args.output, "bench_generator.py", argv, columns, rows)
    return 0


if __name__ == "__main__":
    run_cli(main)

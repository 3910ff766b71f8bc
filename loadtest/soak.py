"""Soak: hold the saturating load for minutes; no failures, no memory growth, a steady p99.

    .venv/bin/python loadtest/soak.py                  # make soak: 10 minutes
    .venv/bin/python loadtest/soak.py --minutes 0.5 --window-s 5 --warmup-s 10   # short

Starts the embedded Triton, runs one Locust process at --concurrency users (default: the
busiest step of the last `make bench`, else 4) and samples the resident memory of
tritonserver and its python backend stubs. Passes when there were no failures, memory grew
less than 10% between the end of the warm-up and the end, and no window's p99 exceeded
twice the median window p99. Exit code 1 when a criterion fails.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from unetkit.core import MODEL_NAME, UserError, run_cli, write_text_atomic
from unetkit.loadgen import locust_command
from unetkit.triton import TritonServer, group_members

ROOT = Path(__file__).resolve().parent.parent
MAX_RSS_GROWTH = 0.10
MAX_P99_OVER_MEDIAN = 2.0


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repository", type=Path, default=ROOT / "model_repository")
    parser.add_argument("--model-name", default=MODEL_NAME)
    parser.add_argument("--config-name", default="cpu", help="'' = config.pbtxt")
    parser.add_argument("--images", type=Path, default=ROOT / "samples")
    parser.add_argument("--minutes", type=float, default=10.0, help="after the warm-up")
    parser.add_argument("--warmup-s", type=float, default=60.0)
    parser.add_argument("--window-s", type=float, default=60.0, help="p99 per window")
    parser.add_argument("--concurrency", type=int, default=0, help="0: from the last bench")
    parser.add_argument("--bench-results", type=Path, default=ROOT / "loadtest/reports/bench.json")
    parser.add_argument("--output", type=Path, default=ROOT / "loadtest/reports/soak.md")
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.window_s <= 0 or args.warmup_s < 0:
        raise UserError("--minutes and --window-s must be positive, --warmup-s at least 0")
    if args.concurrency < 0:
        raise UserError(f"--concurrency {args.concurrency} must be at least 1 (or 0: auto)")
    return args


def saturating_concurrency(bench_results: Path) -> int:
    """The busiest step of the last bench's engine served by default (what make serve serves),
    as perf_analyzer measured it."""
    if not bench_results.is_file():
        return 4
    served = json.loads(bench_results.read_text())["served"]
    steps = next(s for s in served if s["default"])["steps"]
    return int(max(steps, key=lambda s: s["perf_analyzer"]["images_per_s"])["concurrency"])


class MemorySampler:
    """Resident memory of the server's process group, sampled every `interval_s`."""

    def __init__(self, process_group: int, interval_s: float) -> None:
        self.process_group = process_group
        self.interval_s = interval_s
        self.samples: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> dict[str, Any]:
        members = group_members(self.process_group)
        return {
            "t": time.monotonic(),
            "total_kib": sum(m.rss_kib for m in members),
            "processes": {f"{m.name}[{m.pid}]": m.rss_kib for m in members},
        }

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.samples.append(self.sample())

    def __enter__(self) -> MemorySampler:
        self.samples.append(self.sample())
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append(self.sample())


def verdicts(report: dict[str, Any], baseline: dict, final: dict, skip: int) -> dict[str, Any]:
    windows = report.get("windows", [])[skip:]
    p99 = [w["p99_ms"] for w in windows if w["requests"]]
    growth = (final["total_kib"] - baseline["total_kib"]) / max(baseline["total_kib"], 1)
    median = statistics.median(p99) if p99 else 0.0
    return {
        "failures": report.get("failures", -1),
        "no_failures": report.get("failures", -1) == 0,
        "rss_growth": growth,
        "rss_ok": growth < MAX_RSS_GROWTH,
        "p99_median_ms": median,
        "p99_max_ms": max(p99, default=0.0),
        "p99_ok": bool(p99) and max(p99) <= MAX_P99_OVER_MEDIAN * median,
        "windows": windows,
    }


def markdown(results: dict[str, Any]) -> str:
    v = results["verdicts"]
    mark = {True: "pass", False: "FAIL"}
    lines = [
        f"### Soak: {results['model']} at {results['concurrency']} users for "
        f"{results['minutes']:g} min after {results['warmup_s']:g} s of warm-up",
        "",
        f"- Command: `{results['command']}`; date: {results['date']}",
        f"- Requests {results['requests']}, failures {v['failures']}: {mark[v['no_failures']]}",
        f"- Server RSS (tritonserver + stubs) after warm-up {results['rss_baseline_mib']:.0f} "
        f"MiB, at the end {results['rss_final_mib']:.0f} MiB, growth {100 * v['rss_growth']:.1f}%"
        f" (< 10%): {mark[v['rss_ok']]}",
        f"- p99 per {results['window_s']:g} s window: median {v['p99_median_ms']:.1f} ms, max "
        f"{v['p99_max_ms']:.1f} ms (max <= 2 x median): {mark[v['p99_ok']]}",
        "",
        "| window | req/s | p95 ms | p99 ms | failures |",
        "|---:|---:|---:|---:|---:|",
    ]
    for index, w in enumerate(v["windows"], start=1):
        lines.append(
            f"| {index} | {w['requests'] / w['seconds']:.1f} | {w['p95_ms']:.1f} | "
            f"{w['p99_ms']:.1f} | {w['failures']} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    users = args.concurrency or saturating_concurrency(args.bench_results)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    report_path = args.output.with_name(args.output.stem + "_latency.json")
    server = TritonServer.on_free_ports(
        args.repository,
        model_config_name=args.config_name or None,
        log_file=args.output.parent / "soak_triton.log",
    )
    run_time_s = args.warmup_s + 60 * args.minutes
    with server:
        assert server.pid is not None
        command = locust_command(
            server.grpc_url,
            args.model_name,
            users,
            run_time_s,
            report_path,
            ["--images", str(args.images), "--window", str(args.window_s)],
        )
        with MemorySampler(server.pid, interval_s=5.0) as memory:
            locust = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            time.sleep(args.warmup_s)
            baseline = memory.sample()
            output, _ = locust.communicate(timeout=run_time_s + 120)
        final = memory.samples[-1]
    if not report_path.is_file():
        raise UserError(f"Locust wrote no report:\n{output.decode()[-3000:]}")
    report = json.loads(report_path.read_text())
    results = {
        "model": args.model_name,
        "concurrency": users,
        "minutes": args.minutes,
        "warmup_s": args.warmup_s,
        "window_s": args.window_s,
        "command": " ".join(["python", "loadtest/soak.py", *argv]),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "requests": report.get("requests", 0),
        "rss_baseline_mib": baseline["total_kib"] / 1024,
        "rss_final_mib": final["total_kib"] / 1024,
        "memory_samples": memory.samples,
        "verdicts": verdicts(report, baseline, final, skip=int(args.warmup_s // args.window_s)),
    }
    text = markdown(results)
    print(text)
    write_text_atomic(args.output.with_suffix(".json"), json.dumps(results, indent=2) + "\n")
    write_text_atomic(args.output, text)
    v = results["verdicts"]
    return 0 if v["no_failures"] and v["rss_ok"] and v["p99_ok"] else 1


if __name__ == "__main__":
    run_cli(main)

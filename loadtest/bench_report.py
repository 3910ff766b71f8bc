"""make bench's report: the engines side by side, each served engine's sweep, the two load
generators against each other, and the targets with their verdicts."""

from __future__ import annotations

import datetime
import os
import platform
import shlex
from pathlib import Path
from typing import Any

from unetkit.core import write_text_atomic

# Targets (BENCHMARKS.md): served int8 at concurrency 4 against in-process ONNX Runtime
# fp32 of the same run; served over in-process from two clients up; Locust against
# perf_analyzer.
INT8_OVER_FP32_AT_4 = 2.5
SERVED_OVER_INPROCESS = 0.85
LOCUST_TOLERANCE = 0.10


def _default(results: dict[str, Any]) -> dict[str, Any]:
    return next(s for s in results["served"] if s["default"])


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target: what it asks, what was measured, met or not."""
    served = _default(results)
    found = []
    fp32 = next((e for e in results["engines"] if e["engine"] == "onnxruntime fp32"), None)
    at_4 = next((s for s in served["steps"] if s["concurrency"] == 4), None)
    if fp32 and at_4 and served["engine"].endswith("int8"):
        ratio = at_4["perf_analyzer"]["images_per_s"] / fp32["images_per_s"]
        found.append(
            {
                "target": f"served int8 at concurrency 4 >= {INT8_OVER_FP32_AT_4}x in-process "
                "ONNX Runtime fp32",
                "measured": f"{ratio:.2f}x ({at_4['perf_analyzer']['images_per_s']:.1f} / "
                f"{fp32['images_per_s']:.1f} images/s)",
                "met": ratio >= INT8_OVER_FP32_AT_4,
            }
        )
    ratios = [s for s in served["steps"] if s["concurrency"] >= 2]
    if ratios:
        found.append(
            {
                "target": f"served / in-process >= {SERVED_OVER_INPROCESS} at concurrency >= 2 "
                f"({served['engine']}, perf_analyzer)",
                "measured": ", ".join(
                    f"{s['served_over_inprocess']:.2f} at {s['concurrency']}" for s in ratios
                ),
                "met": all(s["served_over_inprocess"] >= SERVED_OVER_INPROCESS for s in ratios),
            }
        )
    locust = [s for s in served["steps"] if "locust" in s]
    if locust:
        found.append(
            {
                "target": f"Locust within {LOCUST_TOLERANCE:.0%} of perf_analyzer",
                "measured": ", ".join(
                    f"{s['locust']['over_perf_analyzer']:.2f} at {s['concurrency']}" for s in locust
                ),
                "met": all(
                    abs(s["locust"]["over_perf_analyzer"] - 1) <= LOCUST_TOLERANCE for s in locust
                ),
            }
        )
    return found


def _engines(results: dict[str, Any]) -> list[str]:
    lines = [
        "| engine | images/s | GMAC/s | share of nominal peak | MASK agreement with "
        "onnxruntime fp32 |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in results["engines"]:
        share = "n/a" if row["peak_share"] is None else f"{row['peak_share']:.0%}"
        agreement = "n/a" if row["mask_agreement"] is None else f"{row['mask_agreement']:.4%}"
        lines.append(
            f"| {row['engine']} | {row['images_per_s']:.1f} | {row['gmac_per_s']:.0f} | "
            f"{share} | {agreement} |"
        )
    peaks = sorted({row["peak"] for row in results["engines"]})
    lines += ["", f"Nominal peak MAC/s: {'; '.join(peaks)}."]
    return lines


def _served(served: dict[str, Any]) -> list[str]:
    lines = [
        f"**{served['engine']}**{' (served by default)' if served['default'] else ''}",
        "",
        "| concurrency | images/s | p50 ms | p99 ms | queue ms | compute ms | in-process | "
        "served / in-process | stable |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|:---:|",
    ]
    for step in served["steps"]:
        perf = step["perf_analyzer"]
        lines.append(
            f"| {step['concurrency']} | {perf['images_per_s']:.1f} | {perf['p50_ms']:.1f} | "
            f"{perf['p99_ms']:.1f} | {perf['queue_ms']:.1f} | {perf['compute_ms']:.1f} | "
            f"{step['inprocess_images_per_s']:.1f} | {step['served_over_inprocess']:.2f} | "
            f"{'yes' if perf['stable'] else 'no'} |"
        )
    return lines


def _generators(served: dict[str, Any]) -> list[str]:
    lines = [
        f"Locust beside perf_analyzer ({served['engine']}):",
        "",
        "| concurrency | perf_analyzer images/s | Locust images/s | Locust / perf_analyzer | "
        "perf_analyzer CPU ms/request¹ | Locust CPU ms/request¹ | Locust p50 / p99 ms | "
        "Locust failures | stable |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|:---:|",
    ]
    for step in served["steps"]:
        perf, locust = step["perf_analyzer"], step["locust"]
        lines.append(
            f"| {step['concurrency']} | {perf['images_per_s']:.1f} | "
            f"{locust['images_per_s']:.1f} | {locust['over_perf_analyzer']:.2f} | "
            f"{perf['cpu_ms_per_request']:.2f} | {locust['cpu_ms_per_request']:.2f} | "
            f"{locust['p50_ms']:.1f} / {locust['p99_ms']:.1f} | {locust['failures']} | "
            f"{'yes' if locust['stable'] else 'no'} |"
        )
    lines += ["", "¹ each generator's CPU time over its requests, its start-up included."]
    return lines


def markdown(results: dict[str, Any]) -> str:
    lines = [
        f"- Machine: {results['machine']}; load average before/after: "
        f"{results['load_before']} / {results['load_after']}",
        f"- Command: `{results['command']}`",
        f"- Date: {results['date']}",
        f"- Versions: {results['versions']}",
        f"- Served by default (`make serve` on this machine): {results['default_engine']}",
        "",
        "In-process, batch 1, every core, each engine alone, taking turns:",
        "",
        *_engines(results),
    ]
    for note in results["left_out"]:
        lines.append(f"- Left out: {note}")
    for served in results["served"]:
        lines += ["", *_served(served)]
    lines += [
        "",
        *_generators(_default(results)),
        "",
        "| target | measured | met |",
        "|---|---|:---:|",
    ]
    for target in results["targets"]:
        lines.append(
            f"| {target['target']} | {target['measured']} | {'yes' if target['met'] else 'no'} |"
        )
    return "\n".join(lines) + "\n"


def machine() -> str:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "unknown CPU",
    )
    memory_kib = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    return (
        f"{model}, {len(os.sched_getaffinity(0))} cores available, "
        f"{memory_kib / 2**20:.0f} GiB, {platform.system()} {platform.machine()}, "
        f"Python {platform.python_version()}"
    )


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def header(script: str, argv: list[str]) -> list[str]:
    """Machine, load, command and date: the lines every benchmark report starts with."""
    return [
        f"- Machine: {machine()}; load average {load()}",
        f"- Command: `{shlex.join(['python', f'loadtest/{script}', *argv])}`",
        f"- Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}",
    ]


def write_table(
    output: Path, script: str, argv: list[str], columns: tuple[str, str], rows: list[str]
) -> None:
    """A report of one Markdown table under the header lines: `columns` (its names and its
    alignment row), then `rows`."""
    text = "\n".join([*header(script, argv), "", *columns, *rows]) + "\n"
    print(text)
    output.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(output, text)

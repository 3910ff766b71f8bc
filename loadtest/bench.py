"""Benchmark the served model: a Locust sweep over concurrencies, cross-checked two ways.

    .venv/bin/python loadtest/bench.py                      # make bench
    .venv/bin/python loadtest/bench.py --quick              # a tiny sweep (the test)

Starts the embedded Triton on free ports, warms it up, then for each concurrency runs
Locust headless until three consecutive windows agree within 10% in throughput and p95
(perf_analyzer's rule; a step that is not stable by --max-step-s is reported as such).
Triton's statistics API, read at each window, gives the server-side split and the batch
size dynamic batching achieved. The same model.onnx runs in-process with ONNX Runtime
(same thread settings as the served model) for the served / in-process ratio, and an
asyncio tritonclient loop cross-checks Locust's throughput at the busiest step.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import shlex
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as grpcaio

from unetkit.core import (
    INPUT_IMAGE,
    MODEL_NAME,
    OUTPUT_MASK,
    UserError,
    load_samples,
    run_cli,
    write_text_atomic,
)
from unetkit.loadgen import run_locust
from unetkit.triton import TritonServer

ROOT = Path(__file__).resolve().parent.parent


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repository", type=Path, default=ROOT / "model_repository")
    parser.add_argument("--model-name", default=MODEL_NAME)
    parser.add_argument(
        "--config-name", default="cpu", help="configs/<name>.pbtxt to serve ('' = config.pbtxt)"
    )
    parser.add_argument("--images", type=Path, default=ROOT / "samples")
    parser.add_argument("--concurrency", default="1,2,4,8", help="comma-separated user counts")
    parser.add_argument("--batch-size", type=int, default=1, help="images per request")
    parser.add_argument("--window-s", type=float, default=5.0, help="measurement window")
    parser.add_argument("--max-step-s", type=float, default=60.0, help="give up on stability")
    parser.add_argument("--warmup-s", type=float, default=10.0)
    parser.add_argument("--validate-fraction", type=float, default=0.05)
    parser.add_argument("--min-iou", type=float, default=0.8)
    parser.add_argument("--inprocess-s", type=float, default=15.0, help="ONNX Runtime run time")
    parser.add_argument(
        "--output", type=Path, default=ROOT / "loadtest" / "reports" / "bench.md",
        help="Markdown results; the raw results go beside it as .json",
    )  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="tiny sweep, short windows")
    args = parser.parse_args(argv)
    if args.quick:
        args.concurrency = "1,2"
        args.window_s, args.max_step_s, args.warmup_s, args.inprocess_s = 2.0, 15.0, 3.0, 3.0
    try:
        args.levels = [int(c) for c in args.concurrency.split(",")]
    except ValueError as e:
        raise UserError(f"--concurrency {args.concurrency!r}: give integers like 1,2,4,8") from e
    if not args.levels or min(args.levels) < 1:
        raise UserError("--concurrency needs user counts of at least 1")
    if args.batch_size < 1:
        raise UserError(f"--batch-size {args.batch_size} must be at least 1")
    if args.window_s <= 0 or args.max_step_s < 3 * args.window_s:
        raise UserError("--max-step-s must hold at least three windows of --window-s")
    return args


def image_batch(url: str, args: argparse.Namespace) -> np.ndarray:
    """The first sample image, --batch-size times, as one IMAGE tensor."""
    with grpcclient.InferenceServerClient(url) as client:
        metadata = client.get_model_metadata(args.model_name, as_json=True)
    image_input = next(i for i in metadata["inputs"] if i["name"] == INPUT_IMAGE)
    channels = int(image_input["shape"][-1])
    samples = load_samples(args.images, channels if channels > 0 else 1)
    # One size for every request: the first image's, repeated up to the batch size.
    return np.stack([samples[0].image] * args.batch_size)


async def _async_load(
    url: str, model: str, pixels: np.ndarray, users: int, seconds: float
) -> tuple[int, float]:
    tensor = grpcaio.InferInput(INPUT_IMAGE, list(pixels.shape), "UINT8")
    tensor.set_data_from_numpy(pixels)
    outputs = [grpcaio.InferRequestedOutput(OUTPUT_MASK)]
    client = grpcaio.InferenceServerClient(url)
    completed = 0
    try:
        started = time.perf_counter()
        deadline = started + seconds
        last = started

        async def user() -> None:
            nonlocal completed, last
            while time.perf_counter() < deadline:
                await client.infer(model, [tensor], outputs=outputs)
                completed += 1
                last = time.perf_counter()

        await asyncio.gather(*(user() for _ in range(users)))
        return completed, last - started
    finally:
        await client.close()


def async_generator_rate(
    url: str, model: str, pixels: np.ndarray, users: int, seconds: float
) -> float:
    """Requests/s of `users` concurrent asyncio loops: the second generator."""
    asyncio.run(_async_load(url, model, pixels, users, min(2.0, seconds)))  # warm the channel
    completed, elapsed = asyncio.run(_async_load(url, model, pixels, users, seconds))
    return completed / elapsed if elapsed > 0 else 0.0


def inprocess_images_per_s(onnx_path: Path, pixels: np.ndarray, seconds: float) -> float:
    """ONNX Runtime in this process, threads as model.py sets them by default."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = len(os.sched_getaffinity(0))
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    feed = {INPUT_IMAGE: pixels}
    session.run(None, feed)
    runs = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        session.run(None, feed)
        runs += 1
    return runs * len(pixels) / (time.perf_counter() - started)


def machine() -> str:
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    memory_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            memory_kib = int(line.split()[1])
    return (
        f"{model}, {len(os.sched_getaffinity(0))} cores available, "
        f"{memory_kib / 2**20:.0f} GiB, {platform.system()} {platform.machine()}, "
        f"Python {platform.python_version()}"
    )


def step_row(users: int, report: dict[str, Any], exit_code: int) -> dict[str, Any]:
    steady = report.get("steady", {})
    server = steady.get("server", {})
    latency = steady.get("latency_ms", {})
    compute = sum(server.get(f"{p}_ms", 0.0) for p in ("compute_input", "compute_infer"))
    return {
        "concurrency": users,
        "stable": bool(report.get("stable")),
        "requests_per_s": steady.get("requests_per_s", 0.0),
        "images_per_s": steady.get("images_per_s", 0.0),
        "p50_ms": latency.get("p50", 0.0),
        "p95_ms": latency.get("p95", 0.0),
        "p99_ms": latency.get("p99", 0.0),
        "failures": report.get("failures", 0),
        "queue_ms": server.get("queue_ms", 0.0),
        "compute_ms": compute + server.get("compute_output_ms", 0.0),
        "avg_batch": server.get("avg_batch", 0.0),
        "locust_exit_code": exit_code,
        "windows": report.get("windows", []),
    }


def markdown(results: dict[str, Any]) -> str:
    inprocess = results["inprocess_images_per_s"]
    lines = [
        f"### {results['model']} served by Triton ({results['config'] or 'config.pbtxt'}), "
        f"batch {results['batch_size']} per request",
        "",
        f"- Machine: {results['machine']}; load average before/after: "
        f"{results['load_before']} / {results['load_after']}",
        f"- Command: `{results['command']}`",
        f"- Date: {results['date']}",
        f"- Versions: {results['versions']}",
        f"- Stability: 3 windows of {results['window_s']:g} s within 10% (throughput and p95), "
        f"at most {results['max_step_s']:g} s per step; latencies exact (HDR), "
        "server split from Triton's statistics API over the same windows.",
        "",
        "| concurrency | req/s | images/s | p50 ms | p95 ms | p99 ms | failures | "
        "queue ms | compute ms | avg batch | served / in-process | stable |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|",
    ]
    for row in results["steps"]:
        ratio = f"{row['images_per_s'] / inprocess:.2f}" if inprocess else "n/a"
        lines.append(
            f"| {row['concurrency']} | {row['requests_per_s']:.1f} | {row['images_per_s']:.1f} | "
            f"{row['p50_ms']:.1f} | {row['p95_ms']:.1f} | {row['p99_ms']:.1f} | "
            f"{row['failures']} | {row['queue_ms']:.1f} | {row['compute_ms']:.1f} | "
            f"{row['avg_batch']:.2f} | {ratio} | {'yes' if row['stable'] else 'no'} |"
        )
    lines.append("")
    if inprocess:
        lines.append(
            f"In-process ONNX Runtime, same model.onnx and threads: {inprocess:.1f} images/s "
            f"at batch {results['batch_size']}."
        )
    half = results["half_load_open_loop"]
    lines.append(
        f"Open loop at half the saturating rate ({half['offered_requests_per_s']:.1f} req/s "
        f"offered, {half['requests_per_s']:.1f} served): p50 {half['p50_ms']:.1f} ms, p99 "
        f"{half['p99_ms']:.1f} ms, p99/p50 {half['p99_ms'] / max(half['p50_ms'], 1e-9):.2f} "
        f"(target <= 2), failures {half['failures']}."
    )
    check = results["cross_check"]
    lines.append(
        f"Second generator (asyncio tritonclient, {check['concurrency']} concurrent): "
        f"{check['async_requests_per_s']:.1f} req/s against Locust's "
        f"{check['locust_requests_per_s']:.1f} req/s (ratio {check['ratio']:.2f})."
    )
    return "\n".join(lines) + "\n"


def run_bench(args: argparse.Namespace, argv: list[str]) -> dict[str, Any]:
    server = TritonServer.on_free_ports(
        args.repository,
        model_config_name=args.config_name or None,
        log_file=args.output.parent / "bench_triton.log",
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    load_before = " ".join(f"{x:.1f}" for x in os.getloadavg())
    with server:
        url = server.grpc_url
        pixels = image_batch(url, args)
        with grpcclient.InferenceServerClient(url) as client:
            triton_version = client.get_server_metadata(as_json=True)["version"]
        print(f"warming up for {args.warmup_s:g} s", flush=True)
        async_generator_rate(url, args.model_name, pixels, max(args.levels), args.warmup_s)
        locust_args = [
            "--images", str(args.images),
            "--batch-size", str(args.batch_size),
            "--validate-fraction", str(args.validate_fraction),
            "--min-iou", str(args.min_iou),
            "--window", str(args.window_s),
            "--stop-when-stable",
            "--server-stats",
        ]  # fmt: skip
        steps = []
        for users in args.levels:
            run = run_locust(url, args.model_name, users, args.max_step_s, locust_args)
            if not run.report:
                raise UserError(f"Locust gave no report at concurrency {users}:\n{run.output}")
            row = step_row(users, run.report, run.exit_code)
            steps.append(row)
            print(
                f"concurrency {users}: {row['requests_per_s']:.1f} req/s, p50 "
                f"{row['p50_ms']:.1f} ms, p99 {row['p99_ms']:.1f} ms, failures "
                f"{row['failures']}, avg batch {row['avg_batch']:.2f}"
                + ("" if row["stable"] else " (not stable)"),
                flush=True,
            )
        busiest = max(steps, key=lambda r: r["requests_per_s"])
        # Open loop at half the saturating rate: latency without queueing behind overload.
        half_rate = busiest["requests_per_s"] / 2
        users = busiest["concurrency"]
        run = run_locust(
            url,
            args.model_name,
            users,
            args.max_step_s,
            [*locust_args, "--open-loop-rate", f"{half_rate / users:.4f}"],
        )
        half_load = step_row(users, run.report, run.exit_code)
        half_load["offered_requests_per_s"] = half_rate
        async_rate = async_generator_rate(
            url, args.model_name, pixels, busiest["concurrency"], 3 * args.window_s
        )
    load_after = " ".join(f"{x:.1f}" for x in os.getloadavg())
    onnx_path = args.repository / args.model_name / "1" / "model.onnx"
    inprocess = (
        inprocess_images_per_s(onnx_path, pixels, args.inprocess_s) if onnx_path.is_file() else 0.0
    )
    return {
        "model": args.model_name,
        "config": args.config_name,
        "batch_size": args.batch_size,
        "machine": machine(),
        "load_before": load_before,
        "load_after": load_after,
        "command": shlex.join(["python", "loadtest/bench.py", *argv]),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "versions": f"Triton {triton_version} (nvidia-pytriton {version('nvidia-pytriton')}), "
        f"onnxruntime {version('onnxruntime')}, locust {version('locust')}",
        "window_s": args.window_s,
        "max_step_s": args.max_step_s,
        "steps": steps,
        "half_load_open_loop": half_load,
        "inprocess_images_per_s": inprocess,
        "cross_check": {
            "concurrency": busiest["concurrency"],
            "locust_requests_per_s": busiest["requests_per_s"],
            "async_requests_per_s": async_rate,
            "ratio": async_rate / busiest["requests_per_s"] if busiest["requests_per_s"] else 0.0,
        },
    }


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    results = run_bench(args, argv)
    text = markdown(results)
    print(text)
    write_text_atomic(args.output.with_suffix(".json"), json.dumps(results, indent=2) + "\n")
    write_text_atomic(args.output, text)
    print(f"wrote {args.output} and {args.output.with_suffix('.json')}")
    failed = sum(row["failures"] for row in results["steps"])
    return 1 if failed else 0


if __name__ == "__main__":
    run_cli(main)

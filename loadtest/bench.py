"""Benchmark the CPU server: fp32 and int8 side by side, served against in-process ONNX Runtime,
with two load generators and the share of the CPU each takes.

    .venv/bin/python loadtest/bench.py                      # make bench
    .venv/bin/python loadtest/bench.py --quick              # a tiny sweep (the test)
    .venv/bin/python loadtest/bench.py --repository loadtest/repository --model-name null ...

By default the example model is exported twice (fp32, and int8 through its accuracy gate)
into temporary repositories. For each, the embedded Triton starts on free ports and, for
each concurrency, Locust runs headless until three windows agree within 10% in throughput
and p95 (perf_analyzer's rule). Every generator sends the same workload: the sample images,
padded as the model needs, cycled in the same order, asking for MASK only. In-process ONNX
Runtime runs that workload with the session the server uses. Reported beside each step:
Triton's queue/compute split and batch size, and the CPU share of Locust and of the server
(user + system time over wall time, of all cores). Then open-loop runs with Poisson
arrivals at half the saturating rate and at the rate where the queueing arithmetic allows
p99 <= 2 x p50, and an asyncio tritonclient loop at the busiest concurrency.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import shlex
import tempfile
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as grpcaio

from unetkit.cli.make_repository import EXAMPLE_MODEL, make_repository
from unetkit.core import (
    INPUT_IMAGE,
    MODEL_NAME,
    OUTPUT_MASK,
    OUTPUT_PROB,
    UserError,
    load_samples,
    read_model_info,
    run_cli,
    write_text_atomic,
)
from unetkit.loadgen import request_batches, run_locust
from unetkit.triton import TritonServer, create_session, onnx_path

ROOT = Path(__file__).resolve().parent.parent
COMMITTED_MODEL = ROOT / "model_repository" / MODEL_NAME


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--repository", type=Path, help="benchmark this repository as it is (default: export)"
    )
    parser.add_argument("--keras-model", type=Path, default=EXAMPLE_MODEL)
    parser.add_argument("--precisions", default="fp32,int8", help="exports to compare")
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
    parser.add_argument("--validate-fraction", type=float, default=0.02)
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
    args.precision_list = [p.strip() for p in args.precisions.split(",") if p.strip()]
    return args


def workload(model: Path, images: Path, batch_size: int) -> list[np.ndarray]:
    """The IMAGE tensors every generator sends, in the order Locust sends them."""
    info = read_model_info(model)
    samples = load_samples(images, info.channels)
    return [pixels for pixels, _ in request_batches(samples, batch_size, info.height, info.width)]


def inprocess_images_per_s(model: Path, batches: list[np.ndarray], seconds: float) -> float:
    """The workload through ONNX Runtime in this process, as the server runs it."""
    session = create_session(model, len(os.sched_getaffinity(0)))
    for pixels in batches:
        session.run([OUTPUT_MASK], {INPUT_IMAGE: pixels})
    images, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for pixels in batches:
            session.run([OUTPUT_MASK], {INPUT_IMAGE: pixels})
            images += len(pixels)
    return images / (time.perf_counter() - started)


def precision_trial(fp32: Path, int8: Path, batches: list[np.ndarray], seconds: float) -> dict:
    """In-process fp32 against int8 at batch 1: speed, MASK agreement, max |PROB diff|."""
    speeds = {
        name: inprocess_images_per_s(path, batches, seconds)
        for name, path in (("fp32", fp32), ("int8", int8))
    }
    a, b = create_session(fp32, 1), create_session(int8, 1)
    equal = total = 0
    worst = 0.0
    for pixels in batches:
        prob32, mask32 = a.run([OUTPUT_PROB, OUTPUT_MASK], {INPUT_IMAGE: pixels})
        prob8, mask8 = b.run([OUTPUT_PROB, OUTPUT_MASK], {INPUT_IMAGE: pixels})
        equal += int(np.count_nonzero(mask32 == mask8))
        total += mask32.size
        worst = max(worst, float(np.max(np.abs(prob32 - prob8))))
    return {
        "fp32_images_per_s": speeds["fp32"],
        "int8_images_per_s": speeds["int8"],
        "speedup": speeds["int8"] / speeds["fp32"],
        "mask_agreement": equal / total,
        "max_abs_prob_diff": worst,
    }


async def _async_load(
    url: str, model: str, batches: list[np.ndarray], users: int, seconds: float
) -> tuple[int, float]:
    tensors = []
    for pixels in batches:
        tensor = grpcaio.InferInput(INPUT_IMAGE, list(pixels.shape), "UINT8")
        tensor.set_data_from_numpy(pixels)
        tensors.append(tensor)
    outputs = [grpcaio.InferRequestedOutput(OUTPUT_MASK)]
    client = grpcaio.InferenceServerClient(url)
    completed = 0
    try:
        started = time.perf_counter()
        deadline = started + seconds
        last = started

        async def user(offset: int) -> None:
            nonlocal completed, last
            index = offset
            while time.perf_counter() < deadline:
                await client.infer(model, [tensors[index % len(tensors)]], outputs=outputs)
                index += 1
                completed += 1
                last = time.perf_counter()

        await asyncio.gather(*(user(i) for i in range(users)))
        return completed, last - started
    finally:
        await client.close()


def async_generator(
    url: str, model: str, batches: list[np.ndarray], users: int, seconds: float
) -> dict[str, float]:
    """Requests/s of `users` concurrent asyncio loops, and this process's CPU share."""
    asyncio.run(_async_load(url, model, batches, users, min(2.0, seconds)))  # warm the channel
    cpu = time.process_time()
    completed, elapsed = asyncio.run(_async_load(url, model, batches, users, seconds))
    cpu = time.process_time() - cpu
    return {
        "requests_per_s": completed / elapsed if elapsed > 0 else 0.0,
        "cpu_share": cpu / elapsed / len(os.sched_getaffinity(0)) if elapsed > 0 else 0.0,
    }


def server_cpu_seconds(server: TritonServer) -> float:
    """User + system seconds of tritonserver and its stubs so far."""
    total = 0.0
    for member in server.members():
        try:
            times = psutil.Process(member.pid).cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def md1_tail_ratio(load: float, samples: int = 200_000, seed: int = 0) -> float:
    """p99 / p50 of the response time of one server with a fixed service time under
    Poisson arrivals at `load` (utilisation): the M/D/1 queue, simulated."""
    rng = np.random.default_rng(seed)
    arrivals = np.cumsum(rng.exponential(1.0 / load, samples))
    finish = 0.0
    response = np.empty(samples)
    for i, arrival in enumerate(arrivals):
        finish = max(finish, arrival) + 1.0
        response[i] = finish - arrival
    p50, p99 = np.percentile(response, [50, 99])
    return float(p99 / p50)


def tail_load() -> float:
    """The highest utilisation (in steps of 0.01) at which M/D/1 keeps p99 <= 2 x p50."""
    load = 0.01
    while md1_tail_ratio(load + 0.01) <= 2.0:
        load += 0.01
    return round(load, 2)


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


def header(script: str, argv: list[str]) -> list[str]:
    """Machine, load, command and date: the lines every benchmark report starts with."""
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    return [
        f"- Machine: {machine()}; load average {load}",
        f"- Command: `{shlex.join(['python', f'loadtest/{script}', *argv])}`",
        f"- Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}",
    ]


def write_report(output: Path, text: str) -> None:
    print(text)
    output.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(output, text)


def write_table(
    output: Path, script: str, argv: list[str], columns: tuple[str, str], rows: list[str]
) -> None:
    """A report of one Markdown table under the header lines: `columns` (its names and its
    alignment row), then `rows`."""
    write_report(output, "\n".join([*header(script, argv), "", *columns, *rows]) + "\n")


def step_row(users: int, run: Any, server_cpu_s: float) -> dict[str, Any]:
    report = run.report
    steady = report.get("steady", {})
    server = steady.get("server", {})
    latency = steady.get("latency_ms", {})
    compute = sum(server.get(f"{p}_ms", 0.0) for p in ("compute_input", "compute_infer"))
    cores = len(os.sched_getaffinity(0))
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
        "generator_cpu_share": run.cpu_seconds / run.wall_seconds / cores,
        "server_cpu_share": server_cpu_s / run.wall_seconds / cores,
        "locust_exit_code": run.exit_code,
        "windows": report.get("windows", []),
    }


def locust_args(args: argparse.Namespace) -> list[str]:
    return [
        "--images", str(args.images),
        "--batch-size", str(args.batch_size),
        "--outputs", OUTPUT_MASK,
        "--validate-fraction", str(args.validate_fraction),
        "--min-iou", str(args.min_iou),
        "--window", str(args.window_s),
        "--stop-when-stable",
        "--server-stats",
    ]  # fmt: skip


def measured_run(
    server: TritonServer, args: argparse.Namespace, users: int, extra: list[str]
) -> dict:
    before = server_cpu_seconds(server)
    run = run_locust(
        server.grpc_url, args.model_name, users, args.max_step_s, [*locust_args(args), *extra]
    )
    if not run.report:
        raise UserError(f"Locust gave no report at concurrency {users}:\n{run.output}")
    return step_row(users, run, server_cpu_seconds(server) - before)


def bench_repository(args: argparse.Namespace, repository: Path, label: str) -> dict[str, Any]:
    model = onnx_path(repository)
    batches = workload(model, args.images, args.batch_size) if model.is_file() else []
    server = TritonServer.on_free_ports(
        repository,
        model_config_name=args.config_name or None,
        log_file=args.output.parent / f"bench_triton_{label}.log",
    )
    with server:
        url = server.grpc_url
        with grpcclient.InferenceServerClient(url) as client:
            triton_version = client.get_server_metadata(as_json=True)["version"]
            if not batches:  # a model without a kit export (the echo model): its metadata
                shape = client.get_model_metadata(args.model_name, as_json=True)["inputs"][0]
                batches = [np.zeros((args.batch_size, 64, 64, int(shape["shape"][-1])), np.uint8)]
        print(f"[{label}] warming up for {args.warmup_s:g} s", flush=True)
        async_generator(url, args.model_name, batches, max(args.levels), args.warmup_s)
        steps = []
        for users in args.levels:
            row = measured_run(server, args, users, [])
            steps.append(row)
            print(
                f"[{label}] concurrency {users}: {row['images_per_s']:.1f} images/s, p50 "
                f"{row['p50_ms']:.1f} ms, p99 {row['p99_ms']:.1f} ms, failures {row['failures']}, "
                f"avg batch {row['avg_batch']:.2f}, Locust CPU {row['generator_cpu_share']:.0%}"
                + ("" if row["stable"] else " (not stable)"),
                flush=True,
            )
        busiest = max(steps, key=lambda r: r["requests_per_s"])
        users = busiest["concurrency"]
        open_loops = {}
        for name, load in (("half", 0.5), ("tail_target", tail_load())):
            rate = busiest["requests_per_s"] * load
            row = measured_run(
                server,
                args,
                users,
                ["--open-loop-rate", f"{rate / users:.4f}", "--arrivals", "poisson"],
            )
            row.update(
                offered_requests_per_s=rate, load=load, md1_p99_over_p50=md1_tail_ratio(load)
            )
            open_loops[name] = row
        second = async_generator(url, args.model_name, batches, users, 3 * args.window_s)
    inprocess = inprocess_images_per_s(model, batches, args.inprocess_s) if model.is_file() else 0.0
    return {
        "label": label,
        "triton_version": triton_version,
        "steps": steps,
        "open_loop": open_loops,
        "inprocess_images_per_s": inprocess,
        "cross_check": {
            "concurrency": users,
            "locust_requests_per_s": busiest["requests_per_s"],
            "locust_cpu_share": busiest["generator_cpu_share"],
            "async_requests_per_s": second["requests_per_s"],
            "async_cpu_share": second["cpu_share"],
            "ratio": second["requests_per_s"] / busiest["requests_per_s"]
            if busiest["requests_per_s"]
            else 0.0,
        },
    }


def exported_repositories(args: argparse.Namespace, work: Path) -> dict[str, Path]:
    repositories = {}
    for precision in args.precision_list:
        repository = work / precision
        (repository / MODEL_NAME).mkdir(parents=True)
        for name in ("configs", "1"):
            (repository / MODEL_NAME / name).mkdir()
        (repository / MODEL_NAME / "1" / "model.py").write_bytes(
            (COMMITTED_MODEL / "1" / "model.py").read_bytes()
        )
        outcome = make_repository(args.keras_model, repository, precision=precision)
        if outcome.precision != precision:
            raise UserError(f"the {precision} export serves {outcome.precision}: {outcome.gate}")
        repositories[precision] = repository
    return repositories


def markdown(results: dict[str, Any]) -> str:
    lines = [
        f"- Machine: {results['machine']}; load average before/after: "
        f"{results['load_before']} / {results['load_after']}",
        f"- Command: `{results['command']}`",
        f"- Date: {results['date']}",
        f"- Versions: {results['versions']}",
        f"- Stability: 3 windows of {results['window_s']:g} s within 10% (throughput and p95), "
        f"at most {results['max_step_s']:g} s per step; latencies exact (HDR); server split "
        "from Triton's statistics API over the same windows; CPU share = user + system time "
        "over wall time, of all cores (Locust's start-up included).",
    ]
    for bench in results["benches"]:
        inprocess = bench["inprocess_images_per_s"]
        lines += [
            "",
            f"#### {bench['label']}",
            "",
            "| concurrency | images/s | p50 ms | p95 ms | p99 ms | failures | queue ms | "
            "compute ms | avg batch | served / in-process | Locust CPU | server CPU | stable |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|",
        ]
        for row in bench["steps"]:
            ratio = f"{row['images_per_s'] / inprocess:.2f}" if inprocess else "n/a"
            lines.append(
                f"| {row['concurrency']} | {row['images_per_s']:.1f} | {row['p50_ms']:.1f} | "
                f"{row['p95_ms']:.1f} | {row['p99_ms']:.1f} | {row['failures']} | "
                f"{row['queue_ms']:.1f} | {row['compute_ms']:.1f} | {row['avg_batch']:.2f} | "
                f"{ratio} | {row['generator_cpu_share']:.0%} | {row['server_cpu_share']:.0%} | "
                f"{'yes' if row['stable'] else 'no'} |"
            )
        lines.append("")
        if inprocess:
            lines.append(
                "In-process ONNX Runtime, same model, session and workload: "
                f"{inprocess:.1f} images/s."
            )
        for row in bench["open_loop"].values():
            lines.append(
                f"Open loop, Poisson arrivals at {row['load']:.0%} of the saturating rate "
                f"({row['offered_requests_per_s']:.1f} req/s offered, {row['requests_per_s']:.1f} "
                f"served): p50 {row['p50_ms']:.1f} ms, p99 {row['p99_ms']:.1f} ms, p99/p50 "
                f"{row['p99_ms'] / max(row['p50_ms'], 1e-9):.2f} (M/D/1 with a fixed service time: "
                f"{row['md1_p99_over_p50']:.2f}), failures {row['failures']}."
            )
        check = bench["cross_check"]
        lines.append(
            f"Second generator (asyncio tritonclient, same workload, {check['concurrency']} "
            f"concurrent): {check['async_requests_per_s']:.1f} req/s at "
            f"{check['async_cpu_share']:.0%} CPU against Locust's "
            f"{check['locust_requests_per_s']:.1f} req/s at {check['locust_cpu_share']:.0%} CPU "
            f"(ratio {check['ratio']:.2f})."
        )
    trial = results.get("precision_trial")
    if trial:
        lines += [
            "",
            f"In-process at batch 1 (the same workload): fp32 {trial['fp32_images_per_s']:.1f} "
            f"images/s, int8 {trial['int8_images_per_s']:.1f} images/s ({trial['speedup']:.2f}x); "
            f"MASK agreement {trial['mask_agreement']:.4%}, max |PROB diff| "
            f"{trial['max_abs_prob_diff']:.3f}.",
        ]
    return "\n".join(lines) + "\n"


def run_bench(args: argparse.Namespace, argv: list[str]) -> dict[str, Any]:
    args.output.parent.mkdir(parents=True, exist_ok=True)
    load_before = " ".join(f"{x:.1f}" for x in os.getloadavg())
    benches, trial = [], None
    with tempfile.TemporaryDirectory(prefix="unetkit-bench-") as work:
        if args.repository is not None:
            repositories = {args.repository.name: args.repository}
        else:
            repositories = exported_repositories(args, Path(work))
        for label, repository in repositories.items():
            benches.append(bench_repository(args, repository, label))
        if {"fp32", "int8"} <= repositories.keys():
            batches = workload(onnx_path(repositories["fp32"]), args.images, 1)
            trial = precision_trial(
                onnx_path(repositories["fp32"]),
                onnx_path(repositories["int8"]),
                batches,
                args.inprocess_s,
            )
    return {
        "machine": machine(),
        "load_before": load_before,
        "load_after": " ".join(f"{x:.1f}" for x in os.getloadavg()),
        "command": shlex.join(["python", "loadtest/bench.py", *argv]),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "versions": f"Triton {benches[0]['triton_version']} (nvidia-pytriton "
        f"{version('nvidia-pytriton')}), onnxruntime {version('onnxruntime')}, "
        f"locust {version('locust')}",
        "window_s": args.window_s,
        "max_step_s": args.max_step_s,
        "benches": benches,
        "precision_trial": trial,
    }


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    results = run_bench(args, argv)
    text = markdown(results)
    print(text)
    write_text_atomic(args.output.with_suffix(".json"), json.dumps(results, indent=2) + "\n")
    write_text_atomic(args.output, text)
    print(f"wrote {args.output} and {args.output.with_suffix('.json')}")
    failed = sum(row["failures"] for bench in results["benches"] for row in bench["steps"])
    return 1 if failed else 0


if __name__ == "__main__":
    run_cli(main)

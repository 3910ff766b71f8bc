"""Benchmark the CPU server: fp32 and int8 side by side, every served step against in-process
ONNX Runtime measured next to it, with two load generators and the CPU share each takes.

    .venv/bin/python loadtest/bench.py                      # make bench
    .venv/bin/python loadtest/bench.py --quick              # a tiny sweep (the test)
    .venv/bin/python loadtest/bench.py --repository loadtest/repository --model-name null ...

By default the example model is exported twice (fp32, and int8 through its accuracy gate)
into temporary repositories, and both are served at once by two embedded Tritons on free
ports (the idle one waits without spinning). This box's speed drifts by up to 20% from one
minute to the next, so every ratio is taken between numbers measured side by side: at each
concurrency, for each precision in turn,

    in-process -> Locust -> in-process -> second generator -> in-process

Locust runs headless until three windows agree within 10% in throughput and p95
(perf_analyzer's rule); the second generator (plain threads of tritonclient, the lightest
Python client) runs as long as those three windows; in-process ONNX Runtime runs the same
workload with the server's session settings, in as many threads (one session each) as the
server has instances busy at that concurrency. Served / in-process is against the mean of
the in-process runs on either side. Every generator sends the same workload: the sample
images, padded as the model needs, cycled in the same order, asking for MASK only.
Reported beside each step: Triton's queue/compute split and batch size, and the CPU share
of each generator and of the server (user + system time over wall time, of all cores).
Then open-loop runs with Poisson arrivals at half the saturating rate and at the rate where
the queueing arithmetic (M/D/1, the strictest) allows p99 <= 2 x p50.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import os
import platform
import shlex
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import tritonclient.grpc as grpcclient

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
from unetkit.loadgen.stability import STABLE_WINDOWS
from unetkit.triton import TritonServer, create_session, instance_count, onnx_path

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
    parser.add_argument(
        "--inprocess-s", type=float, default=5.0, help="each in-process run beside a step"
    )
    parser.add_argument(
        "--output", type=Path, default=ROOT / "loadtest" / "reports" / "bench.md",
        help="Markdown results; the raw results go beside it as .json",
    )  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="tiny sweep, short windows")
    args = parser.parse_args(argv)
    if args.quick:
        args.concurrency = "1,2"
        args.window_s, args.max_step_s, args.warmup_s, args.inprocess_s = 2.0, 15.0, 3.0, 2.0
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
    if args.inprocess_s <= 0:
        raise UserError(f"--inprocess-s {args.inprocess_s} must be more than 0")
    args.precision_list = [p.strip() for p in args.precisions.split(",") if p.strip()]
    return args


def workload(model: Path, images: Path, batch_size: int) -> list[np.ndarray]:
    """The IMAGE tensors every generator sends, in the order Locust sends them."""
    info = read_model_info(model)
    samples = load_samples(images, info.channels)
    return [pixels for pixels, _ in request_batches(samples, batch_size, info.height, info.width)]


def in_threads(work: Callable[[int], None], count: int) -> None:
    """work(0) ... work(count - 1) at once, one thread each; the first error is raised."""
    with ThreadPoolExecutor(count) as pool:
        list(pool.map(work, range(count)))


def warm_sessions(model: Path, count: int, batches: list[np.ndarray]) -> list[Any]:
    """`count` ONNX Runtime sessions as the server opens them, each run once on the workload."""
    sessions = [create_session(model, len(os.sched_getaffinity(0))) for _ in range(count)]
    for session in sessions:
        for pixels in batches:
            session.run([OUTPUT_MASK], {INPUT_IMAGE: pixels})
    return sessions


def inprocess_images_per_s(sessions: list[Any], batches: list[np.ndarray], seconds: float) -> float:
    """The workload through ONNX Runtime in this process, as the server runs it: one thread
    per session, all at once (ONNX Runtime lets go of the GIL while it runs)."""
    images = [0] * len(sessions)
    elapsed = [0.0] * len(sessions)

    def run(i: int) -> None:
        index, started = i, time.perf_counter()
        while time.perf_counter() - started < seconds:
            pixels = batches[index % len(batches)]
            sessions[i].run([OUTPUT_MASK], {INPUT_IMAGE: pixels})
            images[i] += len(pixels)
            index += 1
        elapsed[i] = time.perf_counter() - started

    in_threads(run, len(sessions))
    return sum(images) / max(elapsed)


def precision_trial(fp32: Any, int8: Any, batches: list[np.ndarray], seconds: float) -> dict:
    """In-process fp32 against int8 at batch 1, one session each, alternating three times:
    speed, MASK agreement, max |PROB diff|."""
    rounds = 3
    speeds: dict[str, list[float]] = {"fp32": [], "int8": []}
    for _ in range(rounds):
        for name, session in (("fp32", fp32), ("int8", int8)):
            speeds[name].append(inprocess_images_per_s([session], batches, seconds / rounds))
    equal = total = 0
    worst = 0.0
    for pixels in batches:
        prob32, mask32 = fp32.run([OUTPUT_PROB, OUTPUT_MASK], {INPUT_IMAGE: pixels})
        prob8, mask8 = int8.run([OUTPUT_PROB, OUTPUT_MASK], {INPUT_IMAGE: pixels})
        equal += int(np.count_nonzero(mask32 == mask8))
        total += mask32.size
        worst = max(worst, float(np.max(np.abs(prob32 - prob8))))
    fp32_speed, int8_speed = (float(np.mean(speeds[n])) for n in ("fp32", "int8"))
    return {
        "fp32_images_per_s": fp32_speed,
        "int8_images_per_s": int8_speed,
        "speedup": int8_speed / fp32_speed,
        "mask_agreement": equal / total,
        "max_abs_prob_diff": worst,
    }


def threaded_generator(
    url: str, model: str, batches: list[np.ndarray], users: int, seconds: float
) -> dict[str, float]:
    """Images/s of `users` threads of tritonclient sending back to back (the second
    generator), and this process's CPU share meanwhile."""
    images = [0] * users
    outputs = [grpcclient.InferRequestedOutput(OUTPUT_MASK)]

    def user(i: int, deadline: float) -> None:
        tensors = []
        for pixels in batches:
            tensor = grpcclient.InferInput(INPUT_IMAGE, list(pixels.shape), "UINT8")
            tensor.set_data_from_numpy(pixels)
            tensors.append(tensor)
        with grpcclient.InferenceServerClient(url) as client:
            index = i
            while time.perf_counter() < deadline:
                client.infer(model, [tensors[index % len(tensors)]], outputs=outputs)
                images[i] += len(batches[index % len(batches)])
                index += 1

    cpu, started = time.process_time(), time.perf_counter()
    in_threads(lambda i: user(i, started + seconds), users)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {
        "images_per_s": sum(images) / elapsed,
        "cpu_share": cpu / elapsed / len(os.sched_getaffinity(0)),
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


def mdc_tail_ratio(load: float, servers: int = 1, samples: int = 200_000, seed: int = 0) -> float:
    """p99 / p50 of the response time under Poisson arrivals at `load` (utilisation) of
    `servers` servers with one fixed service time: the M/D/c queue, simulated."""
    rng = np.random.default_rng(seed)
    arrivals = np.cumsum(rng.exponential(1.0 / (load * servers), samples))
    free = np.zeros(servers)
    response = np.empty(samples)
    for i, arrival in enumerate(arrivals):
        k = int(free.argmin())
        free[k] = max(free[k], arrival) + 1.0
        response[i] = free[k] - arrival
    p50, p99 = np.percentile(response, [50, 99])
    return float(p99 / p50)


@functools.cache
def tail_load() -> float:
    """The highest utilisation (in steps of 0.01) at which one server with a fixed service
    time (M/D/1, the strictest of these queues) keeps p99 <= 2 x p50."""
    load = 0.01
    while mdc_tail_ratio(load + 0.01) <= 2.0:
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


@dataclass
class Served:
    """One server under test, with in-process sessions like its model instances."""

    label: str
    server: TritonServer
    instances: int
    batches: list[np.ndarray]
    sessions: list[Any]  # one per instance; none without a kit export (the echo model)
    triton_version: str = ""
    steps: list[dict[str, Any]] = field(default_factory=list)

    def inprocess(self, users: int, seconds: float) -> float:
        busy = self.sessions[: min(users, len(self.sessions))]
        return inprocess_images_per_s(busy, self.batches, seconds) if busy else 0.0


def start_served(
    stack: ExitStack, args: argparse.Namespace, repository: Path, label: str
) -> Served:
    server = stack.enter_context(
        TritonServer.on_free_ports(
            repository,
            model_config_name=args.config_name or None,
            log_file=args.output.parent / f"bench_triton_{label}.log",
        )
    )
    with grpcclient.InferenceServerClient(server.grpc_url) as client:
        triton_version = client.get_server_metadata(as_json=True)["version"]
        config = client.get_model_config(args.model_name, as_json=True)["config"]
        inputs = client.get_model_metadata(args.model_name, as_json=True)["inputs"]
    instances = instance_count(config)
    model = onnx_path(repository)
    if model.is_file():
        batches = workload(model, args.images, args.batch_size)
        sessions = warm_sessions(model, instances, batches)
    else:  # a model without a kit export (the echo model): 64x64 zeros, channels as it says
        channels = max(int(inputs[0]["shape"][-1]), 1)
        batches = [np.zeros((args.batch_size, 64, 64, channels), np.uint8)]
        sessions = []
    return Served(label, server, instances, batches, sessions, triton_version)


def measure_step(served: Served, args: argparse.Namespace, users: int) -> dict[str, Any]:
    """in-process, Locust, in-process, second generator, in-process: one concurrency."""
    before = served.inprocess(users, args.inprocess_s)
    row = measured_run(served.server, args, users, [])
    between = served.inprocess(users, args.inprocess_s)
    second = threaded_generator(
        served.server.grpc_url, args.model_name, served.batches, users,
        STABLE_WINDOWS * args.window_s,
    )  # fmt: skip
    after = served.inprocess(users, args.inprocess_s)
    locust_reference, second_reference = (before + between) / 2, (between + after) / 2
    row.update(
        inprocess_images_per_s=locust_reference,
        inprocess_runs=[before, between, after],
        served_over_inprocess=row["images_per_s"] / locust_reference if locust_reference else 0.0,
        second_images_per_s=second["images_per_s"],
        second_cpu_share=second["cpu_share"],
        second_over_inprocess=second["images_per_s"] / second_reference
        if second_reference
        else 0.0,
        second_over_locust=second["images_per_s"] / row["images_per_s"]
        if row["images_per_s"]
        else 0.0,
    )
    return row


def open_loops(served: Served, args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Poisson arrivals at half the saturating rate and where M/D/1 allows p99 <= 2 x p50;
    beside each, M/D/1 and M/D/c with c the model's instances (each instance computing at
    its share of the saturating rate: a bound, since a lone request runs faster)."""
    busiest = max(served.steps, key=lambda r: r["images_per_s"])
    users = busiest["concurrency"]
    loops = {}
    for name, load in (("half", 0.5), ("tail_target", tail_load())):
        rate = busiest["requests_per_s"] * load
        row = measured_run(
            served.server,
            args,
            users,
            ["--open-loop-rate", f"{rate / users:.4f}", "--arrivals", "poisson"],
        )
        row.update(
            offered_requests_per_s=rate,
            load=load,
            servers=served.instances,
            md1_p99_over_p50=mdc_tail_ratio(load),
            mdc_p99_over_p50=mdc_tail_ratio(load, served.instances),
        )
        loops[name] = row
    return loops


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
        "from Triton's statistics API over the same windows; in-process runs of "
        f"{results['inprocess_s']:g} s before and after each generator, with as many sessions "
        "at once as the server has instances busy; CPU share = user + system time over wall "
        "time, of all cores (Locust's start-up included).",
    ]
    for bench in results["benches"]:
        lines += [
            "",
            f"#### {bench['label']} ({bench['instances']} model instance"
            f"{'s' if bench['instances'] > 1 else ''})",
            "",
            "| concurrency | images/s | p50 ms | p95 ms | p99 ms | failures | queue ms | "
            "compute ms | avg batch | in-process | served / in-process | Locust CPU | "
            "server CPU | second generator | its CPU | second / in-process | "
            "second / Locust | stable |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
            "---:|:---:|",
        ]
        for row in bench["steps"]:
            inprocess = row["inprocess_images_per_s"]
            lines.append(
                f"| {row['concurrency']} | {row['images_per_s']:.1f} | {row['p50_ms']:.1f} | "
                f"{row['p95_ms']:.1f} | {row['p99_ms']:.1f} | {row['failures']} | "
                f"{row['queue_ms']:.1f} | {row['compute_ms']:.1f} | {row['avg_batch']:.2f} | "
                + (
                    f"{inprocess:.1f} | {row['served_over_inprocess']:.2f} | "
                    if inprocess
                    else "n/a | n/a | "
                )
                + f"{row['generator_cpu_share']:.0%} | {row['server_cpu_share']:.0%} | "
                f"{row['second_images_per_s']:.1f} | {row['second_cpu_share']:.0%} | "
                + (f"{row['second_over_inprocess']:.2f} | " if inprocess else "n/a | ")
                + f"{row['second_over_locust']:.2f} | {'yes' if row['stable'] else 'no'} |"
            )
        lines.append("")
        for row in bench["open_loop"].values():
            lines.append(
                f"Open loop, Poisson arrivals at {row['load']:.0%} of the saturating rate "
                f"({row['offered_requests_per_s']:.1f} req/s offered, {row['requests_per_s']:.1f} "
                f"served): p50 {row['p50_ms']:.1f} ms, p99 {row['p99_ms']:.1f} ms, p99/p50 "
                f"{row['p99_ms'] / max(row['p50_ms'], 1e-9):.2f} (with a fixed service time, "
                f"one server, M/D/1: {row['md1_p99_over_p50']:.2f}; {row['servers']} servers, "
                f"M/D/{row['servers']}: {row['mdc_p99_over_p50']:.2f}), failures "
                f"{row['failures']}."
            )
    by_label = {bench["label"]: bench for bench in results["benches"]}
    if {"fp32", "int8"} <= by_label.keys():
        lines += [
            "",
            "| concurrency | fp32 images/s | int8 images/s | int8 / fp32 |",
            "|---:|---:|---:|---:|",
        ]
        for a, b in zip(by_label["fp32"]["steps"], by_label["int8"]["steps"], strict=True):
            lines.append(
                f"| {a['concurrency']} | {a['images_per_s']:.1f} | {b['images_per_s']:.1f} | "
                f"{b['images_per_s'] / a['images_per_s']:.2f} |"
            )
    trial = results.get("precision_trial")
    if trial:
        lines += [
            "",
            f"In-process at batch 1, one session each, alternating: fp32 "
            f"{trial['fp32_images_per_s']:.1f} images/s, int8 {trial['int8_images_per_s']:.1f} "
            f"images/s ({trial['speedup']:.2f}x); MASK agreement {trial['mask_agreement']:.4%}, "
            f"max |PROB diff| {trial['max_abs_prob_diff']:.3f}.",
        ]
    return "\n".join(lines) + "\n"


def run_bench(args: argparse.Namespace, argv: list[str]) -> dict[str, Any]:
    args.output.parent.mkdir(parents=True, exist_ok=True)
    load_before = " ".join(f"{x:.1f}" for x in os.getloadavg())
    trial = None
    with tempfile.TemporaryDirectory(prefix="unetkit-bench-") as work, ExitStack() as stack:
        if args.repository is not None:
            repositories = {args.repository.name: args.repository}
        else:
            repositories = exported_repositories(args, Path(work))
        targets = [start_served(stack, args, path, label) for label, path in repositories.items()]
        for served in targets:
            print(f"[{served.label}] warming up for {args.warmup_s:g} s", flush=True)
            threaded_generator(
                served.server.grpc_url, args.model_name, served.batches, max(args.levels),
                args.warmup_s,
            )  # fmt: skip
        for users in args.levels:
            for served in targets:
                row = measure_step(served, args, users)
                served.steps.append(row)
                print(
                    f"[{served.label}] concurrency {users}: {row['images_per_s']:.1f} images/s"
                    + (
                        f" ({row['served_over_inprocess']:.2f} of in-process)"
                        if served.sessions
                        else ""
                    )
                    + f", p50 {row['p50_ms']:.1f} ms, p99 {row['p99_ms']:.1f} ms, failures "
                    f"{row['failures']}, avg batch {row['avg_batch']:.2f}, Locust CPU "
                    f"{row['generator_cpu_share']:.0%}; second generator "
                    f"{row['second_images_per_s']:.1f} ({row['second_over_locust']:.2f} of Locust)"
                    + ("" if row["stable"] else " (not stable)"),
                    flush=True,
                )
        benches = []
        for served in targets:
            benches.append(
                {
                    "label": served.label,
                    "triton_version": served.triton_version,
                    "instances": served.instances,
                    "steps": served.steps,
                    "open_loop": open_loops(served, args),
                }
            )
        by_label = {served.label: served for served in targets}
        if {"fp32", "int8"} <= by_label.keys():
            trial = precision_trial(
                by_label["fp32"].sessions[0],
                by_label["int8"].sessions[0],
                by_label["fp32"].batches,
                3 * args.inprocess_s,
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
        "inprocess_s": args.inprocess_s,
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

"""How the served engine should use the cores: model instances x engine threads, served and
measured by perf_analyzer, taking turns; and OpenVINO's own hints in-process.

    .venv/bin/python loadtest/bench_threads.py        # make bench-threads

Served (the example model exported as `make serve` exports it, one Triton per variant):
two instances with every core each (the kit's configuration), one instance with every core,
and two instances with one thread each. In-process (OpenVINO): the latency hint (one
stream, one request at a time on every core) against the throughput hint (as many streams
as it picks, as many requests in flight), the upper bound of what streams could give.
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from bench import new_repository  # loadtest/ is sys.path[0]
from bench_engines import workload
from bench_report import write_table

from unetkit.core import INPUT_IMAGE, UserError, run_cli
from unetkit.loadgen import find_perf_analyzer, run_perf_analyzer, write_input_data
from unetkit.pipelines import EXAMPLE_MODEL, make_repository
from unetkit.triton import OPENVINO, TritonServer, cpu_config_path, onnx_path

ROOT = Path(__file__).resolve().parent.parent
# (label, instances, threads per instance; 0 = every core)
VARIANTS = (("2 instances x every core", 2, 0), ("1 instance x every core", 1, 0),
            ("2 instances x 1 thread", 2, 1))  # fmt: skip


def variant(exported: Path, target: Path, instances: int, threads: int) -> Path:
    """A copy of `exported` whose config has `instances` instances of `threads` threads."""
    repository = new_repository(target)
    onnx_path(repository).write_bytes(onnx_path(exported).read_bytes())
    config = cpu_config_path(exported).read_text()
    config = re.sub(r"count: \d+", f"count: {instances}", config)
    config = re.sub(
        r'(key: "intra_op_threads" value: \{ string_value: ")\d+', rf"\g<1>{threads}", config
    )
    cpu_config_path(repository).write_text(config)
    return repository


def openvino_hints(model: Path, batches: list, seconds: float) -> list[str]:
    """Images/s of OpenVINO's latency and throughput hints on this model, in-process."""
    import openvino as ov

    core = ov.Core()
    rows = []
    for hint in ("LATENCY", "THROUGHPUT"):
        compiled = core.compile_model(str(model), "CPU", {"PERFORMANCE_HINT": hint})
        streams = compiled.get_property("NUM_STREAMS")
        requests = compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")
        queue = ov.AsyncInferQueue(compiled, requests)
        started, index = time.perf_counter(), 0
        while time.perf_counter() - started < seconds:
            queue.start_async({INPUT_IMAGE: batches[index % len(batches)]})
            index += 1
        queue.wait_all()  # every request started has finished
        rate = index / (time.perf_counter() - started)
        label = f"in-process, hint {hint} ({streams} streams, {len(queue)} requests)"
        rows.append(f"| {label} | {rate:.1f} (any concurrency) | | |")
    return rows


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--concurrency", default="1,2,4")
    parser.add_argument("--window-s", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=2, help="sweeps, taking turns")
    parser.add_argument("--output", type=Path, default=ROOT / "loadtest/reports/bench_threads.md")
    args = parser.parse_args(argv)
    levels = [int(c) for c in args.concurrency.split(",")]
    perf_analyzer = find_perf_analyzer()
    if perf_analyzer is None:
        raise UserError("perf_analyzer is not installed: `make venv` installs it")
    with tempfile.TemporaryDirectory(prefix="unetkit-threads-") as work, ExitStack() as stack:
        exported = new_repository(Path(work) / "exported")
        make_repository(EXAMPLE_MODEL, exported, runtime=OPENVINO, force=True)
        batches = workload(onnx_path(exported), ROOT / "samples")
        data = Path(work) / "input.json"
        write_input_data(batches, data)
        servers = {
            label: stack.enter_context(
                TritonServer.on_free_ports(
                    variant(exported, Path(work) / str(i), instances, threads),
                    model_config_name="cpu",
                )
            )
            for i, (label, instances, threads) in enumerate(VARIANTS)
        }
        rates: dict[tuple[str, int], list[float]] = {}
        for _ in range(args.rounds):
            for users in levels:
                for label, server in servers.items():
                    step = run_perf_analyzer(
                        perf_analyzer, server.grpc_url, "unet", users, data, args.window_s
                    )
                    rates.setdefault((label, users), []).append(step.images_per_s)
                    print(f"{label}, concurrency {users}: {step.images_per_s:.1f}", flush=True)
        rows = [
            f"| {label} | "
            + " | ".join(f"{sum(rates[label, u]) / len(rates[label, u]):.1f}" for u in levels)
            + " |"
            for label, _, _ in VARIANTS
        ]
        rows += openvino_hints(onnx_path(exported), batches, 5.0)
    columns = (
        "| served variant (OpenVINO, images/s by concurrency) | "
        + " | ".join(str(u) for u in levels)
        + " |",
        "|---|" + "---:|" * len(levels),
    )
    write_table(args.output, "bench_threads.py", argv, columns, rows)
    return 0


if __name__ == "__main__":
    run_cli(main)

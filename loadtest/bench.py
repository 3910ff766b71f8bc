"""Benchmark the CPU route: every engine side by side, in-process and served, with NVIDIA's
perf_analyzer as the reference load generator and Locust beside it for the engine the kit
serves by default.

    .venv/bin/python loadtest/bench.py                    # make bench
    .venv/bin/python loadtest/bench.py --quick            # a tiny sweep (the test)
    .venv/bin/python loadtest/bench.py --repository DIR   # one repository, as it is

By default the example model is exported as `make serve` exports it (the engine chosen by
measurement), and once more for every other runtime x precision (ONNX Runtime and OpenVINO;
fp32, int8, and bf16 where the CPU has it natively), each into a temporary repository
served by its own embedded Triton on free ports (an idle one waits without spinning).
This box's speed drifts by up to 20% from one minute to the next, so every ratio is taken
between numbers measured side by side: at each concurrency, for each engine in turn,

    in-process -> perf_analyzer -> in-process [-> Locust -> in-process: the served engine]

In-process runs the same workload with the server's engine settings, in as many threads
(one engine each) as the server has instances busy. Every generator sends the same
workload: the sample images, padded as the model needs, in the same order, asking for
PROB and MASK. perf_analyzer measures until three windows agree within 10% (a step that
never does is measured again with a looser rule and marked not stable); Locust likewise.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shlex
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import tritonclient.grpc as grpcclient
from bench_engines import (
    alternating,
    data_type,
    images_per_s,
    in_threads,
    macs_per_image,
    mask_agreement,
    nominal_peak,
    workload,
)  # loadtest/ is sys.path[0]
from bench_report import load, machine, markdown, targets

from unetkit.core import (
    INPUT_IMAGE,
    MODEL_NAME,
    OUTPUT_MASK,
    OUTPUT_PROB,
    UserError,
    run_cli,
    write_text_atomic,
)
from unetkit.loadgen import find_perf_analyzer, run_locust, run_perf_analyzer, write_input_data
from unetkit.pipelines import EXAMPLE_MODEL, make_repository
from unetkit.triton import (
    REFERENCE,
    Engine,
    EngineSpec,
    TritonServer,
    instance_count,
    onnx_path,
    open_engine,
    read_served_engine,
)

ROOT = Path(__file__).resolve().parent.parent


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repository", type=Path, help="benchmark this repository as it is")
    parser.add_argument("--keras-model", type=Path, default=EXAMPLE_MODEL)
    parser.add_argument("--images", type=Path, default=ROOT / "samples")
    parser.add_argument("--concurrency", default="1,2,4,8", help="comma-separated user counts")
    parser.add_argument("--window-s", type=float, default=3.0, help="measurement window")
    parser.add_argument("--max-step-s", type=float, default=45.0, help="Locust's longest step")
    parser.add_argument("--inprocess-s", type=float, default=3.0, help="each in-process run")
    parser.add_argument(
        "--output", type=Path, default=ROOT / "loadtest" / "reports" / "bench.md",
        help="Markdown results; the raw results go beside it as .json",
    )  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="tiny sweep, short windows")
    args = parser.parse_args(argv)
    if args.quick:
        args.concurrency = "1,2"
        args.window_s, args.max_step_s, args.inprocess_s = 1.0, 15.0, 1.0
    try:
        args.levels = [int(c) for c in args.concurrency.split(",")]
    except ValueError as e:
        raise UserError(f"--concurrency {args.concurrency!r}: give integers like 1,2,4,8") from e
    if not args.levels or min(args.levels) < 1:
        raise UserError("--concurrency needs user counts of at least 1")
    if args.window_s <= 0 or args.max_step_s < 3 * args.window_s or args.inprocess_s <= 0:
        raise UserError("--window-s and --inprocess-s must be > 0, --max-step-s >= 3 windows")
    return args


@dataclass
class Served:
    """One engine served by its own Triton, with in-process engines like its instances."""

    spec: EngineSpec
    repository: Path
    server: TritonServer
    engines: list[Engine]
    default: bool  # what `make serve` serves on this machine
    steps: list[dict[str, Any]] = field(default_factory=list)

    def inprocess(self, users: int, batches: list, seconds: float) -> float:
        return images_per_s(self.engines[: min(users, len(self.engines))], batches, seconds)


def exported(args: argparse.Namespace, work: Path) -> tuple[dict[EngineSpec, Path], list[str]]:
    """The default export, then one repository per other engine it measured; the engines
    left out, with why."""
    if args.repository is not None:
        return {read_served_engine(args.repository): args.repository}, []
    repositories: dict[EngineSpec, Path] = {}
    notes = []
    default = new_repository(work / "default")
    choice = make_repository(args.keras_model, default, force=True).choice
    assert choice is not None
    repositories[choice.served] = default
    for candidate in choice.candidates:
        spec = candidate.spec
        if candidate.skipped or spec in repositories:
            if candidate.skipped:
                notes.append(f"{spec}: {candidate.skipped}")
            continue
        target = new_repository(work / f"{spec.runtime}-{spec.precision}")
        outcome = make_repository(
            args.keras_model, target, precision=spec.precision, runtime=spec.runtime, force=True
        )
        assert outcome.choice is not None
        if outcome.choice.served != spec:
            notes.append(f"{spec}: not served ({outcome.choice.reason})")
            continue
        repositories[spec] = target
    return repositories, notes


def new_repository(path: Path) -> Path:
    """An empty copy of the kit's model repository (its code and configs)."""
    committed = ROOT / "model_repository" / MODEL_NAME
    for name in ("configs", "1"):
        (path / MODEL_NAME / name).mkdir(parents=True)
    (path / MODEL_NAME / "1" / "model.py").write_bytes((committed / "1" / "model.py").read_bytes())
    return path


def start(stack: ExitStack, spec: EngineSpec, repository: Path, log_dir: Path) -> Served:
    server = stack.enter_context(
        TritonServer.on_free_ports(
            repository,
            model_config_name="cpu",
            log_file=log_dir / f"bench_triton_{spec.runtime}_{spec.precision}.log",
        )
    )
    with grpcclient.InferenceServerClient(server.grpc_url) as client:
        config = client.get_model_config(MODEL_NAME, as_json=True)["config"]
    engines = [open_engine(spec, onnx_path(repository)) for _ in range(instance_count(config))]
    return Served(spec, repository, server, engines, default=False)


def warm_up(served: Served, batches: list) -> None:
    """Every request shape once through each instance, and through the in-process engines:
    OpenVINO prepares its kernels on the first run of a shape."""
    outputs = [grpcclient.InferRequestedOutput(n) for n in (OUTPUT_PROB, OUTPUT_MASK)]

    def send(_: int) -> None:
        with grpcclient.InferenceServerClient(served.server.grpc_url) as client:
            for pixels in batches:
                tensor = grpcclient.InferInput(INPUT_IMAGE, list(pixels.shape), "UINT8")
                tensor.set_data_from_numpy(pixels)
                client.infer(MODEL_NAME, [tensor], outputs=outputs)

    in_threads(send, len(served.engines))
    images_per_s(served.engines, batches, 0.5)


def locust_step(served: Served, args: argparse.Namespace, users: int) -> dict[str, Any]:
    run = run_locust(
        served.server.grpc_url,
        MODEL_NAME,
        users,
        args.max_step_s,
        [
            "--images", str(args.images), "--outputs", f"{OUTPUT_PROB},{OUTPUT_MASK}",
            "--validate-fraction", "0.02", "--window", str(args.window_s),
            "--stop-when-stable", "--server-stats",
        ],
    )  # fmt: skip
    if not run.report:
        raise UserError(f"Locust gave no report at concurrency {users}:\n{run.output}")
    steady = run.report.get("steady", {})
    return {
        "images_per_s": steady.get("images_per_s", 0.0),
        "p50_ms": steady.get("latency_ms", {}).get("p50", 0.0),
        "p99_ms": steady.get("latency_ms", {}).get("p99", 0.0),
        "stable": bool(run.report.get("stable")),
        "failures": run.report.get("failures", 0),
        "cpu_ms_per_request": run.cpu_seconds * 1000 / max(1, run.report.get("requests", 0)),
    }


def measure_step(
    served: Served, args: argparse.Namespace, users: int, batches: list, tools: dict
) -> dict[str, Any]:
    """in-process, perf_analyzer, in-process (then Locust and in-process again for the
    engine served by default): one concurrency of one engine."""
    runs = [served.inprocess(users, batches, args.inprocess_s)]
    perf = run_perf_analyzer(
        tools["perf_analyzer"], served.server.grpc_url, MODEL_NAME, users,
        tools["input_data"], args.window_s,
    )  # fmt: skip
    runs.append(served.inprocess(users, batches, args.inprocess_s))
    row: dict[str, Any] = {"concurrency": users, "perf_analyzer": perf.as_dict()}
    row["inprocess_runs"] = runs[:]
    reference = (runs[0] + runs[1]) / 2
    row["inprocess_images_per_s"] = reference
    row["served_over_inprocess"] = perf.images_per_s / reference
    if served.default:
        locust = locust_step(served, args, users)
        runs.append(served.inprocess(users, batches, args.inprocess_s))
        locust["served_over_inprocess"] = locust["images_per_s"] / ((runs[1] + runs[2]) / 2)
        locust["over_perf_analyzer"] = locust["images_per_s"] / perf.images_per_s
        row["locust"], row["inprocess_runs"] = locust, runs
    return row


def engine_table(targets_: list[Served], batches: list, seconds: float, model: Path) -> list:
    """Each engine alone in-process, taking turns: images/s, GMAC/s, share of peak, MASK
    agreement with ONNX Runtime fp32."""
    engines = {s.spec: s.engines[0] for s in targets_}
    speeds = alternating(engines, batches, 3 * seconds)
    height, width = batches[0].shape[1:3]
    macs = macs_per_image(model, height, width)
    reference = engines.get(REFERENCE)
    rows = []
    for spec, speed in speeds.items():
        peak, derivation = nominal_peak(data_type(spec))
        rows.append(
            {
                "engine": str(spec),
                "images_per_s": speed,
                "gmac_per_s": speed * macs / 1e9,
                "peak_share": speed * macs / peak if peak else None,
                "peak": derivation,
                "mask_agreement": None
                if reference is None
                else mask_agreement(reference, engines[spec], batches),
            }
        )
    return rows


def run_bench(args: argparse.Namespace, argv: list[str]) -> dict[str, Any]:
    perf_analyzer = find_perf_analyzer()
    if perf_analyzer is None:
        raise UserError(
            "perf_analyzer is not installed or cannot run: `make venv` installs it; it needs "
            "Debian's libb64-0d (apt-get install libb64-0d)"
        )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"load_before": load()}
    with tempfile.TemporaryDirectory(prefix="unetkit-bench-") as work, ExitStack() as stack:
        repositories, results["left_out"] = exported(args, Path(work))
        default_spec = next(iter(repositories))
        served = [start(stack, s, r, args.output.parent) for s, r in repositories.items()]
        served[0].default = True
        batches = workload(onnx_path(served[0].repository), args.images)
        tools = {"perf_analyzer": perf_analyzer, "input_data": Path(work) / "input.json"}
        write_input_data(batches, tools["input_data"])
        for target in served:
            warm_up(target, batches)
        results["engines"] = engine_table(
            served, batches, args.inprocess_s, onnx_path(served[0].repository)
        )
        for users in args.levels:
            for target in served:
                target.steps.append(measure_step(target, args, users, batches, tools))
                print(f"[{target.spec}] concurrency {users}: {target.steps[-1]}", flush=True)
        results["served"] = [
            {"engine": str(s.spec), "default": s.default, "steps": s.steps} for s in served
        ]
    results.update(
        machine=machine(),
        load_after=load(),
        command=shlex.join(["python", "loadtest/bench.py", *argv]),
        date=f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}",
        versions=", ".join(
            f"{name} {version(name)}"
            for name in ("nvidia-pytriton", "onnxruntime", "openvino", "locust")
        )
        + ", perf_analyzer 2.51.0",
        default_engine=str(default_spec),
    )
    results["targets"] = targets(results)
    return results


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    results = run_bench(args, argv)
    text = markdown(results)
    print(text)
    write_text_atomic(args.output.with_suffix(".json"), json.dumps(results, indent=2) + "\n")
    write_text_atomic(args.output, text)
    print(f"wrote {args.output} and {args.output.with_suffix('.json')}")
    failed = sum(
        step.get("locust", {}).get("failures", 0)
        for served in results["served"]
        for step in served["steps"]
    )
    return 1 if failed else 0


if __name__ == "__main__":
    run_cli(main)

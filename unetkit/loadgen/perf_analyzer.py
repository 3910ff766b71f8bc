"""NVIDIA's own load generator, perf_analyzer, as the benchmarks' reference beside Locust.

The binary ships in the tritonclient 2.51 wheel (`make venv` installs it into
.venv/perf-analyzer with the CUDA runtime library it links against; it needs Debian's
libb64-0d too). It runs the same workload as the Locust user: the sample images padded as
the model needs, in the same order (`--input-data`), every output requested, in a closed
loop at one concurrency, until three windows agree (perf_analyzer's own stability rule).
"""

from __future__ import annotations

import csv
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from unetkit.core import INPUT_IMAGE, UserError

PERF_ANALYZER_ENV = "UNETKIT_PERF_ANALYZER"
# A step that is not stable within this many windows is measured again with a looser rule
# and reported as not stable.
MAX_TRIALS = 8
STABILITY_PERCENT = 10
LOOSE_STABILITY_PERCENT = 50


def install_dir() -> Path:
    return Path(sys.prefix) / "perf-analyzer"


def find_perf_analyzer() -> Path | None:
    """$UNETKIT_PERF_ANALYZER, else the copy `make venv` installs; None when neither runs."""
    candidate = Path(os.environ.get(PERF_ANALYZER_ENV) or install_dir() / "bin" / "perf_analyzer")
    if not candidate.is_file():
        return None
    probe = subprocess.run(
        [str(candidate), "--version"], capture_output=True, text=True, env=_environment()
    )
    return candidate if probe.returncode == 0 else None


def _environment() -> dict[str, str]:
    """perf_analyzer links libcudart.so.12 (from the nvidia-cuda-runtime-cu12 wheel)."""
    cudart = install_dir() / "nvidia" / "cuda_runtime" / "lib"
    paths = [str(cudart), os.environ.get("LD_LIBRARY_PATH", "")]
    return {**os.environ, "LD_LIBRARY_PATH": os.pathsep.join(p for p in paths if p)}


def write_input_data(batches: list[np.ndarray], path: Path) -> None:
    """perf_analyzer's JSON input data: one step per request tensor, sent in this order."""
    steps = [
        {INPUT_IMAGE: {"content": batch.ravel().tolist(), "shape": list(batch.shape[1:])}}
        for batch in batches
    ]
    path.write_text(json.dumps({"data": steps}))


@dataclass(frozen=True)
class PerfStep:
    concurrency: int
    stable: bool
    images_per_s: float
    p50_ms: float
    p99_ms: float
    avg_ms: float
    queue_ms: float
    compute_ms: float
    marshal_us: float  # perf_analyzer's own (un)marshalling per request
    cpu_ms_per_request: float  # the generator's CPU time per request, start-up included

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def run_perf_analyzer(
    binary: Path,
    url: str,
    model: str,
    concurrency: int,
    input_data: Path,
    window_s: float,
) -> PerfStep:
    """One closed-loop step; measured again with a looser rule when it is not stable."""
    for stability, stable in ((STABILITY_PERCENT, True), (LOOSE_STABILITY_PERCENT, False)):
        step = _one_run(binary, url, model, concurrency, input_data, window_s, stability, stable)
        if step is not None:
            return step
    raise UserError(f"perf_analyzer found no stable measurement at concurrency {concurrency}")


def _one_run(
    binary: Path,
    url: str,
    model: str,
    concurrency: int,
    input_data: Path,
    window_s: float,
    stability: int,
    stable: bool,
) -> PerfStep | None:
    with tempfile.TemporaryDirectory(prefix="unetkit-perf-") as folder:
        table = Path(folder) / "step.csv"
        command = [
            str(binary), "-m", model, "-u", url, "-i", "grpc",
            "--concurrency-range", str(concurrency),
            "--input-data", str(input_data),
            "--measurement-interval", str(int(window_s * 1000)),
            "--stability-percentage", str(stability), "--max-trials", str(MAX_TRIALS),
            "-f", str(table), "--verbose-csv",
        ]  # fmt: skip
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.monotonic()
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            env=_environment(),
            timeout=window_s * (MAX_TRIALS + 4) + 60,
        )
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        wall = time.monotonic() - started
        if done.returncode != 0 or not table.is_file():
            if "stable" in done.stdout + done.stderr:
                return None
            raise UserError(f"perf_analyzer failed: {(done.stderr or done.stdout).strip()[-300:]}")
        with table.open() as f:
            row = next(csv.DictReader(f))
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    rate = float(row["Inferences/Second"])
    return PerfStep(
        concurrency=concurrency,
        stable=stable,
        images_per_s=rate,
        p50_ms=float(row["p50 latency"]) / 1000,
        p99_ms=float(row["p99 latency"]) / 1000,
        avg_ms=float(row["Avg latency"]) / 1000,
        queue_ms=float(row["Server Queue"]) / 1000,
        compute_ms=sum(
            float(row[k])
            for k in ("Server Compute Input", "Server Compute Infer", "Server Compute Output")
        )
        / 1000,
        marshal_us=float(row["request/response"]),
        # Every trial window sends at about the reported rate: requests ~ rate x wall time.
        cpu_ms_per_request=cpu * 1000 / max(1.0, rate * wall),
    )

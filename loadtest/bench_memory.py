"""ONNX Runtime's memory on the CPU route: peak and leftover resident memory of a run, with
and without its CPU memory arena and memory pattern, each size in a fresh process.

    .venv/bin/python loadtest/bench_memory.py          # make bench-memory

For each setting and input shape, a child process opens the session, runs the shape twice
(the memory pattern is planned on the first run and used from the second) and reports its
resident memory: with the session open, at the peak, and after the runs. The setting the
kit uses (unetkit.triton.create_session: arena and pattern off) is the last row.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_report import write_table  # loadtest/ is sys.path[0]

from unetkit.core import run_cli
from unetkit.keras2onnx import write_onnx
from unetkit.pipelines import EXAMPLE_MODEL

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = {  # name: (enable_cpu_mem_arena, enable_mem_pattern)
    "ONNX Runtime's defaults (arena and pattern on)": (True, True),
    "arena off, pattern on": (False, True),
    "arena and pattern off (the kit)": (False, False),
}
SHAPES = ((1, 512, 512), (1, 1024, 1024), (4, 1024, 1024), (1, 2048, 2048))

CHILD = """
import json, re, sys
from pathlib import Path
import numpy as np
import onnxruntime as ort

def kib(key):
    status = Path("/proc/self/status").read_text()
    return int(re.search(rf"^{key}:\\s+(\\d+) kB", status, re.M).group(1))

path, arena, pattern, n, h, w, threads = sys.argv[1:]
options = ort.SessionOptions()
options.intra_op_num_threads = int(threads)
options.inter_op_num_threads = 1
options.enable_cpu_mem_arena = arena == "1"
options.enable_mem_pattern = pattern == "1"
session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
opened = kib("VmRSS")
image = np.random.default_rng(0).integers(0, 256, (int(n), int(h), int(w), 1), np.uint8)
peaks = []
for _ in range(2):
    session.run(None, {"IMAGE": image})
    peaks.append(kib("VmHWM"))
after = kib("VmRSS")
print(json.dumps({"open": opened, "peak_first": peaks[0], "peak_second": peaks[1], "after": after}))
"""


def measure(onnx: Path, arena: bool, pattern: bool, shape: tuple[int, int, int]) -> dict:
    n, h, w = shape
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(onnx), str(int(arena)), str(int(pattern)), str(n), str(h),
         str(w), str(len(os.sched_getaffinity(0)))],
        capture_output=True, text=True, timeout=1800, check=True,
    )  # fmt: skip
    return json.loads(result.stdout)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keras-model", type=Path, default=EXAMPLE_MODEL)
    parser.add_argument("--output", type=Path, default=ROOT / "loadtest/reports/bench_memory.md")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as work:
        onnx = Path(work) / "model.onnx"
        write_onnx(args.keras_model, onnx)
        for name, (arena, pattern) in SETTINGS.items():
            for shape in SHAPES:
                m = measure(onnx, arena, pattern, shape)
                pixels = shape[0] * shape[1] * shape[2]
                per_pixel = (m["peak_second"] - m["open"]) * 1024 / pixels
                rows.append(
                    f"| {name} | {'x'.join(map(str, shape))} | {m['open'] / 1024:.0f} | "
                    f"{m['peak_first'] / 2**20:.2f} | {m['peak_second'] / 2**20:.2f} | "
                    f"{per_pixel:.0f} | {m['after'] / 2**20:.2f} |"
                )
                print(rows[-1], flush=True)
    columns = (
        "| session | NxHxW | open MiB | peak, 1st run GiB | peak, 2nd run GiB | "
        "bytes/pixel (2nd) | after GiB |",
        "|---|---|---:|---:|---:|---:|---:|",
    )
    write_table(args.output, "bench_memory.py", argv, columns, rows)
    return 0


if __name__ == "__main__":
    run_cli(main)

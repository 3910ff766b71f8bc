"""Which int8 scheme for the CPU route: ONNX Runtime's QDQ or QOperator format, per-channel
or per-tensor weight scales, each measured for speed and accuracy against fp32.

    .venv/bin/python loadtest/bench_int8.py        # make bench-int8

The example model (or --keras-model) is exported in fp32 and quantized each way, calibrated
on samples/ as make repository does; every variant then runs the samples in-process with the
server's session settings (batch 1, all cores), and goes through the accuracy gate.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from bench_engines import images_per_s, workload  # loadtest/ is sys.path[0]
from bench_report import write_table

from unetkit.core import load_samples, run_cli
from unetkit.keras2onnx import export_onnx, save_onnx
from unetkit.pipelines import EXAMPLE_MODEL, SAMPLES
from unetkit.triton import (
    FP32,
    INT8,
    ONNXRUNTIME,
    EngineSpec,
    Scheme,
    check_against_fp32,
    network_input,
    open_engine,
    quantize,
    split,
)

ROOT = Path(__file__).resolve().parent.parent
SCHEMES = [Scheme(qdq, per_channel) for qdq in (True, False) for per_channel in (True, False)]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keras-model", type=Path, default=EXAMPLE_MODEL)
    parser.add_argument("--images", type=Path, default=SAMPLES)
    parser.add_argument("--seconds", type=float, default=20.0, help="in-process run per model")
    parser.add_argument("--output", type=Path, default=ROOT / "loadtest/reports/bench_int8.md")
    args = parser.parse_args(argv)
    threads = len(os.sched_getaffinity(0))
    rows = []
    with tempfile.TemporaryDirectory() as work:
        model, info = export_onnx(args.keras_model)
        fp32 = Path(work) / "fp32.onnx"
        save_onnx(model, fp32)
        batches = workload(fp32, args.images, 1)
        samples = load_samples(args.images, info.channels)
        calibration = [network_input(s.image, info) for s in split(samples)[0]]
        reference = open_engine(EngineSpec(ONNXRUNTIME, FP32), fp32, threads)
        base = images_per_s([reference], batches, args.seconds)
        rows.append(f"| fp32 | {base:.1f} | 1.00 | | | |")
        for scheme in SCHEMES:
            path = Path(work) / f"int8_{scheme.qdq}_{scheme.per_channel}.onnx"
            quantize(fp32, path, calibration, scheme)
            candidate = open_engine(EngineSpec(ONNXRUNTIME, INT8), path, threads)
            speed = images_per_s([candidate], batches, args.seconds)
            gate = check_against_fp32(reference, candidate, info, samples)
            rows.append(
                f"| int8 {scheme} | {speed:.1f} | {speed / base:.2f} | "
                f"{gate.mask_agreement_calibration:.4%} / {gate.mask_agreement_held_back:.4%} | "
                f"{gate.iou_candidate:.4f} (fp32 {gate.iou_fp32:.4f}) | "
                f"{'pass' if gate.passed else 'FAIL'} |"
            )
            print(rows[-1], flush=True)
    columns = (
        "| model | images/s (batch 1) | vs fp32 | MASK agreement (calibration / held back) "
        "| IoU vs ground truth | gate |",
        "|---|---:|---:|---:|---:|:---:|",
    )
    write_table(args.output, "bench_int8.py", argv, columns, rows)
    return 0


if __name__ == "__main__":
    run_cli(main)

"""make_repository.py: write the generated files of the Triton model repository from a Keras
model (unetkit.pipelines.make_repository; this module parses and prints).

model_repository/unet/1/model.onnx       the model (fp32, or its int8 copy), with the kit's
                                         IMAGE/PROB/MASK contract
model_repository/unet/configs/cpu.pbtxt  the CPU configuration, rendered for that model: the
                                         engine that serves it and its measured memory use
model_repository/unet/1/runtime.json     every engine measured (runtime x precision), its
                                         speed and accuracy, which serves and why
model_repository/unet/1/export.json      which Keras file and options they were made from

The engine is chosen by measurement on this machine: ONNX Runtime and OpenVINO, each on the
fp32 model, the int8 copy (ONNX Runtime's static quantization) and, where the CPU computes
bf16 natively, the fp32 model in bf16. Every candidate faster than fp32 must pass the
accuracy gate against ONNX Runtime fp32, and the fastest that passes serves.

Each file is written to a temporary name and renamed, so Triton never sees a half-written one.
Nothing is rewritten when the Keras file and the options are those of the last export.
Without --model, the repository keeps the model it was last made from (the example model
when it is empty). The GPU configuration (config.pbtxt) and plan come from
build/build_engine.py.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from unetkit.cli.options import add_normalization_arguments
from unetkit.core import add_debug_flag, run_cli
from unetkit.pipelines import SAMPLES, make_repository
from unetkit.triton import AUTO, RUNTIMES


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="make_repository.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Exit codes: 0 success, 2 bad input (one line on stderr; --debug: traceback).",
    )
    parser.add_argument(
        "--model",
        type=Path,
        help="Keras model file, legacy .h5 or Keras 3 .keras (default: the one the repository "
        "was last made from, else example/unet_example.h5)",
    )
    parser.add_argument(
        "--repository",
        type=Path,
        default=Path("model_repository"),
        help="Triton model repository to write into (default: %(default)s)",
    )
    add_normalization_arguments(parser)
    parser.add_argument(
        "--precision",
        default=AUTO,
        help="auto (default): the fastest of fp32, int8 (ONNX Runtime's static quantization) "
        "and bf16 (OpenVINO, on CPUs with native bf16) that passes its accuracy gate against "
        "fp32; int8 or bf16: that one if it passes, else fp32; fp32: fp32 only",
    )
    parser.add_argument(
        "--runtime",
        default=AUTO,
        help=f"auto (default): the fastest engine measured here; or one of {', '.join(RUNTIMES)}",
    )
    parser.add_argument(
        "--calibration",
        type=Path,
        default=SAMPLES,
        help="images (with ground truth in gt/ where there is some) that calibrate int8, gate "
        "every precision against fp32 (every 4th is held back from calibration) and time the "
        "engines (default: samples/)",
    )
    parser.add_argument(
        "--max-queue-size",
        type=int,
        default=0,
        metavar="N",
        help="have Triton refuse requests beyond N waiting (a queue policy; in Triton 2.51 it "
        "costs up to 500 ms now and then, see the config's comments); default 0: none",
    )
    parser.add_argument("--force", action="store_true", help="export again even if nothing changed")
    add_debug_flag(parser)
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    outcome = make_repository(
        args.model,
        args.repository,
        mean=args.mean,
        std=args.std,
        threshold=args.threshold,
        precision=args.precision,
        runtime=args.runtime,
        calibration=args.calibration,
        input_dtype=args.input_dtype,
        max_queue_size=args.max_queue_size,
        force=args.force,
    )
    if not outcome.written:
        print(f"{args.repository} is up to date: the export of {outcome.keras_model}")
        return 0
    for path in outcome.written:
        print(f"wrote {path} (from {outcome.keras_model})")
    if outcome.choice is not None:
        print(f"{outcome.choice.reason} (details: runtime.json)")
    return 0


def run() -> None:
    run_cli(main)


if __name__ == "__main__":
    run()

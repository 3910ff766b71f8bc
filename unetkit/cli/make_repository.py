"""Write the generated files of the Triton model repository from a Keras model.

model_repository/unet/1/model.onnx       the model, with the kit's IMAGE/PROB/MASK contract
model_repository/unet/configs/cpu.pbtxt  the CPU configuration, rendered for that model,
                                         with its memory use measured by ONNX Runtime
model_repository/unet/1/export.json      which Keras file and options they were made from
model_repository/unet/1/quantization.json  the int8 accuracy gate's numbers (int8 only)

Both are written to a temporary name and renamed, so Triton never sees a half-written file.
Nothing is rewritten when the Keras file and the options are those of the last export.
Without --model, the repository keeps the model it was last made from (the example model
when it is empty). The GPU configuration (config.pbtxt) and plan come from
build/build_engine.py.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unetkit.cli.options import add_normalization_arguments
from unetkit.core import (
    DEFAULT_INPUT_DTYPE,
    DEFAULT_THRESHOLD,
    UserError,
    add_debug_flag,
    load_samples,
    run_cli,
    write_text_atomic,
)
from unetkit.keras2onnx import export_onnx, save_onnx
from unetkit.triton import (
    Gate,
    backend_code_path,
    check_int8,
    cpu_config_path,
    measure_memory,
    network_input,
    onnx_path,
    quantization_report_path,
    quantize,
    read_export_record,
    render_cpu_config,
    split,
    version_dir,
    write_export_record,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_MODEL = REPO_ROOT / "example" / "unet_example.h5"
SAMPLES = REPO_ROOT / "samples"
PRECISIONS = ("int8", "fp32")


@dataclass(frozen=True)
class Outcome:
    keras_model: Path
    written: list[Path]  # empty when the repository was up to date
    precision: str = ""  # what the repository serves, when it was written
    gate: Gate | None = None  # the int8 accuracy gate's numbers, when int8 was tried


def export_options(
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
    threshold: float,
    precision: str,
    calibration: Path,
    max_queue_size: int = 0,
    input_dtype: str = DEFAULT_INPUT_DTYPE,
) -> dict[str, Any]:
    """The options as the export record stores them (JSON types, None for defaults)."""
    extra = {} if input_dtype == DEFAULT_INPUT_DTYPE else {"input_dtype": input_dtype}
    return {
        **extra,
        "mean": None if mean is None else [float(v) for v in mean],
        "std": None if std is None else [float(v) for v in std],
        "threshold": float(threshold),
        "precision": precision,
        "calibration": str(calibration.resolve()) if precision == "int8" else None,
        "max_queue_size": max_queue_size,
    }


def make_repository(
    keras_model: Path | None,
    repository: Path,
    *,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    precision: str = "int8",
    calibration: Path = SAMPLES,
    max_queue_size: int = 0,
    force: bool = False,
    input_dtype: str = DEFAULT_INPUT_DTYPE,
) -> Outcome:
    """Export `keras_model` into `repository` (int8 when it passes its accuracy gate) and
    render its CPU config, unless they are already the export of that file with these
    options. `keras_model` None means the file the repository was last made from, or the
    example model."""
    if precision not in PRECISIONS:
        raise UserError(f"precision {precision!r}: use {' or '.join(PRECISIONS)}")
    if max_queue_size < 0:
        raise UserError(f"--max-queue-size {max_queue_size}: use 0 (no queue policy) or more")
    if not backend_code_path(repository).is_file():
        raise UserError(
            f"{backend_code_path(repository)} is missing: point --repository at the kit's "
            "model_repository"
        )
    record = read_export_record(repository)
    if keras_model is None:
        keras_model = Path(record.keras_model) if record is not None else EXAMPLE_MODEL
        if not keras_model.is_file():
            raise UserError(
                f"the repository was made from {keras_model}, which is gone: pass --model "
                "(make serve MODEL=...)"
            )
    options = export_options(
        mean, std, threshold, precision, calibration, max_queue_size, input_dtype
    )
    target = onnx_path(repository)
    if not force and record is not None and record.matches(keras_model, options, target):
        return Outcome(keras_model, [])
    model, info = export_onnx(
        keras_model, mean=mean, std=std, threshold=threshold, input_dtype=input_dtype
    )
    threads = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory(prefix=".export-", dir=version_dir(repository)) as work:
        served = Path(work) / "fp32.onnx"
        save_onnx(model, served)
        gate = None
        if precision == "int8":
            int8 = Path(work) / "int8.onnx"
            samples = load_samples(calibration, info.channels)
            inputs = [network_input(s.image, info) for s in split(samples)[0]]
            quantize(served, int8, [x for x in inputs if x is not None])
            gate = check_int8(served, int8, info, samples, threads)
            if gate.passed:
                served = int8
        memory = measure_memory(served, info.channels, info.height, info.width, threads)
        config = render_cpu_config(info, memory, max_queue_size)
        os.replace(served, target)  # same directory tree: readers see the old or the new file
    written = [target, cpu_config_path(repository)]
    try:
        write_text_atomic(cpu_config_path(repository), config)
        if gate is not None:
            report = {"served": "int8" if gate.passed else "fp32", **gate.as_dict()}
            write_text_atomic(
                quantization_report_path(repository), json.dumps(report, indent=2) + "\n"
            )
            written.append(quantization_report_path(repository))
    except OSError as e:
        raise UserError(f"cannot write into {version_dir(repository)}: {e.strerror or e}") from e
    write_export_record(repository, keras_model, options)
    served_precision = "int8" if gate is not None and gate.passed else "fp32"
    return Outcome(keras_model, written, served_precision, gate)


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
        choices=PRECISIONS,
        default="int8",
        help="int8 (default): ONNX Runtime static quantization, served only if it passes "
        "its accuracy gate against fp32, else fp32 with a one-line note; fp32: no quantization",
    )
    parser.add_argument(
        "--calibration",
        type=Path,
        default=SAMPLES,
        help="images (with ground truth in gt/ where there is some) that calibrate int8 and "
        "check it; every 4th is held back from calibration (default: samples/)",
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
        calibration=args.calibration,
        max_queue_size=args.max_queue_size,
        force=args.force,
        input_dtype=args.input_dtype,
    )
    if not outcome.written:
        print(f"{args.repository} is up to date: the export of {outcome.keras_model}")
        return 0
    for path in outcome.written:
        print(f"wrote {path} (from {outcome.keras_model})")
    if outcome.gate is not None:
        verdict = (
            "serving int8"
            if outcome.gate.passed
            else ("int8 failed its accuracy gate: serving fp32")
        )
        print(f"{verdict}: {outcome.gate.describe()} (details: quantization.json)")
    return 0


def run() -> None:
    run_cli(main)


if __name__ == "__main__":
    run()

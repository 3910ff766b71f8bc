"""Write the generated files of the Triton model repository from a Keras model.

model_repository/unet/1/model.onnx       the model, with the kit's IMAGE/PROB/MASK contract
model_repository/unet/configs/cpu.pbtxt  the CPU configuration, rendered for that model,
                                         with its memory use measured by ONNX Runtime
model_repository/unet/1/export.json      which Keras file and options they were made from

Both are written to a temporary name and renamed, so Triton never sees a half-written file.
Nothing is rewritten when the Keras file and the options are those of the last export.
Without --model, the repository keeps the model it was last made from (the example model
when it is empty). The GPU configuration (config.pbtxt) and plan come from
build/build_engine.py.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unetkit.cli.options import add_normalization_arguments
from unetkit.core import (
    DEFAULT_THRESHOLD,
    UserError,
    add_debug_flag,
    atomic_path,
    run_cli,
    write_text_atomic,
)
from unetkit.keras2onnx import export_onnx, save_onnx
from unetkit.triton import (
    backend_code_path,
    cpu_config_path,
    measure_memory,
    onnx_path,
    read_export_record,
    render_cpu_config,
    write_export_record,
)

EXAMPLE_MODEL = Path(__file__).resolve().parents[2] / "example" / "unet_example.h5"


@dataclass(frozen=True)
class Outcome:
    keras_model: Path
    written: list[Path]  # empty when the repository was up to date


def export_options(
    mean: Sequence[float] | None, std: Sequence[float] | None, threshold: float
) -> dict[str, Any]:
    """The options as the export record stores them (JSON types, None for defaults)."""
    return {
        "mean": None if mean is None else [float(v) for v in mean],
        "std": None if std is None else [float(v) for v in std],
        "threshold": float(threshold),
    }


def make_repository(
    keras_model: Path | None,
    repository: Path,
    *,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    force: bool = False,
) -> Outcome:
    """Export `keras_model` into `repository` and render its CPU config, unless they are
    already the export of that file with these options. `keras_model` None means the file
    the repository was last made from, or the example model."""
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
    options = export_options(mean, std, threshold)
    target = onnx_path(repository)
    if not force and record is not None and record.matches(keras_model, options, target):
        return Outcome(keras_model, [])
    model, info = export_onnx(keras_model, mean=mean, std=std, threshold=threshold)
    with atomic_path(target) as staged:
        save_onnx(model, staged)
        memory = measure_memory(
            staged, info.channels, info.height, info.width, len(os.sched_getaffinity(0))
        )
        config = render_cpu_config(info, memory)
    try:
        write_text_atomic(cpu_config_path(repository), config)
    except OSError as e:
        raise UserError(f"cannot write {cpu_config_path(repository)}: {e.strerror or e}") from e
    write_export_record(repository, keras_model, options)
    return Outcome(keras_model, [target, cpu_config_path(repository)])


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
        force=args.force,
    )
    if not outcome.written:
        print(f"{args.repository} is up to date: the export of {outcome.keras_model}")
    for path in outcome.written:
        print(f"wrote {path} (from {outcome.keras_model})")
    return 0


def run() -> None:
    run_cli(main)


if __name__ == "__main__":
    run()

"""Repository making: a Keras model exported into the kit's Triton model repository, its
CPU engine chosen by measurement on this machine, its CPU config rendered, and a record of
what it was made from, so that nothing is redone while the file and the options are the
same. Every file goes to a temporary name and is renamed: Triton never sees half a file.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unetkit.core import (
    DEFAULT_INPUT_DTYPE,
    DEFAULT_THRESHOLD,
    UserError,
    load_samples,
    write_text_atomic,
)
from unetkit.keras2onnx import export_onnx, save_onnx
from unetkit.triton import (
    AUTO,
    FP32,
    INT8,
    PRECISIONS,
    EngineChoice,
    backend_code_path,
    check_runtime,
    choose_engine,
    cpu_config_path,
    measure_memory,
    network_input,
    onnx_path,
    quantize,
    read_export_record,
    render_cpu_config,
    runtime_report_path,
    split,
    version_dir,
    write_export_record,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_MODEL = REPO_ROOT / "example" / "unet_example.h5"
SAMPLES = REPO_ROOT / "samples"


@dataclass(frozen=True)
class Outcome:
    keras_model: Path
    written: list[Path]  # empty when the repository was up to date
    choice: EngineChoice | None = None  # the engines measured and the one served, if written

    @property
    def precision(self) -> str:
        return self.choice.served.precision if self.choice is not None else ""


def export_options(
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
    threshold: float,
    precision: str,
    calibration: Path,
    max_queue_size: int = 0,
    runtime: str = AUTO,
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
        "runtime": runtime,
        "calibration": str(calibration.resolve()),
        "max_queue_size": max_queue_size,
    }


def make_repository(
    keras_model: Path | None,
    repository: Path,
    *,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    precision: str = AUTO,
    runtime: str = AUTO,
    calibration: Path = SAMPLES,
    max_queue_size: int = 0,
    force: bool = False,
    input_dtype: str = DEFAULT_INPUT_DTYPE,
) -> Outcome:
    """Export `keras_model` into `repository`, served by the fastest engine that passes its
    accuracy gate on this machine, and render its CPU config, unless they are already the
    export of that file with these options. `keras_model` None means the file the
    repository was last made from, or the example model."""
    if precision not in PRECISIONS:
        raise UserError(f"precision {precision!r}: use {', '.join(PRECISIONS)}")
    check_runtime(runtime)
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
    options = export_options(mean, std, threshold, precision, calibration, max_queue_size, runtime)
    target = onnx_path(repository)
    if not force and record is not None and record.matches(keras_model, options, target):
        return Outcome(keras_model, [])
    model, info = export_onnx(
        keras_model, mean=mean, std=std, threshold=threshold, input_dtype=input_dtype
    )
    threads = len(os.sched_getaffinity(0))
    samples = load_samples(calibration, info.channels)
    with tempfile.TemporaryDirectory(prefix=".export-", dir=version_dir(repository)) as work:
        files = {FP32: Path(work) / "fp32.onnx"}
        save_onnx(model, files[FP32])
        if precision in (AUTO, INT8):
            files[INT8] = Path(work) / "int8.onnx"
            inputs = [network_input(s.image, info) for s in split(samples)[0]]
            quantize(files[FP32], files[INT8], inputs)
        choice = choose_engine(files, info, samples, precision, runtime, threads)
        served = files[choice.served.onnx_file]
        memory = measure_memory(
            served, choice.served, info.channels, info.height, info.width, threads, info.fixed_size
        )
        config = render_cpu_config(info, memory, choice.served, max_queue_size)
        os.replace(served, target)  # same directory tree: readers see the old or the new file
    written = [target, cpu_config_path(repository), runtime_report_path(repository)]
    try:
        write_text_atomic(cpu_config_path(repository), config)
        write_text_atomic(
            runtime_report_path(repository), json.dumps(choice.as_dict(), indent=2) + "\n"
        )
    except OSError as e:
        raise UserError(f"cannot write into {version_dir(repository)}: {e.strerror or e}") from e
    write_export_record(repository, keras_model, options)
    return Outcome(keras_model, written, choice)

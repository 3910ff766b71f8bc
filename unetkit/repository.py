"""Fill a Triton model repository's generated files from a Keras model file."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from unetkit.atomic import write_text_atomic
from unetkit.contract import DEFAULT_THRESHOLD, MODEL_NAME
from unetkit.errors import UserError
from unetkit.export import export_onnx, save_onnx
from unetkit.triton_config import render_cpu_config

EXAMPLE_MODEL = Path("example/unet_example.h5")
MODEL_VERSION = "1"


def onnx_path(repository: Path) -> Path:
    return repository / MODEL_NAME / MODEL_VERSION / "model.onnx"


def cpu_config_path(repository: Path) -> Path:
    return repository / MODEL_NAME / "configs" / "cpu.pbtxt"


def make_repository(
    keras_model: Path,
    repository: Path,
    *,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    threshold: float = DEFAULT_THRESHOLD,
) -> list[Path]:
    """Export `keras_model` into `repository` and render its CPU config; the paths written."""
    backend_code = repository / MODEL_NAME / MODEL_VERSION / "model.py"
    if not backend_code.is_file():
        raise UserError(
            f"{backend_code} is missing: point --repository at the kit's model_repository"
        )
    model, info = export_onnx(keras_model, mean=mean, std=std, threshold=threshold)
    config = render_cpu_config(info)
    save_onnx(model, onnx_path(repository))
    try:
        write_text_atomic(cpu_config_path(repository), config)
    except OSError as e:
        raise UserError(f"cannot write {cpu_config_path(repository)}: {e.strerror or e}") from e
    return [onnx_path(repository), cpu_config_path(repository)]

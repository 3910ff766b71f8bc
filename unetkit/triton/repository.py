"""The layout of the kit's Triton model repository, and the record of what filled it.

    <repository>/unet/config.pbtxt          TensorRT plan configuration (GPU)
    <repository>/unet/configs/cpu.pbtxt     python backend configuration (CPU)
    <repository>/unet/1/model.py            the CPU backend code (committed)
    <repository>/unet/1/model.onnx          the exported model (generated)
    <repository>/unet/1/export.json         which Keras file and options made model.onnx
    <repository>/unet/1/runtime.json        the engines measured at export, which serves, why

The record lets `make serve` rebuild the model only when the Keras file or the options
change, and never replace a user's model with the example behind their back.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from unetkit.core import MODEL_NAME, MODEL_VERSION, UserError, sha256_file, write_text_atomic
from unetkit.triton.engines import EngineSpec

EXPORT_RECORD = "export.json"
RUNTIME_REPORT = "runtime.json"


def model_dir(repository: Path) -> Path:
    return repository / MODEL_NAME


def version_dir(repository: Path) -> Path:
    return model_dir(repository) / MODEL_VERSION


def onnx_path(repository: Path) -> Path:
    return version_dir(repository) / "model.onnx"


def cpu_config_path(repository: Path) -> Path:
    return model_dir(repository) / "configs" / "cpu.pbtxt"


def runtime_report_path(repository: Path) -> Path:
    return version_dir(repository) / RUNTIME_REPORT


def read_served_engine(repository: Path) -> EngineSpec:
    """The engine the repository's export chose, as its runtime.json says."""
    try:
        served = json.loads(runtime_report_path(repository).read_text())["served"]
    except (OSError, ValueError, KeyError) as e:
        raise UserError(
            f"{runtime_report_path(repository)} is missing or unreadable: run `make repository`"
        ) from e
    return EngineSpec(served["runtime"], served["precision"])


def backend_code_path(repository: Path) -> Path:
    return version_dir(repository) / "model.py"


@dataclass(frozen=True)
class ExportRecord:
    """What model.onnx was exported from: the Keras file (path and content) and the options."""

    keras_model: str
    keras_sha256: str
    options: dict[str, Any]
    onnx_sha256: str

    def matches(self, keras_model: Path, options: dict[str, Any], onnx_file: Path) -> bool:
        return (
            self.keras_model == str(keras_model.resolve())
            and self.options == options
            and keras_model.is_file()
            and sha256_file(keras_model) == self.keras_sha256
            and onnx_file.is_file()
            and sha256_file(onnx_file) == self.onnx_sha256
        )


def read_export_record(repository: Path) -> ExportRecord | None:
    """The record beside model.onnx, or None when there is none (or it is unreadable)."""
    path = version_dir(repository) / EXPORT_RECORD
    try:
        return ExportRecord(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def write_export_record(
    repository: Path, keras_model: Path, options: dict[str, Any]
) -> ExportRecord:
    record = ExportRecord(
        keras_model=str(keras_model.resolve()),
        keras_sha256=sha256_file(keras_model),
        options=options,
        onnx_sha256=sha256_file(onnx_path(repository)),
    )
    try:
        write_text_atomic(
            version_dir(repository) / EXPORT_RECORD,
            json.dumps(asdict(record), indent=2, sort_keys=True) + "\n",
        )
    except OSError as e:
        raise UserError(f"cannot write into {version_dir(repository)}: {e.strerror or e}") from e
    return record

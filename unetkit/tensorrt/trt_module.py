"""Which TensorRT the build uses: the seam between the kit's build code and a TensorRT module.

Every build function takes the module as its first argument. `import_tensorrt()` returns
either NVIDIA's `tensorrt` (the TensorRT container, the plans Triton serves) or `tensorrt_rtx`
(TensorRT-RTX: the same nvinfer1 API and ONNX parser, a pip wheel, and a builder that
compiles ahead of time with no GPU, so CI runs the kit's real build with it). Chosen by
`--tensorrt-module` or UNETKIT_TENSORRT_MODULE; `tensorrt` by default.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

from unetkit.core import UserError

MODULE_ENV = "UNETKIT_TENSORRT_MODULE"
TENSORRT = "tensorrt"
TENSORRT_RTX = "tensorrt_rtx"
TENSORRT_MODULES = (TENSORRT, TENSORRT_RTX)
CONTAINER_HINT = "run the build in NVIDIA's TensorRT container: `docker compose run --rm build`"
RTX_INSTALL_HINT = "install it with `pip install 'unetkit[trt-rtx]'` (`make venv` does)"


def tensorrt_module_name(requested: str | None = None) -> str:
    name = (requested or os.environ.get(MODULE_ENV, "")).strip() or TENSORRT
    if name not in TENSORRT_MODULES:
        raise UserError(
            f"TensorRT module {name!r} (--tensorrt-module or {MODULE_ENV}): "
            f"use one of {', '.join(TENSORRT_MODULES)}"
        )
    return name


def import_tensorrt(requested: str | None = None) -> ModuleType:
    name = tensorrt_module_name(requested)
    try:
        return importlib.import_module(name)
    except ImportError as e:
        if name == TENSORRT:
            raise UserError(f"TensorRT is not installed in this Python: {CONTAINER_HINT}") from e
        raise UserError(f"TensorRT-RTX is not installed in this Python: {RTX_INSTALL_HINT}") from e


def is_tensorrt_rtx(trt: ModuleType) -> bool:
    return trt.__name__.partition(".")[0] == TENSORRT_RTX


def builder_name(trt: ModuleType) -> str:
    """How build reports and messages name the builder: "TensorRT" or "TensorRT-RTX"."""
    return "TensorRT-RTX" if is_tensorrt_rtx(trt) else "TensorRT"


def has_fp16_builder_flag(trt: ModuleType) -> bool:
    """TensorRT 10 has BuilderFlag.FP16; TensorRT 11 and TensorRT-RTX build strongly typed
    networks only, so fp16 comes from an fp16 copy of the ONNX (unetkit.tensorrt.to_fp16)."""
    return hasattr(trt.BuilderFlag, "FP16")

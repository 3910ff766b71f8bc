"""Keras model file -> ONNX graph with the kit's I/O contract (see unetkit.core.contract).

`convert` reads as the conversion runs: read the file (`keras_file`) and make each layer's
converter (`registry`), schedule the layer calls (`schedule`), find the sizes the export
serves (`size_search`), emit the ONNX graph (`emit`), and hand back a `Conversion` that
writes it (`conversion`). IMAGE is uint8, or uint16 or float32 (input_dtype) for models
trained on such data. What downstream tools need to know (channels, classes, valid sizes)
is stored in the ONNX metadata_props and read back by `read_model_info`.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import helper

from unetkit.core import (
    DEFAULT_INPUT_DTYPE,
    DEFAULT_THRESHOLD,
    INPUT_DTYPES,
    ModelInfo,
    UserError,
)
from unetkit.keras2onnx.conversion import Conversion
from unetkit.keras2onnx.emit import emit_onnx
from unetkit.keras2onnx.keras_file import KerasLayer, KerasModel, open_keras_model
from unetkit.keras2onnx.layers.base import Op
from unetkit.keras2onnx.registry import make_op
from unetkit.keras2onnx.schedule import schedule
from unetkit.keras2onnx.size_search import ShapeProbe

DEFAULT_OPSET = 17
MIN_OPSET = 13


@dataclass(frozen=True)
class ReadModel:
    """What the converter takes from the file: a converter per layer, the input's format."""

    ops: dict[str, Op]
    layout: str
    channels: int
    keras_size: tuple[int | None, int | None]  # the size Keras built the model for, if any


def read_model(model: KerasModel) -> ReadModel:
    """The model's single image input and a converter for each layer (UserError if not)."""
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise UserError(
            f"the model has {len(model.inputs)} inputs and {len(model.outputs)} outputs; "
            "the kit serves models with one image input and one output"
        )
    layout = _layout(model.layers)
    by_name = {layer.name: layer for layer in model.layers}
    source_layer = by_name.get(model.inputs[0].layer)
    if source_layer is None or source_layer.class_name != "InputLayer":
        raise UserError("the model's input is not an InputLayer; the model config is damaged")
    ops = {
        layer.name: make_op(layer, layout)
        for layer in model.layers
        if layer.class_name != "InputLayer"
    }
    channels, keras_h, keras_w = _input_shape(source_layer, layout)
    return ReadModel(ops, layout, channels, (keras_h, keras_w))


def _layout(layers: list[KerasLayer]) -> str:
    formats = {
        str(layer.config.get("data_format") or "channels_last")
        for layer in layers
        if "data_format" in layer.config
    }
    if len(formats) > 1 or not formats <= {"channels_last", "channels_first"}:
        raise UserError(
            f"layers use data formats {sorted(formats)}; the kit takes one of channels_last, "
            "channels_first"
        )
    return formats.pop() if formats else "channels_last"


def _input_shape(layer: KerasLayer, layout: str) -> tuple[int, int | None, int | None]:
    shape = layer.config.get("batch_shape", layer.config.get("batch_input_shape"))
    dims_ok = isinstance(shape, list) and len(shape) == 4
    if dims_ok:
        dims = shape[1:] if layout == "channels_first" else [shape[3], shape[1], shape[2]]
        dims_ok = all(d is None or (isinstance(d, int) and d > 0) for d in dims)
        dims_ok = dims_ok and isinstance(dims[0], int)
    if not dims_ok:
        raise UserError(
            f"input {layer.name!r} has shape {shape}; the kit takes images "
            "(batch, height, width, channels) with a known channel count"
        )
    return dims[0], dims[1], dims[2]


def _per_channel(
    values: Sequence[float] | None, default: float, channels: int, flag: str
) -> np.ndarray:
    array = np.array([default] if not values else list(values), dtype=np.float32)
    if array.ndim != 1 or len(array) not in (1, channels):
        expected = "1 value" if channels == 1 else f"1 or {channels} values (one per channel)"
        raise UserError(
            f"{flag} takes {expected} for this {channels}-channel model, got {len(array)}"
        )
    if not np.all(np.isfinite(array)):
        raise UserError(f"{flag} values must be finite numbers")
    return np.broadcast_to(array, (channels,)).copy()


def _normalization(
    mean: Sequence[float] | None, std: Sequence[float] | None, channels: int, input_dtype: str
) -> tuple[np.ndarray, np.ndarray]:
    """--mean and --std per channel; --std defaults to the top of IMAGE's type's scale."""
    mean_values = _per_channel(mean, 0.0, channels, "--mean")
    std_values = _per_channel(std, INPUT_DTYPES[input_dtype], channels, "--std")
    if np.any(std_values <= 0):
        raise UserError("--std values must be positive")
    return mean_values, std_values


def _check_options(threshold: float, opset: int, input_dtype: str) -> None:
    if not math.isfinite(threshold):
        raise UserError(f"--threshold {threshold} is not a finite number")
    if input_dtype not in INPUT_DTYPES:
        raise UserError(f"--input-dtype {input_dtype}: use one of {', '.join(INPUT_DTYPES)}")
    latest = onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= opset <= latest:
        raise UserError(f"--opset {opset} is not supported: use {MIN_OPSET}..{latest}")


@contextlib.contextmanager
def convert(
    model_path: str | Path,
    *,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    fixed_shape: bool = False,
    input_size: str | None = None,
    opset: int = DEFAULT_OPSET,
    input_dtype: str = DEFAULT_INPUT_DTYPE,
) -> Iterator[Conversion]:
    """Convert a Keras .h5/.keras file; raises UserError for anything the user can fix.

    The export takes every size the network's shape arithmetic allows (one progression per
    axis, see size_search), unless the network takes only the size it was built for, or
    `fixed_shape` (the Keras input size) or `input_size` ("HxW") pins one size.
    `input_dtype` is IMAGE's type (INPUT_DTYPES), whose scale --std defaults to.
    """
    _check_options(threshold, opset, input_dtype)
    with open_keras_model(model_path) as model:
        read = read_model(model)
        plan = schedule(model, read.ops)
        probe = ShapeProbe(plan, read.channels)
        sizes = probe.served_sizes(read.keras_size, fixed_shape, input_size)
        geometry = probe.output_geometry(sizes)
        mean_values, std_values = _normalization(mean, std, read.channels, input_dtype)
        emitted = emit_onnx(
            plan, read.channels, sizes, (mean_values, std_values), threshold, opset, input_dtype
        )
        info = ModelInfo(
            channels=read.channels,
            classes=emitted.classes,
            height=sizes.height,
            width=sizes.width,
            fixed_size=sizes.pinned,
            output_geometry=geometry,
            threshold=float(threshold),
            mean=tuple(float(v) for v in mean_values),
            std=tuple(float(v) for v in std_values),
            source=f"{Path(model_path).name} ({model.source})",
            input_dtype=input_dtype,
        )
        helper.set_model_props(emitted.skeleton, info.metadata())
        yield Conversion(emitted.skeleton, emitted.graph, info, list(sizes.notes))


def export_onnx(model_path: str | Path, **options: Any) -> tuple[onnx.ModelProto, ModelInfo]:
    """The ONNX model in memory (checked) and its info; options as for `convert`."""
    with convert(model_path, **options) as conversion:
        return conversion.to_model(), conversion.info


def write_onnx(model_path: str | Path, output: str | Path, **options: Any) -> ModelInfo:
    """Convert straight to a file, one weight tensor in memory at a time (large models)."""
    with convert(model_path, **options) as conversion:
        conversion.write(output)
        return conversion.info

"""Keras model file -> ONNX graph with the kit's I/O contract (see unetkit.contract).

IMAGE uint8 NHWC -> Cast -> (x - mean) / std -> Transpose to NCHW -> layers ->
Transpose to NHWC -> PROB; MASK = PROB > threshold (one class) or argmax (several).
What downstream tools need to know (channels, classes, valid sizes) is stored in the
ONNX metadata_props and read back by `read_model_info`.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import onnx
from onnx import TensorProto, helper

from unetkit.core import (
    DEFAULT_THRESHOLD,
    INPUT_IMAGE,
    OUTPUT_MASK,
    OUTPUT_PROB,
    ModelInfo,
    SizeRule,
    UserError,
    atomic_path,
)
from unetkit.keras2onnx.keras_file import KerasLayer, KerasModel, TensorRef, open_keras_model
from unetkit.keras2onnx.layers.base import Op, Shape, ShapeMismatch
from unetkit.keras2onnx.onnx_graph import GraphBuilder, stream_model
from unetkit.keras2onnx.registry import make_op
from unetkit.keras2onnx.size_search import find_size_rule, stride_bound

DEFAULT_OPSET = 17
MIN_OPSET = 13
T = TypeVar("T")


@dataclass(frozen=True)
class Call:
    """One call of a layer in dependency order."""

    op: Op
    inputs: list[TensorRef]
    output: TensorRef


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


def _schedule(model: KerasModel, ops: dict[str, Op]) -> list[Call]:
    """Order every layer call so that its inputs come first."""
    pending: list[tuple[str, int, list[TensorRef]]] = [
        (layer.name, index, refs)
        for layer in model.layers
        if layer.name in ops
        for index, refs in enumerate(layer.calls)
    ]
    ready = set(model.inputs)
    order: list[Call] = []
    while pending:
        runnable = [p for p in pending if all(r in ready for r in p[2])]
        if not runnable:
            name, _, refs = pending[0]
            missing = next(r for r in refs if r not in ready)
            raise UserError(
                f"layer {name!r} reads {missing.layer!r} (call {missing.node}), which the model "
                "never computes; the model config is damaged"
            )
        for name, index, refs in runnable:
            if not refs:
                raise UserError(f"layer {name!r} has a call without inputs")
            order.append(Call(ops[name], refs, TensorRef(name, index, 0)))
            ready.add(TensorRef(name, index, 0))
        pending = [p for p in pending if p not in runnable]
    return order


def _run(
    schedule: list[Call], first: T, source: TensorRef, apply: Callable[[Op, list[T]], T]
) -> dict[TensorRef, T]:
    values = {source: first}
    for call in schedule:
        values[call.output] = apply(call.op, [values[r] for r in call.inputs])
    return values


def _size_rules(
    schedule: list[Call], source: TensorRef, output: TensorRef, channels: int
) -> tuple[SizeRule | None, SizeRule | None]:
    def valid(shape: Shape) -> bool:
        try:
            return (
                _run(schedule, shape, source, lambda op, s: op.output_shape(s))[output] is not None
            )
        except ShapeMismatch:
            return False

    strides_h = [call.op.stride[0] for call in schedule]
    strides_w = [call.op.stride[1] for call in schedule]
    return (
        find_size_rule(lambda h: valid((channels, h, None)), stride_bound(strides_h)),
        find_size_rule(lambda w: valid((channels, None, w)), stride_bound(strides_w)),
    )


def _output_shrink(
    schedule: list[Call],
    source: TensorRef,
    output: TensorRef,
    channels: int,
    rule: SizeRule,
    axis: int,
) -> int | None:
    """How many pixels the output has fewer than the input along `axis` (1: H, 2: W), when
    that number is the same for every size the network takes; None when the output is on
    another grid (a different scale)."""
    shrinks = set()
    for size in (rule.minimum + k * rule.multiple for k in range(3)):
        shape: Shape = (channels, size, None) if axis == 1 else (channels, None, size)
        out = _run(schedule, shape, source, lambda op, s: op.output_shape(s))[output]
        shrinks.add(size - out[axis])
    return shrinks.pop() if len(shrinks) == 1 else None


def _output_geometry(
    schedule: list[Call],
    source: TensorRef,
    output: TensorRef,
    channels: int,
    height: SizeRule | None,
    width: SizeRule | None,
) -> tuple[int, int, int, int] | None:
    """ModelInfo.output_geometry, or None when the output is not on the input's grid."""
    if height is None or width is None:
        return None
    shrink = (
        _output_shrink(schedule, source, output, channels, height, 1),
        _output_shrink(schedule, source, output, channels, width, 2),
    )
    if shrink[0] is None or shrink[1] is None:
        return None
    # Output and input on the same grid: aligned, whichever path connects them.
    offset = (0, 0) if shrink == (0, 0) else _output_offset(schedule, source, output)
    return None if offset is None else (shrink[0], shrink[1], offset[0], offset[1])


def _output_offset(
    schedule: list[Call], source: TensorRef, output: TensorRef
) -> tuple[int, int] | None:
    """The input pixel under output pixel (0, 0), along a path from input to output that
    keeps the pixel grid (a U-Net's top level, through its skip connection); None when
    every path resamples."""
    producers = {call.output: call for call in schedule}
    offsets: dict[TensorRef, tuple[float, float] | None] = {source: (0.0, 0.0)}

    def offset(tensor: TensorRef) -> tuple[float, float] | None:
        if tensor not in offsets:
            offsets[tensor] = None  # a cycle never keeps the grid
            call = producers[tensor]
            own = call.op.alignment()
            if own is not None:
                for upstream in call.inputs:
                    before = offset(upstream)
                    if before is not None:
                        offsets[tensor] = (own[0] + before[0], own[1] + before[1])
                        break
        return offsets[tensor]

    found = offset(output)
    return None if found is None else (int(found[0]), int(found[1]))


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


def _check_options(threshold: float, opset: int) -> None:
    if not math.isfinite(threshold):
        raise UserError(f"--threshold {threshold} is not a finite number")
    latest = onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= opset <= latest:
        raise UserError(f"--opset {opset} is not supported: use {MIN_OPSET}..{latest}")


def _emit_graph(
    g: GraphBuilder,
    schedule: list[Call],
    source: TensorRef,
    output: TensorRef,
    first: tuple[str, Shape],
) -> Shape:
    def apply(op: Op, inputs: list[tuple[str, Shape]]) -> tuple[str, Shape]:
        shapes = [s for _, s in inputs]
        try:
            shape = op.output_shape(shapes)
        except ShapeMismatch as e:
            raise UserError(f"{e}; the model cannot run at this input size") from e
        return op.emit(g, [n for n, _ in inputs], shapes), shape

    name, shape = _run(schedule, first, source, apply)[output]
    g.node("Transpose", [name], "to_nhwc", output=OUTPUT_PROB, perm=[0, 2, 3, 1])
    return shape


def _emit_mask(g: GraphBuilder, classes: int, threshold: float) -> None:
    if classes == 1:
        axis = g.constant("mask/axis", np.array([3], dtype=np.int64))
        prob = g.node("Squeeze", [OUTPUT_PROB, axis], "mask")
        limit = g.constant("mask/threshold", np.array(threshold, dtype=np.float32))
        above = g.node("Greater", [prob, limit], "mask")
        g.node("Cast", [above], "mask", output=OUTPUT_MASK, to=TensorProto.UINT8)
    else:
        best = g.node("ArgMax", [OUTPUT_PROB], "mask", axis=3, keepdims=0)
        g.node("Cast", [best], "mask", output=OUTPUT_MASK, to=TensorProto.UINT8)


@dataclass
class Conversion:
    """A converted model whose weights are still read lazily from the open Keras file."""

    skeleton: onnx.ModelProto  # the whole model except the initializers
    graph: GraphBuilder
    info: ModelInfo

    def to_model(self) -> onnx.ModelProto:
        model = onnx.ModelProto()
        model.CopyFrom(self.skeleton)
        model.graph.initializer.extend(self.graph.tensors())
        _check(model)
        return model

    def check(self) -> None:
        """onnx.checker with shape inference on the graph, the weights declared as inputs.

        Checking the written file would load all weights twice more; the tensors
        themselves come from numpy_helper.from_array.
        """
        twin = onnx.ModelProto()
        twin.CopyFrom(self.skeleton)
        twin.graph.input.extend(self.graph.declared_inputs())
        _check(twin)

    def write(self, path: str | Path) -> None:
        """Stream to a temporary file, check it, then rename: never a partial `path`."""
        self.check()
        with _output_file(path) as tmp, open(tmp, "wb") as out:
            stream_model(self.skeleton, self.graph.tensors(), out)


def _check(model: onnx.ModelProto) -> None:
    try:
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
        raise UserError(f"the exported graph fails onnx.checker: {e}") from e


@contextlib.contextmanager
def convert(
    model_path: str | Path,
    *,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    fixed_shape: bool = False,
    opset: int = DEFAULT_OPSET,
) -> Iterator[Conversion]:
    """Convert a Keras .h5/.keras file; raises UserError for anything the user can fix."""
    _check_options(threshold, opset)
    with open_keras_model(model_path) as model:
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
        schedule = _schedule(model, ops)
        source, output = model.inputs[0], model.outputs[0]
        if output not in {call.output for call in schedule}:
            raise UserError(f"the model's output {output.layer!r} is not computed by any layer")
        height, width = _size_rules(schedule, source, output, channels)
        geometry = _output_geometry(schedule, source, output, channels, height, width)
        if fixed_shape:
            if keras_h is None or keras_w is None:
                raise UserError(
                    "--fixed-shape needs a model whose input has a fixed height and width; "
                    "this one takes any size"
                )
            fixed_size: tuple[int, int] | None = (keras_h, keras_w)
            height, width = SizeRule(1, keras_h), SizeRule(1, keras_w)
        elif height is None or width is None:
            raise UserError(
                "the input sizes this model takes follow no simple rule; export with --fixed-shape"
            )
        else:
            fixed_size = None
        mean_values = _per_channel(mean, 0.0, channels, "--mean")
        std_values = _per_channel(std, 255.0, channels, "--std")
        if np.any(std_values <= 0):
            raise UserError("--std values must be positive")

        g = GraphBuilder()
        g.reserve(INPUT_IMAGE)
        g.reserve(OUTPUT_PROB)
        g.reserve(OUTPUT_MASK)
        pixels = g.node("Cast", [INPUT_IMAGE], "normalize", to=TensorProto.FLOAT)
        centred = g.node("Sub", [pixels, g.constant("normalize/mean", mean_values)], "normalize")
        scaled = g.node("Div", [centred, g.constant("normalize/std", std_values)], "normalize")
        nchw = g.node("Transpose", [scaled], "to_nchw", perm=[0, 3, 1, 2])
        in_h, in_w = (keras_h, keras_w) if fixed_shape else (None, None)
        out_shape = _emit_graph(g, schedule, source, output, (nchw, (channels, in_h, in_w)))
        classes = out_shape[0]
        if classes > 256:
            raise UserError(f"the model outputs {classes} classes; MASK (uint8) holds at most 256")
        _emit_mask(g, classes, threshold)

        batch = "N"
        h_in, w_in = (keras_h, keras_w) if fixed_shape else ("H", "W")
        h_out, w_out = (out_shape[1], out_shape[2]) if fixed_shape else ("H_out", "W_out")
        graph = helper.make_graph(
            g.nodes,
            "unet",
            [
                helper.make_tensor_value_info(
                    INPUT_IMAGE, TensorProto.UINT8, [batch, h_in, w_in, channels]
                )
            ],
            [
                helper.make_tensor_value_info(
                    OUTPUT_PROB, TensorProto.FLOAT, [batch, h_out, w_out, classes]
                ),
                helper.make_tensor_value_info(
                    OUTPUT_MASK, TensorProto.UINT8, [batch, h_out, w_out]
                ),
            ],
        )
        opsets = [helper.make_opsetid("", opset)]
        skeleton = helper.make_model(
            graph,
            opset_imports=opsets,
            ir_version=helper.find_min_ir_version_for(opsets),
            producer_name="unetkit",
        )
        info = ModelInfo(
            channels=channels,
            classes=classes,
            height=height,
            width=width,
            fixed_size=fixed_size,
            output_geometry=geometry,
            threshold=float(threshold),
            mean=tuple(float(v) for v in mean_values),
            std=tuple(float(v) for v in std_values),
            source=f"{Path(model_path).name} ({model.source})",
        )
        helper.set_model_props(skeleton, info.metadata())
        yield Conversion(skeleton, g, info)


def export_onnx(model_path: str | Path, **options: Any) -> tuple[onnx.ModelProto, ModelInfo]:
    """The ONNX model in memory (checked) and its info; options as for `convert`."""
    with convert(model_path, **options) as conversion:
        return conversion.to_model(), conversion.info


def write_onnx(model_path: str | Path, output: str | Path, **options: Any) -> ModelInfo:
    """Convert straight to a file, one weight tensor in memory at a time (large models)."""
    with convert(model_path, **options) as conversion:
        conversion.write(output)
        return conversion.info


def save_onnx(model: onnx.ModelProto, path: str | Path) -> None:
    """Write an in-memory model atomically: a reader sees the old file or the new one."""
    with _output_file(path) as tmp:
        onnx.save_model(model, str(tmp))


@contextlib.contextmanager
def _output_file(path: str | Path) -> Iterator[Path]:
    """atomic_path with one-line errors for outputs the user has to fix."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"output {path} is a directory; pass a file name such as model.onnx")
    try:
        with atomic_path(path) as tmp:
            yield tmp
    except OSError as e:
        reason = e.strerror or str(e)
        raise UserError(f"cannot write {path}: {reason}; choose a writable location") from e

"""Keras model file -> ONNX graph with the kit's I/O contract (see unetkit.contract).

IMAGE uint8 NHWC -> Cast -> (x - mean) / std -> Transpose to NCHW -> layers ->
Transpose to NHWC -> PROB; MASK = PROB > threshold (one class) or argmax (several).
IMAGE may be uint16 or float32 instead (input_dtype), for models trained on such data.
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
    DEFAULT_INPUT_DTYPE,
    DEFAULT_THRESHOLD,
    INPUT_DTYPES,
    INPUT_IMAGE,
    OUTPUT_MASK,
    OUTPUT_PROB,
    ModelInfo,
    SizeRule,
    UserError,
    atomic_path,
)
from unetkit.keras2onnx.keras_file import KerasLayer, KerasModel, TensorRef, open_keras_model
from unetkit.keras2onnx.layers.base import Op, Shape, ShapeMismatch, rank_of
from unetkit.keras2onnx.onnx_graph import GraphBuilder, stream_model
from unetkit.keras2onnx.registry import make_op
from unetkit.keras2onnx.size_search import SEARCH_LIMIT, AxisSizes, find_sizes

DEFAULT_OPSET = 17
MIN_OPSET = 13
DEFAULT_PROBE = 256  # the size an error message tries when the model has no size of its own
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


def _shapes(schedule: list[Call], source: TensorRef, shape: Shape) -> dict[TensorRef, Shape]:
    return _run(schedule, shape, source, lambda op, s: op.output_shape(s))


def _mismatch(
    schedule: list[Call], source: TensorRef, output: TensorRef, shape: Shape
) -> str | None:
    """None when the network runs at `shape`, else why not."""
    try:
        _shapes(schedule, source, shape)[output]
    except ShapeMismatch as e:
        return str(e)
    return None


def _period_bounds(schedule: list[Call], source: TensorRef) -> tuple[int, int]:
    """Multiples of the periods of the valid sizes: along every path the product of the
    strides, and their least common multiple over all tensors (capped)."""
    cumulative: dict[TensorRef, tuple[int, int]] = {source: (1, 1)}
    bounds = [1, 1]
    for call in schedule:
        strides = [cumulative[r] for r in call.inputs]
        out = []
        for axis in range(2):
            value = math.lcm(*(s[axis] for s in strides)) * call.op.stride[axis]
            out.append(min(value, SEARCH_LIMIT))
            bounds[axis] = min(math.lcm(bounds[axis], out[axis]), SEARCH_LIMIT)
        cumulative[call.output] = (out[0], out[1])
    return bounds[0], bounds[1]


def _axis_sizes(
    schedule: list[Call],
    source: TensorRef,
    output: TensorRef,
    channels: int,
    keras_size: tuple[int | None, int | None],
) -> tuple[AxisSizes | None, AxisSizes | None]:
    def valid(shape: Shape) -> bool:
        return _mismatch(schedule, source, output, shape) is None

    bound_h, bound_w = _period_bounds(schedule, source)
    return (
        find_sizes(lambda h: valid((channels, h, None)), bound_h, keras_size[0]),
        find_sizes(lambda w: valid((channels, None, w)), bound_w, keras_size[1]),
    )


def _pinning_reason(
    schedule: list[Call], source: TensorRef, channels: int, size: tuple[int, int]
) -> str | None:
    """Why the network only makes sense at the size it was built for (an op's pins_size)."""
    shapes = _shapes(schedule, source, (channels, size[0], size[1]))
    for call in schedule:
        reason = call.op.pins_size([shapes[r] for r in call.inputs])
        if reason is not None:
            return reason
    return None


def _parse_size(text: str) -> tuple[int, int]:
    """'HxW' (or one number for a square) -> (H, W)."""
    parts = text.lower().split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        values = []
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or min(values) < 1:
        raise UserError(f"--input-size {text!r} is not HxW, e.g. 256x256")
    return values[0], values[1]


@dataclass(frozen=True)
class Sizes:
    """What the export serves: progressions per axis, or one pinned size, and why."""

    height: SizeRule
    width: SizeRule
    pinned: tuple[int, int] | None
    notes: tuple[str, ...]


def _served_sizes(
    schedule: list[Call],
    source: TensorRef,
    output: TensorRef,
    channels: int,
    keras_size: tuple[int | None, int | None],
    fixed_shape: bool,
    input_size: str | None,
) -> Sizes:
    if fixed_shape and input_size is not None:
        raise UserError("pass either --fixed-shape or --input-size, not both")
    if input_size is not None:
        size = _parse_size(input_size)
        return _pinned(schedule, source, output, channels, size, "--input-size")
    if fixed_shape:
        if keras_size[0] is None or keras_size[1] is None:
            raise UserError(
                "--fixed-shape pins the size the Keras model was built for, and this model "
                "was built for any size: pin one with --input-size HxW, e.g. 256x256"
            )
        return _pinned(schedule, source, output, channels, keras_size, "--fixed-shape")  # type: ignore[arg-type]
    return _natural_sizes(schedule, source, output, channels, keras_size)


def _pinned(
    schedule: list[Call],
    source: TensorRef,
    output: TensorRef,
    channels: int,
    size: tuple[int, int],
    flag: str,
) -> Sizes:
    problem = _mismatch(schedule, source, output, (channels, size[0], size[1]))
    if problem is not None:
        raise UserError(
            f"{flag} {size[0]}x{size[1]}: the network cannot run at that size: {problem}"
        )
    return Sizes(SizeRule(1, size[0]), SizeRule(1, size[1]), size, ())


def _natural_sizes(
    schedule: list[Call],
    source: TensorRef,
    output: TensorRef,
    channels: int,
    keras_size: tuple[int | None, int | None],
) -> Sizes:
    height, width = _axis_sizes(schedule, source, output, channels, keras_size)
    if height is None or width is None:
        probe = tuple(k or DEFAULT_PROBE for k in keras_size)
        problem = _mismatch(schedule, source, output, (channels, probe[0], probe[1]))
        raise UserError(
            f"the network runs at no input size up to {SEARCH_LIMIT}: at {probe[0]}x{probe[1]}, "
            f"{problem}"
        )
    size = (height.canonical, width.canonical)
    problem = _mismatch(schedule, source, output, (channels, size[0], size[1]))
    if problem is not None:
        raise UserError(f"the network cannot run at {size[0]}x{size[1]}: {problem}")
    keras_fixed = keras_size[0] is not None and keras_size[1] is not None
    reason = _pinning_reason(schedule, source, channels, size) if keras_fixed else None
    if height.rule is None or width.rule is None:
        if not keras_fixed:
            raise UserError(
                f"the network takes only a few input sizes ({size[0]}x{size[1]} among them) "
                "and was built for any size: pin one with --input-size HxW, e.g. "
                f"--input-size {size[0]}x{size[1]}"
            )
        axis = height if height.rule is None else width
        why = _first_mismatch(schedule, source, output, channels, size, axis is height)
        reason = reason or why
    if reason is not None:
        note = (
            f"the network takes only {size[0]}x{size[1]} images, the size it was built for "
            f"({reason}); exported for that size (--input-size HxW pins another)"
        )
        return Sizes(SizeRule(1, size[0]), SizeRule(1, size[1]), size, (note,))
    assert height.rule is not None and width.rule is not None
    notes = tuple(
        f"the network also runs at {axis} = {', '.join(map(str, sizes.others))}, ...; the "
        f"export serves {axis} {sizes.rule.describe()}, the progression through its canonical "
        f"size {sizes.canonical}"
        for axis, sizes in (("H", height), ("W", width))
        if sizes.others and sizes.rule is not None
    )
    return Sizes(height.rule, width.rule, None, notes)


def _first_mismatch(
    schedule: list[Call],
    source: TensorRef,
    output: TensorRef,
    channels: int,
    size: tuple[int, int],
    along_height: bool,
) -> str:
    """What goes wrong just above the pinned size along an axis that takes only a few."""
    for step in range(1, 65):
        shape: Shape = (
            (channels, size[0] + step, None) if along_height else (channels, None, size[1] + step)
        )
        problem = _mismatch(schedule, source, output, shape)
        if problem is not None:
            return problem
    return "no size near it runs"


def _output_shrink(
    schedule: list[Call],
    source: TensorRef,
    output: TensorRef,
    channels: int,
    pinned: tuple[int, int] | None,
    rule: SizeRule,
    axis: int,
) -> int | None:
    """How many pixels the output has fewer than the input along `axis` (1: H, 2: W), when
    that number is the same for every size the network takes; None when the output is on
    another grid (a different scale)."""
    shrinks = set()
    candidates = [rule.minimum] if pinned else [rule.minimum + k * rule.multiple for k in range(3)]
    other = (pinned[1] if axis == 1 else pinned[0]) if pinned else None
    for size in candidates:
        shape: Shape = (channels, size, other) if axis == 1 else (channels, other, size)
        out = _shapes(schedule, source, shape)[output]
        shrinks.add(size - out[axis])
    return shrinks.pop() if len(shrinks) == 1 else None


def _output_geometry(
    schedule: list[Call],
    source: TensorRef,
    output: TensorRef,
    channels: int,
    sizes: Sizes,
) -> tuple[int, int, int, int] | None:
    """ModelInfo.output_geometry, or None when the output is not on the input's grid."""
    shrink = (
        _output_shrink(schedule, source, output, channels, sizes.pinned, sizes.height, 1),
        _output_shrink(schedule, source, output, channels, sizes.pinned, sizes.width, 2),
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
    notes: list[str]  # what the user should know about the export (sizes served, pinned)

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
        first = " ".join(str(e).split("\n")[:2])  # the cause; the rest are its consequences
        raise UserError(f"the exported graph fails onnx.checker: {first}") from e


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
    _check_options(threshold, opset)
    if input_dtype not in INPUT_DTYPES:
        raise UserError(f"--input-dtype {input_dtype}: use one of {', '.join(INPUT_DTYPES)}")
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
        sizes = _served_sizes(
            schedule, source, output, channels, (keras_h, keras_w), fixed_shape, input_size
        )
        geometry = _output_geometry(schedule, source, output, channels, sizes)
        mean_values = _per_channel(mean, 0.0, channels, "--mean")
        std_values = _per_channel(std, INPUT_DTYPES[input_dtype], channels, "--std")
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
        in_h, in_w = sizes.pinned or (None, None)
        out_shape = _emit_graph(g, schedule, source, output, (nchw, (channels, in_h, in_w)))
        if rank_of(out_shape) != 4:
            raise UserError(
                f"the model's output {output.layer!r} is not an image but a rank-"
                f"{rank_of(out_shape)} tensor; the kit serves segmentation maps"
            )
        classes = out_shape[0]
        if classes > 256:
            raise UserError(f"the model outputs {classes} classes; MASK (uint8) holds at most 256")
        _emit_mask(g, classes, threshold)

        batch = "N"
        h_in, w_in = sizes.pinned or ("H", "W")
        h_out, w_out = (out_shape[1], out_shape[2]) if sizes.pinned else ("H_out", "W_out")
        graph = helper.make_graph(
            g.nodes,
            "unet",
            [
                helper.make_tensor_value_info(
                    INPUT_IMAGE,
                    helper.np_dtype_to_tensor_dtype(np.dtype(input_dtype)),
                    [batch, h_in, w_in, channels],
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
        helper.set_model_props(skeleton, info.metadata())
        yield Conversion(skeleton, g, info, list(sizes.notes))


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

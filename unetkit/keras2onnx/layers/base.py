"""What every layer converter shares: typed config access, shapes, the Op base class.

Inside the graph every tensor is NCHW. A shape is (C, H, W) for one image; H or W is None
when it is only known at run time. Keras tensors of lower rank carry their Keras rank
(`with_rank`, `rank_of`):
- a (batch, C) vector is stored as [N, C, 1, 1], shape (C, 1, 1) of rank 2;
- a (batch, L, D) sequence of tokens is stored as [N, D, h, w] with L = h * w, the tokens
  in row-major order over an h x w grid: the patch grid of the image they were cut from
  (a (batch, H, W, C) map reshaped to (batch, H * W, C) keeps its [N, C, H, W] tensor as
  it is), or (L, 1) when nothing says more. Its shape is (D, h, w) of rank 3; a
  (batch, 1, C) step is (C, 1, 1) of rank 3.
So a Dense, a LayerNormalization or an attention projection acts on the channel axis of
every tensor, and the size search sees a token grid shrink with the image. Each op
validates its Keras config up front, computes output shapes (also for the size search in
`unetkit.keras2onnx.size_search`) and emits ONNX nodes.

'same' padding is one of the two traps of Keras -> ONNX: TensorFlow puts the odd extra
row/column at the bottom/right (ONNX SAME_UPPER). Explicit pads are written wherever they
do not depend on the run-time size; otherwise auto_pad=SAME_UPPER.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from unetkit.core import UserError
from unetkit.keras2onnx.keras_file import KerasLayer, Weight
from unetkit.keras2onnx.layers.functions import ACTIVATIONS, activation_kind, function_name
from unetkit.keras2onnx.onnx_graph import GraphBuilder, LazyTensor

Dim = int | None
Shape = tuple[int, Dim, Dim]
Alignment = tuple[float, float]
SAME_GRID: Alignment = (0.0, 0.0)
INT64_MAX = np.iinfo(np.int64).max


class ShapeMismatch(Exception):
    """The network cannot take the given input size (used by the size search)."""


class _RankedShape(tuple):  # type: ignore[type-arg]
    """(C, h, w) of a Keras tensor of rank 2 or 3 (see the module's docstring)."""

    rank: int


def with_rank(shape: Shape, rank: int) -> Shape:
    """`shape` marked as a Keras tensor of `rank` (4: an image, the default)."""
    if rank == 4:
        return (shape[0], shape[1], shape[2])
    ranked = _RankedShape(shape)
    ranked.rank = rank
    return ranked  # type: ignore[return-value]


def rank_of(shape: Shape) -> int:
    """The Keras rank of the tensor whose shape this is (4 for images)."""
    return getattr(shape, "rank", 4)


def broadcast(op: Op, shapes: list[Shape]) -> Shape:
    """The shape of an elementwise merge: Keras expands lower-rank inputs after the batch axis
    (a (batch, C) vector acts as (batch, 1, 1, C)) and broadcasts dimensions of 1, e.g. a
    one-channel attention map multiplied into C channels."""
    if len(shapes) < 2:
        raise UserError(f"layer {op.name!r} ({op.layer.class_name}) needs at least two inputs")
    merged: list[Dim] = list(shapes[0])
    for shape in shapes[1:]:
        for i, b in enumerate(shape):
            a = merged[i]
            if a is not None and b is not None and a != b and 1 not in (a, b):
                axis = ("channels", "height", "width")[i]
                raise ShapeMismatch(
                    f"layer {op.name!r} ({op.layer.class_name}) cannot combine {axis} {a} and "
                    f"{b} (input shapes {', '.join(describe(s) for s in shapes)}; "
                    "(C, H, W), None = any size)"
                )
            merged[i] = _broadcast_dim(a, b)
    result: Shape = (merged[0], merged[1], merged[2])  # type: ignore[assignment]
    return with_rank(result, max(rank_of(s) for s in shapes))


def _broadcast_dim(a: Dim, b: Dim) -> Dim:
    if a == 1:
        return b
    if a is None:
        return None if b in (None, 1) else b
    return a


def describe(shape: Shape) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"


class Config:
    """Typed access to one layer's Keras config; bad values become UserError."""

    def __init__(self, layer: KerasLayer) -> None:
        self.layer = layer
        self.values = layer.config

    def fail(self, message: str) -> UserError:
        return UserError(f"layer {self.layer.name!r} ({self.layer.class_name}): {message}")

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def integer(self, key: str, default: int | None = None, minimum: int = 0) -> int:
        value = self.values.get(key, default)
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise self.fail(f"{key}={value!r} is not an integer >= {minimum}")
        return value

    def number(self, key: str, default: float | None = None) -> float:
        value = self.values.get(key, default)
        if (
            not isinstance(value, int | float)
            or isinstance(value, bool)
            or not math.isfinite(value)
        ):
            raise self.fail(f"{key}={value!r} is not a number")
        return float(value)

    def flag(self, key: str, default: bool) -> bool:
        value = self.values.get(key, default)
        if not isinstance(value, bool):
            raise self.fail(f"{key}={value!r} is not true or false")
        return value

    def pair(self, key: str, default: Any = None, minimum: int = 1) -> tuple[int, int]:
        value = self.values.get(key, default)
        if isinstance(value, int) and not isinstance(value, bool):
            value = [value, value]
        if (
            not isinstance(value, list | tuple)
            or len(value) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
            or min(value) < minimum
            or max(value) > 1 << 20
        ):
            raise self.fail(f"{key}={value!r} is not a pair of integers >= {minimum}")
        return int(value[0]), int(value[1])

    def pair_of_pairs(self, key: str) -> tuple[tuple[int, int], tuple[int, int]]:
        value = self.values.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            value = [[value, value], [value, value]]
        if isinstance(value, list | tuple) and len(value) == 2:
            value = [[v, v] if isinstance(v, int) and not isinstance(v, bool) else v for v in value]
        try:
            (a, b), (c, d) = value
        except (TypeError, ValueError):
            raise self.fail(f"{key}={value!r} is not ((top, bottom), (left, right))") from None
        numbers = (a, b, c, d)
        if not all(
            isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 1 << 20 for v in numbers
        ):
            raise self.fail(f"{key}={value!r} is not ((top, bottom), (left, right))")
        return (a, b), (c, d)

    def choice(self, key: str, options: tuple[str, ...], default: str | None = None) -> str:
        value = self.values.get(key, default)
        if isinstance(value, str):
            value = value.lower()
        if value not in options:
            raise self.fail(f"{key}={value!r} is not supported (supported: {', '.join(options)})")
        return value

    def activation(self, key: str = "activation") -> str:
        """The activation's kind for `emit_activation` (see functions.activation_kind)."""
        value = self.values.get(key, "linear")
        name = function_name(value)
        if name is None or name not in ACTIVATIONS:
            shown = name if name is not None else value
            raise self.fail(
                f"activation {shown!r} is not supported (supported: {', '.join(ACTIVATIONS)})"
            )
        return activation_kind(name, self.layer.keras_major)

    def weights(self, expected: list[tuple[int, ...]]) -> list[LazyTensor]:
        """The layer's weights as float32, read from the file only when written."""
        found = [w.shape for w in self.layer.weights]
        if found != expected:
            raise self.fail(f"weights have shapes {found}, the config implies {expected}")
        return [
            LazyTensor(w.shape, np.dtype(np.float32), partial(_as_float32, w))
            for w in self.layer.weights
        ]

    def weight(self, shape: tuple[int, ...], *paths: str) -> LazyTensor:
        """The weight stored under one of `paths` (see `find_weight`), as float32."""
        found = find_weight(self.layer, paths)
        if found is None:
            names = [w.name for w in self.layer.weights]
            raise self.fail(f"no weight {' or '.join(paths)} among {names}")
        if found.shape != shape:
            raise self.fail(
                f"weight {found.name} has shape {found.shape}, the config implies {shape}"
            )
        return LazyTensor(found.shape, np.dtype(np.float32), partial(_as_float32, found))


def _relative(layer: KerasLayer, weight: Weight) -> str:
    name = weight.name.removesuffix(":0")
    return name[len(layer.name) + 1 :] if name.startswith(layer.name + "/") else name


def find_weight(layer: KerasLayer, paths: tuple[str, ...]) -> Weight | None:
    """A weight of a layer with sublayers, by where the file keeps it. Legacy HDF5 names it
    '<layer>/<sublayer>/<weight>' ('mha/query/kernel:0'; a library's sublayer names carry a
    prefix: 'block/name1_attn_qkv/kernel:0'), the .keras format '<layer>/<attribute>/vars/<i>'
    ('mha/query_dense/vars/0', '_query_dense' in tf-keras). A path matches the name below the
    layer exactly, else as a suffix after '/' or '_'."""
    named = [(_relative(layer, w), w) for w in layer.weights]
    for path in paths:
        exact = [w for rel, w in named if rel == path]
        if exact:
            return exact[0]
    for path in paths:
        ends = [w for rel, w in named if rel.endswith(("/" + path, "_" + path))]
        if len(ends) == 1:
            return ends[0]
    return None


def _as_float32(weight: Weight) -> np.ndarray:
    return weight.load().astype(np.float32, copy=False)


def tokens(shape: Shape) -> Dim:
    """The length L of a (batch, L, D) sequence stored with shape (D, h, w)."""
    return None if shape[1] is None or shape[2] is None else shape[1] * shape[2]


def keras_dims(shape: Shape, layout: str) -> tuple[Dim, ...]:
    """The shape as Keras sees it, without the batch axis."""
    channels, h, w = shape
    rank = rank_of(shape)
    if rank == 2:
        return (channels,)
    if rank == 3:
        return (tokens(shape), channels)
    return (h, w, channels) if layout == "channels_last" else (channels, h, w)


def storage_axes(config: Config, axis: Any, shape: Shape, layout: str) -> tuple[int, ...]:
    """The NCHW axes that Keras axis (or axes) `axis` of a tensor of `shape` covers: the
    token axis of a (batch, L, D) sequence is both axes of its grid."""
    rank = rank_of(shape)
    values = axis if isinstance(axis, list | tuple) else [axis]
    if not values or not all(isinstance(a, int) and not isinstance(a, bool) for a in values):
        raise config.fail(f"axis={axis!r} is not an axis or a list of axes")
    found: set[int] = set()
    for value in values:
        if not -rank <= value < rank:
            raise config.fail(f"axis={axis!r} is not an axis of a rank-{rank} tensor")
        value %= rank
        if value == 0:
            raise config.fail("operating along the batch axis is not supported")
        if rank == 4:
            found.add(value if layout == "channels_first" else (0, 2, 3, 1)[value])
        elif rank == 3 and value == 1:
            found.update((2, 3))
        else:
            found.add(1)
    return tuple(sorted(found))


def to_storage(array: np.ndarray, shape: Shape, layout: str) -> np.ndarray | None:
    """A constant that Keras broadcasts against a tensor of `shape` (dims right-aligned, a
    leading batch dim of 1 allowed), laid out to broadcast against the stored [N, C, H, W]
    tensor: (C', H', W'). None when it does not fit (a table per token of a sequence whose
    grid is unknown or of another length)."""
    rank = rank_of(shape)
    if array.ndim == rank and array.shape[0] == 1:
        array = array.reshape(array.shape[1:])
    if array.ndim > rank - 1:
        return None
    array = array.reshape((1,) * (rank - 1 - array.ndim) + array.shape)
    if rank == 2:
        return array.reshape(-1, 1, 1)
    if rank == 4:
        return array if layout == "channels_first" else array.transpose(2, 0, 1)
    length, depth = array.shape
    if length == 1:
        return array.reshape(depth, 1, 1)
    if tokens(shape) != length:
        return None
    return np.ascontiguousarray(array.T).reshape(depth, shape[1], shape[2])  # type: ignore[arg-type]


def keras_axis(config: Config, axis: Any, layout: str) -> int:
    """Map a Keras axis of a 4-D tensor in `layout` to the NCHW axis used inside the graph."""
    if isinstance(axis, list) and len(axis) == 1:
        axis = axis[0]
    if not isinstance(axis, int) or isinstance(axis, bool) or not -4 <= axis <= 3:
        raise config.fail(f"axis={axis!r} is not an axis of an image tensor")
    axis %= 4
    if axis == 0:
        raise config.fail("operating along the batch axis is not supported")
    return axis if layout == "channels_first" else (0, 2, 3, 1)[axis]


@dataclass
class Op:
    """A layer ready to emit. `stride` is how much it shrinks H and W (bounds the size rule)."""

    layer: KerasLayer
    layout: str
    stride: tuple[int, int] = (1, 1)

    @property
    def name(self) -> str:
        return self.layer.name

    def output_shape(self, shapes: list[Shape]) -> Shape:
        raise NotImplementedError

    def emit(self, g: GraphBuilder, inputs: list[str], shapes: list[Shape]) -> str:
        raise NotImplementedError

    def pins_size(self, shapes: list[Shape]) -> str | None:
        """Why this op ties the network to the size it was built for, given its input shapes
        at that size (a pooling window as large as its input), or None."""
        return None

    def alignment(self) -> Alignment | None:
        """Where this op's output pixel (0, 0) lies in its input's pixel grid (rows, columns),
        for an op that keeps the grid (stride 1, no resampling); None for one that changes it.
        Tiling a 'valid' U-Net needs the offset along a path that keeps the grid."""
        return None

    def single(self, shapes: list[Shape]) -> Shape:
        if len(shapes) != 1:
            raise UserError(f"layer {self.name!r} takes one input, got {len(shapes)}")
        return shapes[0]


def window_offset(kernel: int, padding: str) -> float:
    """Input position of the first output pixel's window centre, for a stride-1 window."""
    centre = (kernel - 1) / 2
    return centre if padding == "valid" else centre - (kernel - 1) // 2


def same_pads(size: Dim, kernel: int, stride: int) -> tuple[int, int] | None:
    """TensorFlow 'same' pads (extra one at the end), or None if they depend on `size`."""
    if stride == 1:
        total = kernel - 1
    elif size is None:
        return None
    else:
        total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def window_output(size: Dim, kernel: int, stride: int, padding: str) -> Dim:
    if size is None:
        return None
    out = -(-size // stride) if padding == "same" else (size - kernel) // stride + 1
    if out < 1:
        raise ShapeMismatch(f"size {size} is too small for a window of {kernel}")
    return out


def window_attrs(
    shape: Shape, kernels: tuple[int, int], strides: tuple[int, int], padding: str
) -> dict[str, object]:
    if padding == "valid":
        return {"pads": [0, 0, 0, 0]}
    pads = [same_pads(shape[i + 1], kernels[i], strides[i]) for i in range(2)]
    if pads[0] is None or pads[1] is None:
        return {"auto_pad": "SAME_UPPER"}
    return {"pads": [pads[0][0], pads[1][0], pads[0][1], pads[1][1]]}

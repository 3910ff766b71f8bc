"""Padding, cropping and reshaping: ZeroPadding2D, Cropping2D, Reshape, Permute, and the
cyclic shift (roll) of a window attention."""

from __future__ import annotations

import math

import numpy as np

from unetkit.keras2onnx.keras_file import KerasLayer
from unetkit.keras2onnx.layers.base import (
    INT64_MAX,
    Alignment,
    Config,
    Dim,
    Op,
    Shape,
    ShapeMismatch,
    keras_dims,
    rank_of,
    tokens,
    with_rank,
)
from unetkit.keras2onnx.layers.tensors import from_keras_order, reshape, to_keras_order
from unetkit.keras2onnx.onnx_graph import GraphBuilder
from unetkit.keras2onnx.registry import register_layer


@register_layer("ZeroPadding2D")
class ZeroPadding2D(Op):
    def __init__(self, layer: KerasLayer, layout: str) -> None:
        self.padding = Config(layer).pair_of_pairs("padding")
        super().__init__(layer, layout)

    def alignment(self) -> Alignment | None:
        (top, _), (left, _) = self.padding
        return -float(top), -float(left)

    def output_shape(self, shapes: list[Shape]) -> Shape:
        channels, h, w = self.single(shapes)
        (top, bottom), (left, right) = self.padding
        return (
            channels,
            None if h is None else h + top + bottom,
            None if w is None else w + left + right,
        )

    def emit(self, g: GraphBuilder, inputs: list[str], shapes: list[Shape]) -> str:
        (top, bottom), (left, right) = self.padding
        pads = g.constant(
            f"{self.name}/pads", np.array([0, 0, top, left, 0, 0, bottom, right], dtype=np.int64)
        )
        return g.node("Pad", [inputs[0], pads], self.name, mode="constant")


@register_layer("Cropping2D")
class Cropping2D(Op):
    def __init__(self, layer: KerasLayer, layout: str) -> None:
        self.cropping = Config(layer).pair_of_pairs("cropping")
        super().__init__(layer, layout)

    def alignment(self) -> Alignment | None:
        (top, _), (left, _) = self.cropping
        return float(top), float(left)

    def output_shape(self, shapes: list[Shape]) -> Shape:
        channels, h, w = self.single(shapes)
        out: list[Dim] = []
        for size, (begin, end) in zip((h, w), self.cropping, strict=True):
            if size is not None and size - begin - end < 1:
                raise ShapeMismatch(f"layer {self.name!r} crops {begin}+{end} from size {size}")
            out.append(None if size is None else size - begin - end)
        return channels, out[0], out[1]

    def emit(self, g: GraphBuilder, inputs: list[str], shapes: list[Shape]) -> str:
        (top, bottom), (left, right) = self.cropping
        starts = g.constant(f"{self.name}/starts", np.array([top, left], dtype=np.int64))
        ends = g.constant(
            f"{self.name}/ends",
            np.array([-bottom if bottom else INT64_MAX, -right if right else INT64_MAX], np.int64),
        )
        axes = g.constant(f"{self.name}/axes", np.array([2, 3], dtype=np.int64))
        return g.node("Slice", [inputs[0], starts, ends, axes], self.name)


def _fromkeras_dims(dims: tuple[Dim, ...], layout: str) -> Shape:
    if len(dims) == 1:
        return with_rank((dims[0], 1, 1), 2)  # type: ignore[arg-type]
    if len(dims) == 2:
        return with_rank((dims[1], dims[0], 1), 3)  # type: ignore[arg-type]
    h, w, c = dims if layout == "channels_last" else (dims[1], dims[2], dims[0])
    return c, h, w  # type: ignore[return-value]


def _channels_last(shape: Shape, layout: str) -> bool:
    """Whether Keras's element order of this tensor is the storage's order per channel with
    the channels last: then a reshape that keeps the channels only regroups the grid."""
    return rank_of(shape) < 4 or layout == "channels_last"


@register_layer("Reshape")
class Reshape(Op):
    """Reshape to `target_shape` (rank 1, 2 or 3 without the batch axis, one -1 allowed).

    A reshape that keeps the last (channel) axis only regroups the pixels or tokens: free
    between a map and its token sequence ((batch, H, W, C) <-> (batch, H * W, C), the grid
    kept) and between a (batch, C) vector and a 1x1 map, else one ONNX Reshape of the grid.
    Any other reshape goes to Keras's element order, is reshaped, and comes back.
    """

    def __init__(self, layer: KerasLayer, layout: str) -> None:
        c = Config(layer)
        target = c.get("target_shape")
        if (
            not isinstance(target, list | tuple)
            or not 1 <= len(target) <= 3
            or not all(isinstance(d, int) and not isinstance(d, bool) for d in target)
            or any(d == 0 or d < -1 for d in target)
            or sum(d == -1 for d in target) > 1
        ):
            raise c.fail(
                f"target_shape={target!r} is not an image, a sequence (L, D) or a vector "
                "shape (the kit holds tensors of rank 2 to 4)"
            )
        self.target = tuple(int(d) for d in target)
        self.config = c
        super().__init__(layer, layout)

    def _resolved(self, shape: Shape) -> tuple[Dim, ...]:
        dims = keras_dims(shape, self.layout)
        known = None if None in dims else math.prod(dims)  # type: ignore[arg-type]
        if -1 not in self.target:
            if known is not None and known != math.prod(self.target):
                raise ShapeMismatch(
                    f"layer {self.name!r} (Reshape) cannot reshape {dims} into {self.target}"
                )
            return self.target
        rest = -math.prod(self.target)
        if known is None:
            return tuple(None if d == -1 else d for d in self.target)
        if known % rest:
            raise ShapeMismatch(
                f"layer {self.name!r} (Reshape) cannot reshape {dims} into {self.target}"
            )
        return tuple(known // rest if d == -1 else d for d in self.target)

    def _plan(self, shape: Shape) -> tuple[Shape, bool]:
        """The output shape, and whether the stored tensor is only regrouped per channel."""
        dims = self._resolved(shape)
        out = _fromkeras_dims(dims, self.layout)
        keeps_channels = (
            out[0] == shape[0] and _channels_last(shape, self.layout)
        ) and _channels_last(out, self.layout)
        same_tokens = dims[0] is None or tokens(shape) in (None, dims[0])
        if keeps_channels and len(dims) == 2 and rank_of(shape) != 2 and same_tokens:
            out = with_rank(shape, 3)  # the same tokens: the grid is kept
        return out, keeps_channels

    def output_shape(self, shapes: list[Shape]) -> Shape:
        out = self._plan(self.single(shapes))[0]
        if out[0] is None:
            raise self.config.fail(
                f"target_shape={self.target} leaves the channel count to the image size; "
                "the kit needs a known channel count"
            )
        return out

    def emit(self, g: GraphBuilder, inputs: list[str], shapes: list[Shape]) -> str:
        shape = shapes[0]
        out, keeps_channels = self._plan(shape)
        if keeps_channels:
            if tuple(out) == tuple(shape):
                return inputs[0]  # the same [N, C, h, w] tensor
            grid = [-1 if d is None else d for d in out[1:]]
            return reshape(g, inputs[0], [0, 0, *grid], self.name)
        x = to_keras_order(g, inputs[0], shape, self.layout, self.name)
        x = reshape(g, x, [0, *self.target], self.name)
        return from_keras_order(g, x, out, self.layout, self.name)


@register_layer("Permute")
class Permute(Op):
    """Reorder the axes after the batch axis (`dims`, counted from 1): of an image, or of a
    (batch, L, D) sequence ((2, 1): the tokens become the channels, so L must be known)."""

    def __init__(self, layer: KerasLayer, layout: str) -> None:
        c = Config(layer)
        dims = c.get("dims")
        if (
            not isinstance(dims, list | tuple)
            or not all(isinstance(d, int) and not isinstance(d, bool) for d in dims)
            or sorted(dims) not in ([1], [1, 2], [1, 2, 3])
        ):
            raise c.fail(f"dims={dims!r} is not a permutation of (1, 2, 3), (1, 2) or (1,)")
        self.dims = tuple(int(d) for d in dims)
        self.config = c
        super().__init__(layer, layout)

    def _perm(self) -> list[int]:
        """The NCHW -> NCHW Transpose: to Keras's order, Keras's permutation, back."""
        keras = [0, *self.dims]
        if self.layout == "channels_first":
            return keras
        to_keras, to_graph = [0, 2, 3, 1], [0, 3, 1, 2]
        return [to_keras[keras[to_graph[i]]] for i in range(4)]

    def output_shape(self, shapes: list[Shape]) -> Shape:
        shape = self.single(shapes)
        if self.dims in ((1,), (1, 2), (1, 2, 3)):
            return shape
        if rank_of(shape) != len(self.dims) + 1:
            raise self.config.fail(
                f"dims={self.dims} need a rank-{len(self.dims) + 1} tensor, got rank "
                f"{rank_of(shape)}"
            )
        dims = keras_dims(shape, self.layout)
        out = _fromkeras_dims(tuple(dims[d - 1] for d in self.dims), self.layout)
        if out[0] is None:
            raise self.config.fail(
                f"dims={self.dims} move a size known only at run time into the channels; the "
                "kit needs a known channel count"
            )
        return out

    def emit(self, g: GraphBuilder, inputs: list[str], shapes: list[Shape]) -> str:
        if self.dims in ((1,), (1, 2), (1, 2, 3)):
            return inputs[0]
        if len(self.dims) == 3:
            return g.node("Transpose", inputs, self.name, perm=self._perm())
        x = to_keras_order(g, inputs[0], shapes[0], self.layout, self.name)
        x = g.node("Transpose", [x], self.name, perm=[0, 2, 1])
        return from_keras_order(g, x, self.output_shape(shapes), self.layout, self.name)

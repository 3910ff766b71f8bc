"""Padding, cropping and reshaping: ZeroPadding2D, Cropping2D, Reshape, Permute."""

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
    rank_of,
    with_rank,
)
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


def _keras_dims(shape: Shape, layout: str) -> tuple[Dim, ...]:
    """The shape as Keras sees it, without the batch axis."""
    channels, h, w = shape
    rank = rank_of(shape)
    if rank == 2:
        return (channels,)
    if rank == 3:
        return (1, channels)
    return (h, w, channels) if layout == "channels_last" else (channels, h, w)


def _from_keras_dims(dims: tuple[Dim, ...], layout: str) -> Shape:
    if len(dims) == 1:
        return with_rank((dims[0], 1, 1), 2)  # type: ignore[arg-type]
    if len(dims) == 2:
        return with_rank((dims[1], 1, 1), 3)  # type: ignore[arg-type]
    h, w, c = dims if layout == "channels_last" else (dims[1], dims[2], dims[0])
    return c, h, w  # type: ignore[return-value]


def _to_keras_order(layout: str, rank: int) -> list[int] | None:
    """The Transpose that takes the graph's NCHW tensor to Keras's element order."""
    return [0, 2, 3, 1] if rank == 4 and layout == "channels_last" else None


@register_layer("Reshape")
class Reshape(Op):
    """Reshape to `target_shape` (rank 1, 2 or 3 without the batch axis, one -1 allowed).

    Between a (batch, C) vector and a 1x1 map (the squeeze-and-excitation step) it is free;
    otherwise the tensor goes to Keras's element order, is reshaped, and comes back.
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
            raise c.fail(f"target_shape={target!r} is not an image, a (1, C) or a vector shape")
        if len(target) == 2 and target[0] != 1:
            raise c.fail(f"target_shape={target!r}: of rank-2 shapes only (1, C) is supported")
        self.target = tuple(int(d) for d in target)
        self.config = c
        super().__init__(layer, layout)

    def _resolved(self, shape: Shape) -> tuple[Dim, ...]:
        dims = _keras_dims(shape, self.layout)
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

    def output_shape(self, shapes: list[Shape]) -> Shape:
        out = _from_keras_dims(self._resolved(self.single(shapes)), self.layout)
        if out[0] is None:
            raise self.config.fail(
                f"target_shape={self.target} leaves the channel count to the image size; "
                "the kit needs a known channel count"
            )
        return out

    def emit(self, g: GraphBuilder, inputs: list[str], shapes: list[Shape]) -> str:
        shape = shapes[0]
        out = self.output_shape(shapes)
        if shape[1:] == (1, 1) and out[1:] == (1, 1) and shape[0] == out[0]:
            return inputs[0]  # vector <-> 1x1 map: the same [N, C, 1, 1] tensor
        x = inputs[0]
        order = _to_keras_order(self.layout, rank_of(shape))
        if order is not None:
            x = g.node("Transpose", [x], self.name, perm=order)
        target = self.target
        # (C,) and (1, C) are stored as [N, C, 1, 1]
        dims = [0, *target] if len(target) == 3 else [0, target[-1], 1, 1]
        new_shape = g.constant(f"{self.name}/shape", np.array(dims, dtype=np.int64))
        x = g.node("Reshape", [x, new_shape], self.name)
        if len(target) == 3 and self.layout == "channels_last":
            x = g.node("Transpose", [x], self.name, perm=[0, 3, 1, 2])
        return x


@register_layer("Permute")
class Permute(Op):
    """Reorder the axes after the batch axis (`dims`, counted from 1) of an image tensor."""

    def __init__(self, layer: KerasLayer, layout: str) -> None:
        c = Config(layer)
        dims = c.get("dims")
        if (
            not isinstance(dims, list | tuple)
            or not all(isinstance(d, int) and not isinstance(d, bool) for d in dims)
            or sorted(dims) not in ([1], [1, 2, 3])
        ):
            raise c.fail(f"dims={dims!r} is not a permutation of (1, 2, 3) or (1,)")
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
        if len(self.dims) == 1:
            return shape
        if rank_of(shape) != 4:
            raise self.config.fail(f"dims={self.dims} need an image tensor (rank 4)")
        dims = _keras_dims(shape, self.layout)
        out = _from_keras_dims(tuple(dims[d - 1] for d in self.dims), self.layout)
        if out[0] is None:
            raise self.config.fail(
                f"dims={self.dims} move an image axis into the channels; the kit needs a known "
                "channel count"
            )
        return out

    def emit(self, g: GraphBuilder, inputs: list[str], shapes: list[Shape]) -> str:
        if len(self.dims) == 1:
            return inputs[0]
        return g.node("Transpose", inputs, self.name, perm=self._perm())

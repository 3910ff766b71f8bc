"""ONNX building blocks for moving tensors between the graph's storage and Keras's order.

The graph stores every tensor as [N, C, h, w] (see base). Attention, einsum and reshapes
compute in Keras's element order: [N, H, W, C] for a channels_last image, [N, L, D] for a
sequence, [N, C] for a vector. These helpers go there and back, and rebuild a grid whose
size is only known at run time from a tensor that has it.
"""

from __future__ import annotations

import numpy as np
from onnx import numpy_helper

from unetkit.keras2onnx.layers.base import Shape, rank_of
from unetkit.keras2onnx.onnx_graph import GraphBuilder


def int64s(g: GraphBuilder, base: str, values: list[int]) -> str:
    """An int64 vector as a Constant node (shape inference then knows its values)."""
    tensor = numpy_helper.from_array(np.array(values, np.int64), f"{base}/const")
    return g.node("Constant", [], base, value=tensor)


def reshape(g: GraphBuilder, x: str, dims: list[int], base: str) -> str:
    return g.node("Reshape", [x, int64s(g, f"{base}/shape", dims)], base)


def transpose(g: GraphBuilder, x: str, perm: list[int], base: str) -> str:
    return g.node("Transpose", [x], base, perm=perm)


def dims_of(g: GraphBuilder, x: str, start: int, end: int, base: str) -> str:
    """Dimensions start..end-1 of x's run-time shape (Shape + Slice: opset 13)."""
    shape = g.node("Shape", [x], base)
    begin, stop = int64s(g, f"{base}/start", [start]), int64s(g, f"{base}/end", [end])
    return g.node("Slice", [shape, begin, stop], base)


def regrid(
    g: GraphBuilder, x: str, grid: tuple[int | None, int | None], like: str, base: str
) -> str:
    """[N, C, L] or [N, C, h', w'] -> [N, C, h, w]: the grid `grid`, or `like`'s (dims 2 and 3
    of its run-time shape) where a side is only known at run time."""
    if grid[0] is not None and grid[1] is not None:
        return reshape(g, x, [0, 0, grid[0], grid[1]], base)
    head = dims_of(g, x, 0, 2, base)
    sides = dims_of(g, like, 2, 4, base)
    return g.node("Reshape", [x, g.node("Concat", [head, sides], base, axis=0)], base)


def to_keras_order(g: GraphBuilder, x: str, shape: Shape, layout: str, base: str) -> str:
    """The stored tensor in Keras's element order ([N, H, W, C], [N, L, D] or [N, C])."""
    rank = rank_of(shape)
    if rank == 4:
        return x if layout == "channels_first" else transpose(g, x, [0, 2, 3, 1], base)
    if rank == 2:
        return reshape(g, x, [0, -1], base)
    return transpose(g, reshape(g, x, [0, 0, -1], base), [0, 2, 1], base)


def from_keras_order(
    g: GraphBuilder, x: str, shape: Shape, layout: str, base: str, like: str | None = None
) -> str:
    """A tensor in Keras's order back to storage for `shape`; a sequence's run-time grid
    comes from `like` where `shape` leaves it open."""
    rank = rank_of(shape)
    if rank == 4:
        return x if layout == "channels_first" else transpose(g, x, [0, 3, 1, 2], base)
    if rank == 2:
        return reshape(g, x, [0, -1, 1, 1], base)
    x = transpose(g, x, [0, 2, 1], base)
    if shape[1] is not None and shape[2] is not None:
        return reshape(g, x, [0, 0, shape[1], shape[2]], base)
    if like is None:
        return reshape(g, x, [0, 0, -1, 1], base)
    return regrid(g, x, (shape[1], shape[2]), like, base)

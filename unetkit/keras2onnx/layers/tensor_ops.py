"""Ops on tensors that TensorFlow functions (TFOpLambda) and Keras 3 operations share:
arithmetic with constants (a number, a per-channel vector, a position table), matrix
products and einsums in Keras's element order, and the cyclic shift (roll) of a window
attention.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from unetkit.core import UserError
from unetkit.keras2onnx.keras_file import InputSlot, KerasLayer
from unetkit.keras2onnx.layers.base import (
    INT64_MAX,
    SAME_GRID,
    Alignment,
    Config,
    Dim,
    Op,
    Shape,
    ShapeMismatch,
    broadcast,
    describe,
    keras_dims,
    rank_of,
    storage_axes,
    to_storage,
    tokens,
    with_rank,
)
from unetkit.keras2onnx.layers.tensors import (
    dims_of,
    from_keras_order,
    int64s,
    to_keras_order,
    transpose,
)
from unetkit.keras2onnx.onnx_graph import GraphBuilder


class Arithmetic(Op):
    """x <op> y where either may be a tensor or a constant that Keras broadcasts against it:
    a number, one value per channel, or a table per token (a position embedding Keras saved
    as a constant: `x + Embedding(L, D)(range(L))` in a functional model)."""

    ONNX: ClassVar[dict[str, str]] = {
        "Add": "Add",
        "Subtract": "Sub",
        "Multiply": "Mul",
        "Divide": "Div",
        "Maximum": "Max",
        "Minimum": "Min",
    }

    def __init__(self, layer: KerasLayer, layout: str, kind: str, arguments: list[Any]) -> None:
        self.kind = kind
        self.arguments = arguments
        self.config = Config(layer)
        self.constants: dict[int, np.ndarray] = {}
        for i, value in enumerate(arguments):
            if not isinstance(value, InputSlot):
                try:
                    array = np.asarray(value, dtype=np.float64)
                except (TypeError, ValueError):
                    array = np.asarray([np.nan])
                if array.ndim > 4 or not np.all(np.isfinite(array)):
                    raise self.config.fail(f"constant {_short(value)} is not an array of numbers")
                self.constants[i] = array.astype(np.float32)
        if len(self.constants) == len(arguments):
            raise self.config.fail("computes on constants only")
        super().__init__(layer, layout)

    def alignment(self) -> Alignment:
        return SAME_GRID

    def output_shape(self, shapes: list[Shape]) -> Shape:
        tensors = [shapes[v.index] for v in self.arguments if isinstance(v, InputSlot)]
        shape = tensors[0] if len(tensors) == 1 else broadcast(self, tensors)
        for array in self.constants.values():
            self._stored(array, shape)
        return shape

    def _stored(self, array: np.ndarray, shape: Shape) -> np.ndarray | None:
        """The constant laid out for the stored tensor; None while the tensor's token grid is
        unknown (the size search), ShapeMismatch when it cannot broadcast."""
        stored = to_storage(array, shape, self.layout)
        if stored is None and rank_of(shape) == 3 and tokens(shape) is None and array.ndim <= 2:
            return None
        fits = stored is not None and all(
            s == 1 or d is None or s == d for s, d in zip(stored.shape, shape, strict=True)
        )
        if not fits:
            raise ShapeMismatch(
                f"layer {self.name!r} ({self.layer.class_name}) combines a constant of shape "
                f"{array.shape} with a tensor {describe(shape)} (C, H, W)"
            )
        return stored

    def pins_size(self, shapes: list[Shape]) -> str | None:
        shape = self.output_shape(shapes)
        for array in self.constants.values():
            stored = self._stored(array, shape)
            if stored is not None and stored.shape[1:] != (1, 1):
                return (
                    f"layer {self.name!r} adds a constant of shape {array.shape}, one per position"
                )
        return None

    def emit(self, g: GraphBuilder, inputs: list[str], shapes: list[Shape]) -> str:
        shape = self.output_shape(shapes)
        names = []
        for i, value in enumerate(self.arguments):
            if isinstance(value, InputSlot):
                names.append(inputs[value.index])
                continue
            stored = self._stored(self.constants[i], shape)
            if stored is None:
                raise UserError(
                    f"layer {self.name!r} adds a table of {self.constants[i].shape[0]} positions "
                    "to a sequence whose length is known only at run time: pin the size with "
                    "--input-size HxW"
                )
            names.append(g.constant(f"{self.name}/constant{i}", stored))
        return g.node(self.ONNX[self.kind], names, self.name)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


class MatMul(Op):
    """The matrix product of two sequences in Keras's order, (batch, T, K) @ (batch, K, S)
    -> (batch, T, S), either side transposed first (tf.matmul's transpose_a/transpose_b)."""

    def __init__(
        self, layer: KerasLayer, layout: str, transpose_a: bool = False, transpose_b: bool = False
    ) -> None:
        self.transposed = (transpose_a, transpose_b)
        self.config = Config(layer)
        super().__init__(layer, layout)

    def _dims(self, shape: Shape, transposed: bool) -> tuple[Dim, Dim]:
        if rank_of(shape) != 3:
            raise self.config.fail(
                f"matmul of a rank-{rank_of(shape)} tensor; the kit multiplies (batch, T, K) "
                "sequences"
            )
        length, depth = keras_dims(shape, self.layout)
        return (depth, length) if transposed else (length, depth)

    def output_shape(self, shapes: list[Shape]) -> Shape:
        if len(shapes) != 2:
            raise self.config.fail(f"matmul of {len(shapes)} tensors")
        (t, k), (k2, s) = (self._dims(x, f) for x, f in zip(shapes, self.transposed, strict=True))
        if k is not None and k2 is not None and k != k2:
            raise ShapeMismatch(f"layer {self.name!r} multiplies (.., {t}, {k}) by ({k2}, {s})")
        if s is None:
            raise self.config.fail(
                "matmul whose result has a size known only at run time as its last axis"
            )
        a = shapes[0]
        return with_rank((s, a[1], a[2]) if not self.transposed[0] else (s, t, 1), 3)

    def emit(self, g: GraphBuilder, inputs: list[str], shapes: list[Shape]) -> str:
        out = self.output_shape(shapes)
        ordered = []
        for x, shape, transposed in zip(inputs, shapes, self.transposed, strict=True):
            y = to_keras_order(g, x, shape, self.layout, self.name)
            ordered.append(transpose(g, y, [0, 2, 1], self.name) if transposed else y)
        y = g.node("MatMul", ordered, self.name)
        return from_keras_order(g, y, out, self.layout, self.name, like=inputs[0])


class Einsum(Op):
    """An einsum of tensors in Keras's element order (keras.ops.einsum); every operand and
    the result keep the batch as their first axis."""

    def __init__(self, layer: KerasLayer, layout: str, equation: Any) -> None:
        self.config = Config(layer)
        if not isinstance(equation, str) or "->" not in equation or "." in equation:
            raise self.config.fail(
                f"einsum {equation!r} is not supported (supported: an explicit equation "
                "'bij,bjk->bik' without '...')"
            )
        operands, result = equation.replace(" ", "").split("->")
        self.operands, self.result = operands.split(","), result
        letters = {s[:1] for s in [*self.operands, result]}
        if len(letters) != 1 or not 2 <= len(result) <= 4:
            raise self.config.fail(
                f"einsum {equation!r} must keep the batch as every operand's first axis and "
                "give a tensor of rank 2 to 4"
            )
        self.equation = equation.replace(" ", "")
        super().__init__(layer, layout)

    def _sizes(self, shapes: list[Shape]) -> dict[str, Dim]:
        if len(shapes) != len(self.operands):
            raise self.config.fail(f"einsum {self.equation!r} of {len(shapes)} tensors")
        sizes: dict[str, Dim] = {}
        for letters, shape in zip(self.operands, shapes, strict=True):
            dims = keras_dims(shape, self.layout)
            if len(letters) != len(dims) + 1:
                raise self.config.fail(
                    f"einsum operand {letters!r} for a rank-{rank_of(shape)} tensor"
                )
            for letter, size in zip(letters[1:], dims, strict=True):
                known = sizes.get(letter)
                if known is not None and size is not None and known != size:
                    raise ShapeMismatch(
                        f"layer {self.name!r} sums {letter} over {known} and {size}"
                    )
                sizes[letter] = size if known is None else known
        return sizes

    def output_shape(self, shapes: list[Shape]) -> Shape:
        sizes = self._sizes(shapes)
        dims = tuple(sizes[letter] for letter in self.result[1:])
        if len(dims) == 2:
            source = next(
                (
                    s
                    for op, s in zip(self.operands, shapes, strict=True)
                    if rank_of(s) == 3 and op[1] == self.result[1]
                ),
                None,
            )
            out = with_rank(
                (dims[1], *source[1:]) if source is not None else (dims[1], dims[0], 1), 3
            )
        elif len(dims) == 1:
            out = with_rank((dims[0], 1, 1), 2)
        else:
            h, w, c = dims if self.layout == "channels_last" else (dims[1], dims[2], dims[0])
            out = (c, h, w)
        if out[0] is None:
            raise self.config.fail(
                f"einsum {self.equation!r} leaves the last axis to the image size"
            )
        return out  # type: ignore[return-value]

    def emit(self, g: GraphBuilder, inputs: list[str], shapes: list[Shape]) -> str:
        out = self.output_shape(shapes)
        ordered = [
            to_keras_order(g, x, s, self.layout, self.name)
            for x, s in zip(inputs, shapes, strict=True)
        ]
        y = g.node("Einsum", ordered, self.name, equation=self.equation)
        like = next(
            (x for x, s in zip(inputs, shapes, strict=True) if rank_of(s) == rank_of(out)), None
        )
        return from_keras_order(g, y, out, self.layout, self.name, like=like)


class Roll(Op):
    """A cyclic shift along Keras axes (tf.roll, keras.ops.roll): the shifted window
    attention's shift of a map; Slice + Concat, one axis at a time."""

    def __init__(self, layer: KerasLayer, layout: str, shift: Any, axis: Any) -> None:
        self.config = Config(layer)
        shifts = shift if isinstance(shift, list | tuple) else [shift]
        axes = axis if isinstance(axis, list | tuple) else [axis]
        if len(shifts) != len(axes) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in [*shifts, *axes]
        ):
            raise self.config.fail(
                f"roll by shift={shift!r} along axis={axis!r}: integers, one shift per axis"
            )
        self.pairs = list(zip(shifts, axes, strict=True))
        super().__init__(layer, layout)

    def output_shape(self, shapes: list[Shape]) -> Shape:
        shape = self.single(shapes)
        for _, axis in self.pairs:
            storage_axes(self.config, axis, shape, self.layout)
        return shape

    def emit(self, g: GraphBuilder, inputs: list[str], shapes: list[Shape]) -> str:
        x, shape = inputs[0], shapes[0]
        for shift, axis in self.pairs:
            axes = storage_axes(self.config, axis, shape, self.layout)
            if len(axes) == 1:
                x = roll(g, x, shift, axes[0], shape[axes[0] - 1], self.name)
            else:  # the token axis of a sequence on a grid: roll the flat sequence
                flat = to_keras_order(g, x, shape, self.layout, self.name)
                flat = roll(g, flat, shift, 1, tokens(shape), self.name)
                x = from_keras_order(g, flat, shape, self.layout, self.name, like=x)
        return x


def roll(g: GraphBuilder, x: str, shift: int, axis: int, size: Dim, base: str) -> str:
    """x rolled by `shift` along `axis` (any shift, as tf.roll: modulo the size): the last
    `shift` entries move to the front. A size known only at run time is read from x."""
    axes = int64s(g, f"{base}/roll_axis", [axis])
    if size is not None:
        if shift % size == 0:
            return x
        cut: str = int64s(g, f"{base}/cut", [size - shift % size])
    else:
        length = dims_of(g, x, axis, axis + 1, base)
        amount = g.node("Mod", [int64s(g, f"{base}/shift", [shift]), length], base, fmod=0)
        cut = g.node("Sub", [length, amount], base)
    end = int64s(g, f"{base}/end", [INT64_MAX])
    tail = g.node("Slice", [x, cut, end, axes], base)
    head = g.node("Slice", [x, int64s(g, f"{base}/zero", [0]), cut, axes], base)
    return g.node("Concat", [tail, head], base, axis=axis)

"""Merges of several tensors: Concatenate, Add, Multiply."""

from __future__ import annotations

from typing import ClassVar

from unetkit.core import UserError
from unetkit.keras2onnx.keras_file import KerasLayer
from unetkit.keras2onnx.layers.base import (
    SAME_GRID,
    Alignment,
    Config,
    Dim,
    Op,
    Shape,
    ShapeMismatch,
    keras_axis,
)
from unetkit.keras2onnx.onnx_graph import GraphBuilder
from unetkit.keras2onnx.registry import register_layer


def _merge_shapes(op: Op, shapes: list[Shape], axis: int | None) -> Shape:
    if len(shapes) < 2:
        raise UserError(f"layer {op.name!r} ({op.layer.class_name}) needs at least two inputs")
    merged: list[Dim] = list(shapes[0])
    for shape in shapes[1:]:
        for i in range(3):
            if i + 1 == axis:
                continue
            a, b = merged[i], shape[i]
            if a is not None and b is not None and a != b:
                raise ShapeMismatch(
                    f"layer {op.name!r} merges shapes {shapes[0]} and {shape} (CHW)"
                )
            merged[i] = a if a is not None else b
    if axis is not None:
        sizes = [s[axis - 1] for s in shapes]
        merged[axis - 1] = None if None in sizes else sum(sizes)
    return merged[0], merged[1], merged[2]


@register_layer("Concatenate")
class Concatenate(Op):
    def __init__(self, layer: KerasLayer, layout: str) -> None:
        c = Config(layer)
        self.axis = keras_axis(c, c.get("axis", -1), layout)
        super().__init__(layer, layout)

    def alignment(self) -> Alignment:
        return SAME_GRID

    def output_shape(self, shapes: list[Shape]) -> Shape:
        return _merge_shapes(self, shapes, self.axis)

    def emit(self, g: GraphBuilder, inputs: list[str], shapes: list[Shape]) -> str:
        return g.node("Concat", inputs, self.name, axis=self.axis)


@register_layer("Add", "Multiply")
class Elementwise(Op):
    ONNX: ClassVar[dict[str, str]] = {"Add": "Add", "Multiply": "Mul"}

    def alignment(self) -> Alignment:
        return SAME_GRID

    def output_shape(self, shapes: list[Shape]) -> Shape:
        return _merge_shapes(self, shapes, None)

    def emit(self, g: GraphBuilder, inputs: list[str], shapes: list[Shape]) -> str:
        y = inputs[0]
        for other in inputs[1:]:
            y = g.node(self.ONNX[self.layer.class_name], [y, other], self.name)
        return y

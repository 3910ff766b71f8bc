"""Merges of several tensors: Concatenate, and the elementwise Add, Subtract, Multiply,
Average, Maximum and Minimum.

Elementwise merges broadcast as Keras does: a lower-rank input is expanded after the batch
axis ((batch, C) acts as (batch, 1, 1, C), a squeeze-and-excitation scale) and dimensions of 1
stretch (an attention gate's one-channel map multiplied into C channels).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

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
    broadcast,
    describe,
    keras_axis,
    rank_of,
    with_rank,
)
from unetkit.keras2onnx.onnx_graph import GraphBuilder
from unetkit.keras2onnx.registry import register_layer


def _concat_shapes(op: Op, shapes: list[Shape], axis: int) -> Shape:
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
                    f"layer {op.name!r} (Concatenate) joins inputs of different "
                    f"{('channels', 'height', 'width')[i]}: "
                    f"{', '.join(describe(s) for s in shapes)} (C, H, W)"
                )
            merged[i] = a if a is not None else b
    sizes = [s[axis - 1] for s in shapes]
    merged[axis - 1] = None if None in sizes else sum(sizes)  # type: ignore[arg-type]
    return with_rank((merged[0], merged[1], merged[2]), rank_of(shapes[0]))  # type: ignore[arg-type]


@register_layer("Concatenate")
class Concatenate(Op):
    def __init__(self, layer: KerasLayer, layout: str) -> None:
        c = Config(layer)
        self.axis = keras_axis(c, c.get("axis", -1), layout)
        super().__init__(layer, layout)

    def alignment(self) -> Alignment:
        return SAME_GRID

    def output_shape(self, shapes: list[Shape]) -> Shape:
        return _concat_shapes(self, shapes, self.axis)

    def emit(self, g: GraphBuilder, inputs: list[str], shapes: list[Shape]) -> str:
        return g.node("Concat", inputs, self.name, axis=self.axis)


@register_layer("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum")
class Elementwise(Op):
    ONNX: ClassVar[dict[str, str]] = {
        "Add": "Add",
        "Subtract": "Sub",
        "Multiply": "Mul",
        "Average": "Add",
        "Maximum": "Max",
        "Minimum": "Min",
    }

    def alignment(self) -> Alignment:
        return SAME_GRID

    def output_shape(self, shapes: list[Shape]) -> Shape:
        if self.layer.class_name == "Subtract" and len(shapes) != 2:
            raise UserError(f"layer {self.name!r} (Subtract) takes two inputs, got {len(shapes)}")
        return broadcast(self, shapes)

    def emit(self, g: GraphBuilder, inputs: list[str], shapes: list[Shape]) -> str:
        y = inputs[0]
        for other in inputs[1:]:
            y = g.node(self.ONNX[self.layer.class_name], [y, other], self.name)
        if self.layer.class_name == "Average":
            count = g.constant(f"{self.name}/count", np.array(len(inputs), dtype=np.float32))
            y = g.node("Div", [y, count], self.name)
        return y

"""Spatial padding and cropping: ZeroPadding2D and Cropping2D."""

from __future__ import annotations

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

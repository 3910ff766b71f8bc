"""UpSampling2D, nearest and bilinear."""

from __future__ import annotations

import numpy as np

from unetkit.keras2onnx.keras_file import KerasLayer
from unetkit.keras2onnx.layers.base import SAME_GRID, Alignment, Config, Op, Shape
from unetkit.keras2onnx.onnx_graph import GraphBuilder
from unetkit.keras2onnx.registry import register_layer


@register_layer("UpSampling2D")
class UpSampling2D(Op):
    def __init__(self, layer: KerasLayer, layout: str) -> None:
        c = Config(layer)
        size = c.pair("size", 2)
        self.interpolation = c.choice("interpolation", ("nearest", "bilinear"), "nearest")
        self.size = size
        super().__init__(layer, layout)

    def alignment(self) -> Alignment | None:
        return SAME_GRID if self.size == (1, 1) else None

    def output_shape(self, shapes: list[Shape]) -> Shape:
        channels, h, w = self.single(shapes)
        return (
            channels,
            None if h is None else h * self.size[0],
            None if w is None else w * self.size[1],
        )

    def emit(self, g: GraphBuilder, inputs: list[str], shapes: list[Shape]) -> str:
        scales = g.constant(f"{self.name}/scales", np.array([1, 1, *self.size], dtype=np.float32))
        if self.interpolation == "nearest":
            # For integer scales every runtime agrees on asymmetric + floor, and it equals
            # Keras's repeat (Keras 3) and half-pixel nearest resize (tf.keras).
            return g.node(
                "Resize",
                [inputs[0], "", scales],
                self.name,
                mode="nearest",
                coordinate_transformation_mode="asymmetric",
                nearest_mode="floor",
            )
        # tf.image.resize(method="bilinear", antialias=False) samples at half-pixel centres.
        return g.node(
            "Resize",
            [inputs[0], "", scales],
            self.name,
            mode="linear",
            coordinate_transformation_mode="half_pixel",
        )

"""BatchNormalization, with Keras's epsilon."""

from __future__ import annotations

import numpy as np

from unetkit.keras2onnx.keras_file import KerasLayer
from unetkit.keras2onnx.layers.base import SAME_GRID, Alignment, Config, Op, Shape, keras_axis
from unetkit.keras2onnx.onnx_graph import GraphBuilder
from unetkit.keras2onnx.registry import register_layer


@register_layer("BatchNormalization")
class BatchNormalization(Op):
    def __init__(self, layer: KerasLayer, layout: str) -> None:
        c = Config(layer)
        if keras_axis(c, c.get("axis", -1), layout) != 1:
            raise c.fail("only normalization over the channel axis is supported")
        self.epsilon = c.number("epsilon", 1e-3)
        self.center = c.flag("center", True)
        self.scale = c.flag("scale", True)
        self.config = c
        super().__init__(layer, layout)

    def alignment(self) -> Alignment:
        return SAME_GRID

    def output_shape(self, shapes: list[Shape]) -> Shape:
        return self.single(shapes)

    def emit(self, g: GraphBuilder, inputs: list[str], shapes: list[Shape]) -> str:
        channels = shapes[0][0]
        count = 2 + self.scale + self.center
        weights = self.config.weights([(channels,)] * count)
        gamma = weights.pop(0) if self.scale else np.ones(channels, np.float32)
        beta = weights.pop(0) if self.center else np.zeros(channels, np.float32)
        mean, variance = weights
        names = [
            g.constant(f"{self.name}/{label}", array)
            for label, array in (
                ("gamma", gamma),
                ("beta", beta),
                ("mean", mean),
                ("var", variance),
            )
        ]
        # Keras's default epsilon is 1e-3, not ONNX's 1e-5: always write it.
        return g.node("BatchNormalization", [inputs[0], *names], self.name, epsilon=self.epsilon)

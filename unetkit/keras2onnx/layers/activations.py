"""Activation layers: Activation, ReLU, LeakyReLU, Softmax."""

from __future__ import annotations

from unetkit.keras2onnx.keras_file import KerasLayer
from unetkit.keras2onnx.layers.base import SAME_GRID, Alignment, Config, Op, Shape, keras_axis
from unetkit.keras2onnx.layers.functions import emit_activation
from unetkit.keras2onnx.onnx_graph import GraphBuilder
from unetkit.keras2onnx.registry import register_layer


@register_layer("Activation", "ReLU", "LeakyReLU", "Softmax")
class ActivationLayer(Op):
    """Activation, ReLU, LeakyReLU and Softmax layers."""

    def __init__(self, layer: KerasLayer, layout: str) -> None:
        c = Config(layer)
        self.slope = 0.0
        self.max_value: float | None = None
        self.axis = keras_axis(c, -1, layout)
        kind = layer.class_name
        if kind == "Activation":
            self.kind = c.activation()
        elif kind == "Softmax":
            self.kind = "softmax"
            self.axis = keras_axis(c, c.get("axis", -1), layout)
        elif kind == "LeakyReLU":
            self.kind = "relu"
            key = "negative_slope" if "negative_slope" in c.values else "alpha"  # Keras 3 / 2
            self.slope = c.number(key, 0.3)
        else:
            self.kind = "relu"
            self.slope = c.number("negative_slope", 0.0)
            if c.number("threshold", 0.0) != 0.0:
                raise c.fail("ReLU with a non-zero threshold is not supported")
            if c.get("max_value") is not None:
                self.max_value = c.number("max_value")
        super().__init__(layer, layout)

    def alignment(self) -> Alignment:
        return SAME_GRID

    def output_shape(self, shapes: list[Shape]) -> Shape:
        return self.single(shapes)

    def emit(self, g: GraphBuilder, inputs: list[str], shapes: list[Shape]) -> str:
        return emit_activation(
            g, inputs[0], self.kind, self.name, self.axis, self.slope, self.max_value
        )

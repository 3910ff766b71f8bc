"""Pooling: MaxPooling2D and AveragePooling2D."""

from __future__ import annotations

from unetkit.keras2onnx.keras_file import KerasLayer
from unetkit.keras2onnx.layers.base import (
    Alignment,
    Config,
    Op,
    Shape,
    window_attrs,
    window_offset,
    window_output,
)
from unetkit.keras2onnx.onnx_graph import GraphBuilder
from unetkit.keras2onnx.registry import register_layer


@register_layer("MaxPooling2D", "AveragePooling2D")
class Pooling2D(Op):
    def __init__(self, layer: KerasLayer, layout: str) -> None:
        c = Config(layer)
        self.pool = c.pair("pool_size", 2)
        strides = c.pair("strides", list(self.pool)) if c.get("strides") is not None else self.pool
        self.padding = c.choice("padding", ("same", "valid"), "valid")
        super().__init__(layer, layout, stride=strides)

    def alignment(self) -> Alignment | None:
        if self.stride != (1, 1):
            return None
        return window_offset(self.pool[0], self.padding), window_offset(self.pool[1], self.padding)

    def output_shape(self, shapes: list[Shape]) -> Shape:
        channels, h, w = self.single(shapes)
        return (
            channels,
            window_output(h, self.pool[0], self.stride[0], self.padding),
            window_output(w, self.pool[1], self.stride[1], self.padding),
        )

    def emit(self, g: GraphBuilder, inputs: list[str], shapes: list[Shape]) -> str:
        attrs = window_attrs(shapes[0], self.pool, self.stride, self.padding)
        if self.layer.class_name == "AveragePooling2D":
            # TensorFlow averages over the pixels inside the image only.
            return g.node(
                "AveragePool",
                inputs,
                self.name,
                kernel_shape=list(self.pool),
                strides=list(self.stride),
                count_include_pad=0,
                **attrs,
            )
        return g.node(
            "MaxPool",
            inputs,
            self.name,
            kernel_shape=list(self.pool),
            strides=list(self.stride),
            **attrs,
        )

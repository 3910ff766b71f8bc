"""Pooling: MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D, GlobalMaxPooling2D.

A windowed pooling whose window covers its whole input at the size the model was built for
is a global pooling in disguise (PSPNet sizes its pyramid's windows from the input size):
at any other size it would pool something else, so it pins the network to that size.
"""

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
    with_rank,
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

    def pins_size(self, shapes: list[Shape]) -> str | None:
        """A window as large as its input, and larger than a U-Net's 2x2 downsampling (which
        may cover a 2x2 bottleneck at a small built size and is the same at any size)."""
        _, h, w = self.single(shapes)
        if h is None or w is None or min(self.pool) < 3 or self.pool[0] < h or self.pool[1] < w:
            return None
        window = f"{self.pool[0]}x{self.pool[1]}"
        return f"layer {self.name!r} pools its whole {h}x{w} input with a {window} window"

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


@register_layer("GlobalAveragePooling2D", "GlobalMaxPooling2D")
class GlobalPooling2D(Op):
    """The mean or max over H and W: a (batch, C) vector, or (batch, 1, 1, C) with keepdims."""

    def __init__(self, layer: KerasLayer, layout: str) -> None:
        self.keepdims = Config(layer).flag("keepdims", False)
        super().__init__(layer, layout)

    def output_shape(self, shapes: list[Shape]) -> Shape:
        channels, _, _ = self.single(shapes)
        return with_rank((channels, 1, 1), 4 if self.keepdims else 2)

    def emit(self, g: GraphBuilder, inputs: list[str], shapes: list[Shape]) -> str:
        op_type = (
            "GlobalAveragePool"
            if self.layer.class_name == "GlobalAveragePooling2D"
            else "GlobalMaxPool"
        )
        return g.node(op_type, inputs, self.name)

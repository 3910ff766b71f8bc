"""Layers that do nothing at inference: the dropouts, the noise layers, ActivityRegularization,
and Keras Applications' StochasticDepth (ConvNeXt's drop path).

A Dropout subclass the kit has no converter for (efficientnet's FixedDropout) is converted
as Dropout: see unetkit.keras2onnx.registry."""

from __future__ import annotations

from unetkit.keras2onnx.layers.base import SAME_GRID, Alignment, Op, Shape
from unetkit.keras2onnx.onnx_graph import GraphBuilder
from unetkit.keras2onnx.registry import register_layer


@register_layer(
    "Dropout",
    "SpatialDropout2D",
    "GaussianDropout",
    "GaussianNoise",
    "AlphaDropout",
    "ActivityRegularization",
    "StochasticDepth",
)
class Identity(Op):
    """Layers that pass their input through at inference."""

    def alignment(self) -> Alignment:
        return SAME_GRID

    def output_shape(self, shapes: list[Shape]) -> Shape:
        return self.single(shapes)

    def emit(self, g: GraphBuilder, inputs: list[str], shapes: list[Shape]) -> str:
        return inputs[0]

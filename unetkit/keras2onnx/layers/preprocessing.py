"""Preprocessing layers inside the model: Rescaling and Normalization (Keras Applications'
EfficientNet and ConvNeXt start with them).

Both act per channel (or on every value); the exported graph keeps them, after the kit's own
`(IMAGE - mean) / std`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from unetkit.keras2onnx.keras_file import KerasLayer
from unetkit.keras2onnx.layers.base import SAME_GRID, Alignment, Config, Op, Shape, keras_axis
from unetkit.keras2onnx.onnx_graph import GraphBuilder
from unetkit.keras2onnx.registry import register_layer

# keras.backend.epsilon(): Normalization divides by max(sqrt(variance), epsilon).
KERAS_EPSILON = 1e-7


def _per_channel(c: Config, value: Any, key: str) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise c.fail(f"{key}={value!r} is not a number or a list of numbers") from None
    if array.ndim > 1 or not np.all(np.isfinite(array)):
        raise c.fail(f"{key}={value!r} is not a number or a list of numbers")
    return array.astype(np.float32).reshape(-1)


def _channel_constant(
    g: GraphBuilder, c: Config, name: str, value: np.ndarray, channels: int
) -> str:
    if value.size not in (1, channels):
        raise c.fail(f"{value.size} values for {channels} channels")
    shape = (1, 1, 1) if value.size == 1 else (channels, 1, 1)
    return g.constant(name, value.reshape(shape))


class Channelwise(Op):
    def alignment(self) -> Alignment:
        return SAME_GRID

    def output_shape(self, shapes: list[Shape]) -> Shape:
        return self.single(shapes)


@register_layer("Rescaling")
class Rescaling(Channelwise):
    """x * scale + offset; scale and offset are numbers or one per channel."""

    def __init__(self, layer: KerasLayer, layout: str) -> None:
        c = Config(layer)
        self.scale = _per_channel(c, c.get("scale", 1.0), "scale")
        self.offset = _per_channel(c, c.get("offset", 0.0), "offset")
        self.config = c
        super().__init__(layer, layout)

    def emit(self, g: GraphBuilder, inputs: list[str], shapes: list[Shape]) -> str:
        channels = shapes[0][0]
        scale = _channel_constant(g, self.config, f"{self.name}/scale", self.scale, channels)
        offset = _channel_constant(g, self.config, f"{self.name}/offset", self.offset, channels)
        return g.node("Add", [g.node("Mul", [inputs[0], scale], self.name), offset], self.name)


@register_layer("Normalization")
class Normalization(Channelwise):
    """(x - mean) / max(sqrt(variance), 1e-7), or with invert=True x * sqrt(variance) + mean.

    mean and variance come from the config when given there, else from the layer's weights
    (mean, variance, count), one value per channel.
    """

    def __init__(self, layer: KerasLayer, layout: str) -> None:
        c = Config(layer)
        axis = c.get("axis", -1)
        axes = axis if isinstance(axis, list | tuple) else [axis]
        if [keras_axis(c, a, layout) for a in axes] != [1]:
            raise c.fail(f"axis={axis!r}: only normalization per channel is supported")
        self.invert = c.flag("invert", False)
        self.config = c
        super().__init__(layer, layout)

    def _statistics(self) -> tuple[np.ndarray, np.ndarray]:
        c = self.config
        if c.get("mean") is not None and c.get("variance") is not None:
            return (
                _per_channel(c, c.get("mean"), "mean"),
                _per_channel(c, c.get("variance"), "variance"),
            )
        found = {_base_name(w.name): w for w in self.layer.weights}
        if {"mean", "variance"} <= found.keys():
            mean, variance = found["mean"], found["variance"]
        elif len(self.layer.weights) == 3:  # .keras: vars/0, 1, 2 = mean, variance, count
            mean, variance = self.layer.weights[0], self.layer.weights[1]
        else:
            raise c.fail("has neither mean/variance in its config nor its three weights")
        return mean.load().astype(np.float32).reshape(-1), variance.load().astype(
            np.float32
        ).reshape(-1)

    def emit(self, g: GraphBuilder, inputs: list[str], shapes: list[Shape]) -> str:
        channels = shapes[0][0]
        mean, variance = self._statistics()
        std = np.sqrt(variance.astype(np.float64))
        mean_name = _channel_constant(g, self.config, f"{self.name}/mean", mean, channels)
        if self.invert:
            scale = _channel_constant(
                g, self.config, f"{self.name}/std", std.astype(np.float32), channels
            )
            return g.node(
                "Add", [g.node("Mul", [inputs[0], scale], self.name), mean_name], self.name
            )
        divisor = np.maximum(std, KERAS_EPSILON).astype(np.float32)
        div = _channel_constant(g, self.config, f"{self.name}/std", divisor, channels)
        return g.node("Div", [g.node("Sub", [inputs[0], mean_name], self.name), div], self.name)


def _base_name(weight_name: str) -> str:
    """'normalization/mean:0' -> 'mean'."""
    return weight_name.rsplit("/", 1)[-1].split(":", 1)[0]

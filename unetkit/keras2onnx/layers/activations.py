"""Activation layers: Activation, ReLU, LeakyReLU, Softmax, ELU, ThresholdedReLU, GELU, PReLU."""

from __future__ import annotations

import numpy as np

from unetkit.keras2onnx.keras_file import KerasLayer
from unetkit.keras2onnx.layers.base import (
    SAME_GRID,
    Alignment,
    Config,
    Op,
    Shape,
    ShapeMismatch,
    describe,
    keras_axis,
    storage_axes,
)
from unetkit.keras2onnx.layers.functions import emit_activation
from unetkit.keras2onnx.layers.tensors import reshape
from unetkit.keras2onnx.onnx_graph import GraphBuilder, LazyTensor
from unetkit.keras2onnx.registry import register_layer


class Pointwise(Op):
    """An op that maps each value on its own: same shape, same pixel grid."""

    def alignment(self) -> Alignment:
        return SAME_GRID

    def output_shape(self, shapes: list[Shape]) -> Shape:
        return self.single(shapes)


@register_layer("Activation", "ReLU", "LeakyReLU")
class ActivationLayer(Pointwise):
    """Activation, ReLU and LeakyReLU layers."""

    def __init__(self, layer: KerasLayer, layout: str) -> None:
        c = Config(layer)
        self.slope = 0.0
        self.max_value: float | None = None
        self.axis = keras_axis(c, -1, layout)
        kind = layer.class_name
        if kind == "Activation":
            self.kind = c.activation()
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

    def emit(self, g: GraphBuilder, inputs: list[str], shapes: list[Shape]) -> str:
        return emit_activation(
            g, inputs[0], self.kind, self.name, self.axis, self.slope, self.max_value
        )


@register_layer("Softmax")
class Softmax(Pointwise):
    """Softmax over any axis or axes: the channels, the tokens of a sequence (both axes of
    its grid, flattened for ONNX Softmax), or all axes after the batch."""

    def __init__(self, layer: KerasLayer, layout: str) -> None:
        self.config = Config(layer)
        self.axis = self.config.get("axis", -1)
        super().__init__(layer, layout)

    def _axes(self, shape: Shape) -> tuple[int, ...]:
        axes = storage_axes(self.config, self.axis, shape, self.layout)
        if axes != tuple(range(axes[0], 4)) and len(axes) > 1:
            raise self.config.fail(
                f"softmax over axis={self.axis!r} is not supported (supported: one axis, or "
                "every axis from one on to the last)"
            )
        return axes

    def output_shape(self, shapes: list[Shape]) -> Shape:
        shape = self.single(shapes)
        self._axes(shape)
        return shape

    def emit(self, g: GraphBuilder, inputs: list[str], shapes: list[Shape]) -> str:
        return emit_softmax(g, inputs[0], self._axes(shapes[0]), self.name)


def emit_softmax(g: GraphBuilder, x: str, axes: tuple[int, ...], base: str) -> str:
    """ONNX Softmax over one axis, or over the trailing `axes` flattened into one."""
    if len(axes) == 1:
        return g.node("Softmax", [x], base, axis=axes[0])
    flat = reshape(g, x, [0] * axes[0] + [-1], base)
    y = g.node("Softmax", [flat], base, axis=axes[0])
    return g.node("Reshape", [y, g.node("Shape", [x], base)], base)


@register_layer("ELU")
class ELU(Pointwise):
    """x if x > 0 else alpha * (exp(x) - 1)."""

    def __init__(self, layer: KerasLayer, layout: str) -> None:
        self.alpha = Config(layer).number("alpha", 1.0)
        super().__init__(layer, layout)

    def emit(self, g: GraphBuilder, inputs: list[str], shapes: list[Shape]) -> str:
        return g.node("Elu", inputs, self.name, alpha=self.alpha)


@register_layer("ThresholdedReLU")
class ThresholdedReLU(Pointwise):
    """x if x > theta else 0 (tf.keras 2.x)."""

    def __init__(self, layer: KerasLayer, layout: str) -> None:
        self.theta = Config(layer).number("theta", 1.0)
        super().__init__(layer, layout)

    def emit(self, g: GraphBuilder, inputs: list[str], shapes: list[Shape]) -> str:
        return g.node("ThresholdedRelu", inputs, self.name, alpha=self.theta)


@register_layer("GELU")
class GELU(Pointwise):
    """A GELU layer class. Keras has none; keras-unet-collection's (the one in the wild) is the
    tanh approximation and stores no setting; a config `approximate: false` selects the exact
    erf form."""

    def __init__(self, layer: KerasLayer, layout: str) -> None:
        self.kind = "gelu_tanh" if Config(layer).flag("approximate", True) else "gelu"
        super().__init__(layer, layout)

    def emit(self, g: GraphBuilder, inputs: list[str], shapes: list[Shape]) -> str:
        return emit_activation(g, inputs[0], self.kind, self.name, 1)


@register_layer("PReLU")
class PReLU(Pointwise):
    """x if x > 0 else alpha * x, alpha a weight over every non-shared axis.

    Without shared_axes the weight has one value per pixel, so the layer pins the image size
    (Keras builds it for one size): other sizes are a ShapeMismatch.
    """

    def __init__(self, layer: KerasLayer, layout: str) -> None:
        self.config = Config(layer)
        if len(layer.weights) != 1:
            raise self.config.fail(f"expected one weight (alpha), found {len(layer.weights)}")
        super().__init__(layer, layout)

    def _alpha_chw(self) -> tuple[int, int, int]:
        """The alpha weight's shape as (C, H, W)."""
        shape = self.layer.weights[0].shape
        if len(shape) == 1:
            return shape[0], 1, 1
        if len(shape) != 3:
            raise self.config.fail(f"alpha has shape {shape}; expected (H, W, C) or (C,)")
        if self.layout == "channels_first":
            return shape[0], shape[1], shape[2]
        return shape[2], shape[0], shape[1]

    def output_shape(self, shapes: list[Shape]) -> Shape:
        shape = self.single(shapes)
        alpha = self._alpha_chw()
        for have, want in zip(shape, alpha, strict=True):
            if want != 1 and have is not None and have != want:
                raise ShapeMismatch(
                    f"layer {self.name!r} (PReLU) has one alpha per pixel of a "
                    f"{describe(alpha)} input and cannot take {describe(shape)} (C, H, W)"
                )
        return shape

    def emit(self, g: GraphBuilder, inputs: list[str], shapes: list[Shape]) -> str:
        (alpha,) = self.config.weights([self.layer.weights[0].shape])
        chw = self._alpha_chw()
        perm = (0, 1, 2) if self.layout == "channels_first" else (2, 0, 1)

        def load() -> np.ndarray:
            value = alpha.load()
            if value.ndim == 3:
                value = value.transpose(perm)
            return value.reshape(chw)

        slope = g.constant(f"{self.name}/alpha", LazyTensor(chw, alpha.dtype, load))
        return g.node("PRelu", [inputs[0], slope], self.name)

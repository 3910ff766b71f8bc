"""Normalizations and per-channel scales: BatchNormalization (with Keras's epsilon),
LayerNormalization over any axes, and Keras Applications' LayerScale (ConvNeXt)."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto

from unetkit.keras2onnx.keras_file import KerasLayer
from unetkit.keras2onnx.layers.base import (
    SAME_GRID,
    Alignment,
    Config,
    Op,
    Shape,
    ShapeMismatch,
    keras_axis,
    keras_dims,
    rank_of,
    storage_axes,
    to_storage,
)
from unetkit.keras2onnx.layers.tensors import int64s
from unetkit.keras2onnx.onnx_graph import GraphBuilder, LazyTensor
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


def reduce_mean(g: GraphBuilder, x: str, shape: Shape, axes: tuple[int, ...], base: str) -> str:
    """The mean over `axes`, kept as dims of 1: ReduceSum (its axes an input from opset 13
    on, unlike ReduceMean's until opset 18) divided by the count."""
    total = g.node("ReduceSum", [x, int64s(g, f"{base}/axes", list(axes))], base, keepdims=1)
    sizes = [shape[a - 1] for a in axes]
    if all(s is not None for s in sizes):
        count = np.prod(np.array(sizes, np.float64))
        scale = g.constant(f"{base}/inverse_count", np.array(1.0 / count, np.float32))
        return g.node("Mul", [total, scale], base)
    every = g.node("Cast", [g.node("Size", [x], base)], base, to=TensorProto.FLOAT)
    kept = g.node("Cast", [g.node("Size", [total], base)], base, to=TensorProto.FLOAT)
    return g.node("Div", [total, g.node("Div", [every, kept], base)], base)


def stored_weight(
    weight: LazyTensor, keras_shape: tuple[int, ...], shape: Shape, layout: str
) -> LazyTensor:
    """A weight Keras broadcasts as `keras_shape` against a tensor of `shape`, laid out to
    broadcast against the stored tensor (see base.to_storage)."""

    def load() -> np.ndarray:
        stored = to_storage(weight.load().reshape(keras_shape), shape, layout)
        if stored is None:
            raise ShapeMismatch(f"a weight of shape {keras_shape} does not fit a tensor {shape}")
        return stored

    probe = to_storage(np.zeros(keras_shape, np.float32), shape, layout)
    if probe is None:
        raise ShapeMismatch(f"a weight of shape {keras_shape} does not fit a tensor {shape}")
    return LazyTensor(probe.shape, weight.dtype, load)


def channel_layer_norm(
    g: GraphBuilder,
    x: str,
    shape: Shape,
    weights: tuple[LazyTensor, LazyTensor],
    epsilon: float,
    base: str,
) -> str:
    """LayerNormalization over the channel axis (the features of a sequence), gamma and
    beta of one value per channel: what a transformer block normalizes with."""
    centred = g.node("Sub", [x, reduce_mean(g, x, shape, (1,), base)], base)
    variance = reduce_mean(g, g.node("Mul", [centred, centred], base), shape, (1,), base)
    eps = g.constant(f"{base}/epsilon", np.array(epsilon, np.float32))
    y = g.node("Div", [centred, g.node("Sqrt", [g.node("Add", [variance, eps], base)], base)], base)
    gamma, beta = (_per_channel(w) for w in weights)
    y = g.node("Mul", [y, g.constant(f"{base}/gamma", gamma)], base)
    return g.node("Add", [y, g.constant(f"{base}/beta", beta)], base)


def _per_channel(weight: LazyTensor) -> LazyTensor:
    (c,) = weight.shape
    return LazyTensor((c, 1, 1), weight.dtype, lambda: weight.load().reshape(c, 1, 1))


@register_layer("LayerNormalization")
class LayerNormalization(Op):
    """(x - mean) / sqrt(variance + epsilon) * gamma + beta, the moments over `axis` (any
    axes but the batch; gamma and beta have the shape of those axes).

    Written with ReduceSum and elementwise ops (opset 13 on): ONNX LayerNormalization (opset
    17) normalizes over trailing axes, and the channel axis of the graph's NCHW tensors is
    not trailing.
    """

    def __init__(self, layer: KerasLayer, layout: str) -> None:
        c = Config(layer)
        self.axis = c.get("axis", -1)
        self.epsilon = c.number("epsilon", 1e-3)
        self.center = c.flag("center", True)
        self.scale = c.flag("scale", True)
        if c.flag("rms_scaling", False):
            raise c.fail(
                "rms_scaling=True is not supported (supported: rms_scaling=False, the "
                "mean-centred layer normalization)"
            )
        self.config = c
        super().__init__(layer, layout)

    def alignment(self) -> Alignment | None:
        return SAME_GRID

    def output_shape(self, shapes: list[Shape]) -> Shape:
        shape = self.single(shapes)
        storage_axes(self.config, self.axis, shape, self.layout)
        return shape

    def pins_size(self, shapes: list[Shape]) -> str | None:
        if set(storage_axes(self.config, self.axis, shapes[0], self.layout)) & {2, 3}:
            return f"layer {self.name!r} (LayerNormalization) has a gamma per pixel or token"
        return None

    def _keras_shape(self, shape: Shape) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """gamma's Keras shape (the dims of the normalized axes), and that shape with dims
        of 1 for the other axes (how it broadcasts)."""
        rank = rank_of(shape)
        values = self.axis if isinstance(self.axis, list | tuple) else [self.axis]
        axes = sorted({v % rank for v in values})
        dims = keras_dims(shape, self.layout)
        if any(dims[a - 1] is None for a in axes):
            raise ShapeMismatch(
                f"layer {self.name!r} (LayerNormalization) has weights along an axis whose "
                "size is known only at run time"
            )
        full = tuple(dims[a - 1] if a in axes else 1 for a in range(1, rank))
        return tuple(dims[a - 1] for a in axes), full  # type: ignore[return-value]

    def emit(self, g: GraphBuilder, inputs: list[str], shapes: list[Shape]) -> str:
        shape, x = shapes[0], inputs[0]
        axes = storage_axes(self.config, self.axis, shape, self.layout)
        param, full = self._keras_shape(shape)
        labels = [label for label, on in (("gamma", self.scale), ("beta", self.center)) if on]
        weights = self.config.weights([param] * len(labels))
        centred = g.node("Sub", [x, reduce_mean(g, x, shape, axes, self.name)], self.name)
        squares = g.node("Mul", [centred, centred], self.name)
        variance = reduce_mean(g, squares, shape, axes, self.name)
        epsilon = g.constant(f"{self.name}/epsilon", np.array(self.epsilon, np.float32))
        spread = g.node("Sqrt", [g.node("Add", [variance, epsilon], self.name)], self.name)
        y = g.node("Div", [centred, spread], self.name)
        for label, weight in zip(labels, weights, strict=True):
            stored = g.constant(
                f"{self.name}/{label}", stored_weight(weight, full, shape, self.layout)
            )
            y = g.node("Mul" if label == "gamma" else "Add", [y, stored], self.name)
        return y


@register_layer("LayerScale")
class LayerScale(Op):
    """Keras Applications' LayerScale (ConvNeXt): x * gamma, one gamma per channel."""

    def __init__(self, layer: KerasLayer, layout: str) -> None:
        c = Config(layer)
        self.channels = c.integer("projection_dim", minimum=1)
        c.number("init_values")
        self.config = c
        super().__init__(layer, layout)

    def alignment(self) -> Alignment:
        return SAME_GRID

    def output_shape(self, shapes: list[Shape]) -> Shape:
        shape = self.single(shapes)
        last = keras_dims(shape, self.layout)[-1]
        if last is not None and last != self.channels:
            raise self.config.fail(f"projection_dim={self.channels} for a last axis of {last}")
        return shape

    def emit(self, g: GraphBuilder, inputs: list[str], shapes: list[Shape]) -> str:
        (gamma,) = self.config.weights([(self.channels,)])
        full = (1,) * (rank_of(shapes[0]) - 2) + (self.channels,)
        stored = stored_weight(gamma, full, shapes[0], self.layout)
        return g.node("Mul", [inputs[0], g.constant(f"{self.name}/gamma", stored)], self.name)

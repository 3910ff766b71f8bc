"""Keras layers as ONNX nodes.

Inside the graph every tensor is NCHW. A shape is (C, H, W) for one image; H or W is None
when it is only known at run time. Each op validates its Keras config up front, computes
output shapes (also for the size search in `unetkit.size_rule`) and emits ONNX nodes.

The two traps of Keras -> ONNX live here:
- kernels: Keras stores Conv2D as [h, w, in, out] and Conv2DTranspose as [h, w, out, in];
  ONNX wants Conv [out, in, h, w] and ConvTranspose [in, out, h, w]: both are a
  transpose (3, 2, 0, 1);
- 'same' padding: TensorFlow puts the odd extra row/column at the bottom/right
  (ONNX SAME_UPPER). Explicit pads are written wherever they do not depend on the run-time
  size; otherwise auto_pad=SAME_UPPER.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar

import numpy as np

from unetkit.errors import UserError
from unetkit.keras_file import KerasLayer, Weight
from unetkit.onnx_graph import GraphBuilder, LazyTensor

Dim = int | None
Shape = tuple[int, Dim, Dim]
INT64_MAX = np.iinfo(np.int64).max


class ShapeMismatch(Exception):
    """The network cannot take the given input size (used by the size search)."""


ACTIVATIONS = (
    "linear",
    "relu",
    "sigmoid",
    "softmax",
    "tanh",
    "elu",
    "selu",
    "swish",
    "silu",
)


class Config:
    """Typed access to one layer's Keras config; bad values become UserError."""

    def __init__(self, layer: KerasLayer) -> None:
        self.layer = layer
        self.values = layer.config

    def fail(self, message: str) -> UserError:
        return UserError(f"layer {self.layer.name!r} ({self.layer.class_name}): {message}")

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def integer(self, key: str, default: int | None = None, minimum: int = 0) -> int:
        value = self.values.get(key, default)
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise self.fail(f"{key}={value!r} is not an integer >= {minimum}")
        return value

    def number(self, key: str, default: float | None = None) -> float:
        value = self.values.get(key, default)
        if (
            not isinstance(value, int | float)
            or isinstance(value, bool)
            or not math.isfinite(value)
        ):
            raise self.fail(f"{key}={value!r} is not a number")
        return float(value)

    def flag(self, key: str, default: bool) -> bool:
        value = self.values.get(key, default)
        if not isinstance(value, bool):
            raise self.fail(f"{key}={value!r} is not true or false")
        return value

    def pair(self, key: str, default: Any = None, minimum: int = 1) -> tuple[int, int]:
        value = self.values.get(key, default)
        if isinstance(value, int) and not isinstance(value, bool):
            value = [value, value]
        if (
            not isinstance(value, list | tuple)
            or len(value) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
            or min(value) < minimum
            or max(value) > 1 << 20
        ):
            raise self.fail(f"{key}={value!r} is not a pair of integers >= {minimum}")
        return int(value[0]), int(value[1])

    def pair_of_pairs(self, key: str) -> tuple[tuple[int, int], tuple[int, int]]:
        value = self.values.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            value = [[value, value], [value, value]]
        if isinstance(value, list | tuple) and len(value) == 2:
            value = [[v, v] if isinstance(v, int) and not isinstance(v, bool) else v for v in value]
        try:
            (a, b), (c, d) = value
        except (TypeError, ValueError):
            raise self.fail(f"{key}={value!r} is not ((top, bottom), (left, right))") from None
        numbers = (a, b, c, d)
        if not all(
            isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 1 << 20 for v in numbers
        ):
            raise self.fail(f"{key}={value!r} is not ((top, bottom), (left, right))")
        return (a, b), (c, d)

    def choice(self, key: str, options: tuple[str, ...], default: str | None = None) -> str:
        value = self.values.get(key, default)
        if isinstance(value, str):
            value = value.lower()
        if value not in options:
            raise self.fail(f"{key}={value!r} is not supported (supported: {', '.join(options)})")
        return value

    def activation(self, key: str = "activation") -> str:
        value = self.values.get(key, "linear")
        if value is None:
            return "linear"
        if value not in ACTIVATIONS:
            raise self.fail(
                f"activation {value!r} is not supported (supported: {', '.join(ACTIVATIONS)})"
            )
        return value

    def weights(self, expected: list[tuple[int, ...]]) -> list[LazyTensor]:
        """The layer's weights as float32, read from the file only when written."""
        found = [w.shape for w in self.layer.weights]
        if found != expected:
            raise self.fail(f"weights have shapes {found}, the config implies {expected}")
        return [
            LazyTensor(w.shape, np.dtype(np.float32), partial(_as_float32, w))
            for w in self.layer.weights
        ]


def _as_float32(weight: Weight) -> np.ndarray:
    return weight.load().astype(np.float32, copy=False)


def _kernel_to_onnx(kernel: LazyTensor) -> LazyTensor:
    """Keras [h, w, a, b] -> ONNX [b, a, h, w] (Conv: a=in, b=out; ConvTranspose: a=out, b=in)."""
    h, w, a, b = kernel.shape
    return LazyTensor((b, a, h, w), kernel.dtype, lambda: kernel.load().transpose(3, 2, 0, 1))


def keras_axis(config: Config, axis: Any, layout: str) -> int:
    """Map a Keras axis of a 4-D tensor in `layout` to the NCHW axis used inside the graph."""
    if isinstance(axis, list) and len(axis) == 1:
        axis = axis[0]
    if not isinstance(axis, int) or isinstance(axis, bool) or not -4 <= axis <= 3:
        raise config.fail(f"axis={axis!r} is not an axis of an image tensor")
    axis %= 4
    if axis == 0:
        raise config.fail("operating along the batch axis is not supported")
    return axis if layout == "channels_first" else (0, 2, 3, 1)[axis]


def emit_activation(
    g: GraphBuilder,
    x: str,
    kind: str,
    base: str,
    softmax_axis: int,
    slope: float = 0.0,
    max_value: float | None = None,
) -> str:
    if kind == "linear":
        return x
    if kind == "relu":
        y = g.node("LeakyRelu", [x], base, alpha=slope) if slope else g.node("Relu", [x], base)
        if max_value is not None:
            limit = g.constant(f"{base}/max_value", np.array(max_value, dtype=np.float32))
            y = g.node("Clip", [y, "", limit], base)
        return y
    if kind in ("swish", "silu"):
        return g.node("Mul", [x, g.node("Sigmoid", [x], base)], base)
    if kind == "softmax":
        return g.node("Softmax", [x], base, axis=softmax_axis)
    if kind == "elu":
        return g.node("Elu", [x], base, alpha=1.0)
    op_type = {"sigmoid": "Sigmoid", "tanh": "Tanh", "selu": "Selu"}[kind]
    return g.node(op_type, [x], base)


@dataclass
class Op:
    """A layer ready to emit. `stride` is how much it shrinks H and W (bounds the size rule)."""

    layer: KerasLayer
    layout: str
    stride: tuple[int, int] = (1, 1)

    @property
    def name(self) -> str:
        return self.layer.name

    def output_shape(self, shapes: list[Shape]) -> Shape:
        raise NotImplementedError

    def emit(self, g: GraphBuilder, inputs: list[str], shapes: list[Shape]) -> str:
        raise NotImplementedError

    def single(self, shapes: list[Shape]) -> Shape:
        if len(shapes) != 1:
            raise UserError(f"layer {self.name!r} takes one input, got {len(shapes)}")
        return shapes[0]


def _same_pads(size: Dim, kernel: int, stride: int) -> tuple[int, int] | None:
    """TensorFlow 'same' pads (extra one at the end), or None if they depend on `size`."""
    if stride == 1:
        total = kernel - 1
    elif size is None:
        return None
    else:
        total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _window_output(size: Dim, kernel: int, stride: int, padding: str) -> Dim:
    if size is None:
        return None
    out = -(-size // stride) if padding == "same" else (size - kernel) // stride + 1
    if out < 1:
        raise ShapeMismatch(f"size {size} is too small for a window of {kernel}")
    return out


def _window_attrs(
    shape: Shape, kernels: tuple[int, int], strides: tuple[int, int], padding: str
) -> dict[str, object]:
    if padding == "valid":
        return {"pads": [0, 0, 0, 0]}
    pads = [_same_pads(shape[i + 1], kernels[i], strides[i]) for i in range(2)]
    if pads[0] is None or pads[1] is None:
        return {"auto_pad": "SAME_UPPER"}
    return {"pads": [pads[0][0], pads[1][0], pads[0][1], pads[1][1]]}


class Conv2D(Op):
    def __init__(self, layer: KerasLayer, layout: str) -> None:
        c = Config(layer)
        self.filters = c.integer("filters", minimum=1)
        self.kernel = c.pair("kernel_size")
        strides = c.pair("strides", 1)
        self.dilation = c.pair("dilation_rate", 1)
        self.padding = c.choice("padding", ("same", "valid"), "valid")
        if c.get("groups", 1) != 1:
            raise c.fail("grouped convolution (groups != 1) is not supported")
        self.use_bias = c.flag("use_bias", True)
        self.activation = c.activation()
        self.config = c
        super().__init__(layer, layout, stride=strides)

    def _effective_kernel(self) -> tuple[int, int]:
        return tuple((k - 1) * d + 1 for k, d in zip(self.kernel, self.dilation, strict=True))

    def output_shape(self, shapes: list[Shape]) -> Shape:
        _, h, w = self.single(shapes)
        kh, kw = self._effective_kernel()
        return (
            self.filters,
            _window_output(h, kh, self.stride[0], self.padding),
            _window_output(w, kw, self.stride[1], self.padding),
        )

    def emit(self, g: GraphBuilder, inputs: list[str], shapes: list[Shape]) -> str:
        kernel_shape = (*self.kernel, shapes[0][0], self.filters)
        expected = [kernel_shape, (self.filters,)] if self.use_bias else [kernel_shape]
        weights = self.config.weights(expected)
        names = [g.constant(f"{self.name}/kernel", _kernel_to_onnx(weights[0]))]
        if self.use_bias:
            names.append(g.constant(f"{self.name}/bias", weights[1]))
        y = g.node(
            "Conv",
            [inputs[0], *names],
            self.name,
            kernel_shape=list(self.kernel),
            strides=list(self.stride),
            dilations=list(self.dilation),
            **_window_attrs(shapes[0], self._effective_kernel(), self.stride, self.padding),
        )
        return emit_activation(
            g, y, self.activation, self.name, keras_axis(self.config, -1, self.layout)
        )


class Conv2DTranspose(Op):
    def __init__(self, layer: KerasLayer, layout: str) -> None:
        c = Config(layer)
        self.filters = c.integer("filters", minimum=1)
        self.kernel = c.pair("kernel_size")
        self.strides = c.pair("strides", 1)
        self.dilation = c.pair("dilation_rate", 1)
        self.padding = c.choice("padding", ("same", "valid"), "valid")
        self.use_bias = c.flag("use_bias", True)
        self.activation = c.activation()
        if c.get("output_padding") is not None:
            raise c.fail("output_padding is not supported; leave it None")
        self.config = c
        super().__init__(layer, layout)

    def _pads(self) -> tuple[list[int], list[int]]:
        """(pads, output_padding) giving Keras's output size.

        Keras: 'same' -> in*s, 'valid' -> in*s + max(k - s, 0), with k the dilated kernel.
        ONNX: (in - 1)*s + k + output_padding - pads. TensorFlow crops the odd extra pixel
        of 'same' at the bottom/right; a kernel smaller than the stride leaves zeros there.
        """
        begins, ends, extra = [], [], []
        for k, s, d in zip(self.kernel, self.strides, self.dilation, strict=True):
            surplus = (k - 1) * d + 1 - s
            crop = surplus if self.padding == "same" and surplus > 0 else 0
            begins.append(crop // 2)
            ends.append(crop - crop // 2)
            extra.append(max(-surplus, 0))
        return begins + ends, extra

    def output_shape(self, shapes: list[Shape]) -> Shape:
        _, h, w = self.single(shapes)
        pads, extra = self._pads()
        out = []
        for i, size in enumerate((h, w)):
            k = (self.kernel[i] - 1) * self.dilation[i] + 1
            out.append(
                None
                if size is None
                else (size - 1) * self.strides[i] + k + extra[i] - pads[i] - pads[i + 2]
            )
        return self.filters, out[0], out[1]

    def emit(self, g: GraphBuilder, inputs: list[str], shapes: list[Shape]) -> str:
        channels = shapes[0][0]
        kernel_shape = (*self.kernel, self.filters, channels)
        expected = [kernel_shape, (self.filters,)] if self.use_bias else [kernel_shape]
        weights = self.config.weights(expected)
        names = [g.constant(f"{self.name}/kernel", _kernel_to_onnx(weights[0]))]
        if self.use_bias:
            names.append(g.constant(f"{self.name}/bias", weights[1]))
        pads, extra = self._pads()
        y = g.node(
            "ConvTranspose",
            [inputs[0], *names],
            self.name,
            kernel_shape=list(self.kernel),
            strides=list(self.strides),
            dilations=list(self.dilation),
            pads=pads,
            output_padding=extra,
        )
        return emit_activation(
            g, y, self.activation, self.name, keras_axis(self.config, -1, self.layout)
        )


class Pooling2D(Op):
    def __init__(self, layer: KerasLayer, layout: str) -> None:
        c = Config(layer)
        self.pool = c.pair("pool_size", 2)
        strides = c.pair("strides", list(self.pool)) if c.get("strides") is not None else self.pool
        self.padding = c.choice("padding", ("same", "valid"), "valid")
        super().__init__(layer, layout, stride=strides)

    def output_shape(self, shapes: list[Shape]) -> Shape:
        channels, h, w = self.single(shapes)
        return (
            channels,
            _window_output(h, self.pool[0], self.stride[0], self.padding),
            _window_output(w, self.pool[1], self.stride[1], self.padding),
        )

    def emit(self, g: GraphBuilder, inputs: list[str], shapes: list[Shape]) -> str:
        attrs = _window_attrs(shapes[0], self.pool, self.stride, self.padding)
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


class UpSampling2D(Op):
    def __init__(self, layer: KerasLayer, layout: str) -> None:
        c = Config(layer)
        size = c.pair("size", 2)
        self.interpolation = c.choice("interpolation", ("nearest", "bilinear"), "nearest")
        self.size = size
        super().__init__(layer, layout)

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


def _merge_shapes(op: Op, shapes: list[Shape], axis: int | None) -> Shape:
    if len(shapes) < 2:
        raise UserError(f"layer {op.name!r} ({op.layer.class_name}) needs at least two inputs")
    merged: list[Dim] = list(shapes[0])
    for shape in shapes[1:]:
        for i in range(3):
            if i + 1 == axis:
                continue
            a, b = merged[i], shape[i]
            if a is not None and b is not None and a != b:
                raise ShapeMismatch(
                    f"layer {op.name!r} merges shapes {shapes[0]} and {shape} (CHW)"
                )
            merged[i] = a if a is not None else b
    if axis is not None:
        sizes = [s[axis - 1] for s in shapes]
        merged[axis - 1] = None if None in sizes else sum(sizes)
    return merged[0], merged[1], merged[2]


class Concatenate(Op):
    def __init__(self, layer: KerasLayer, layout: str) -> None:
        c = Config(layer)
        self.axis = keras_axis(c, c.get("axis", -1), layout)
        super().__init__(layer, layout)

    def output_shape(self, shapes: list[Shape]) -> Shape:
        return _merge_shapes(self, shapes, self.axis)

    def emit(self, g: GraphBuilder, inputs: list[str], shapes: list[Shape]) -> str:
        return g.node("Concat", inputs, self.name, axis=self.axis)


class Elementwise(Op):
    ONNX: ClassVar[dict[str, str]] = {"Add": "Add", "Multiply": "Mul"}

    def output_shape(self, shapes: list[Shape]) -> Shape:
        return _merge_shapes(self, shapes, None)

    def emit(self, g: GraphBuilder, inputs: list[str], shapes: list[Shape]) -> str:
        y = inputs[0]
        for other in inputs[1:]:
            y = g.node(self.ONNX[self.layer.class_name], [y, other], self.name)
        return y


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


class Identity(Op):
    """Dropout and SpatialDropout2D do nothing at inference."""

    def output_shape(self, shapes: list[Shape]) -> Shape:
        return self.single(shapes)

    def emit(self, g: GraphBuilder, inputs: list[str], shapes: list[Shape]) -> str:
        return inputs[0]


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

    def output_shape(self, shapes: list[Shape]) -> Shape:
        return self.single(shapes)

    def emit(self, g: GraphBuilder, inputs: list[str], shapes: list[Shape]) -> str:
        return emit_activation(
            g, inputs[0], self.kind, self.name, self.axis, self.slope, self.max_value
        )


class ZeroPadding2D(Op):
    def __init__(self, layer: KerasLayer, layout: str) -> None:
        self.padding = Config(layer).pair_of_pairs("padding")
        super().__init__(layer, layout)

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


class Cropping2D(Op):
    def __init__(self, layer: KerasLayer, layout: str) -> None:
        self.cropping = Config(layer).pair_of_pairs("cropping")
        super().__init__(layer, layout)

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


OPS: dict[str, Callable[[KerasLayer, str], Op]] = {
    "Conv2D": Conv2D,
    "Conv2DTranspose": Conv2DTranspose,
    "MaxPooling2D": Pooling2D,
    "AveragePooling2D": Pooling2D,
    "UpSampling2D": UpSampling2D,
    "Concatenate": Concatenate,
    "Add": Elementwise,
    "Multiply": Elementwise,
    "BatchNormalization": BatchNormalization,
    "Dropout": Identity,
    "SpatialDropout2D": Identity,
    "Activation": ActivationLayer,
    "ReLU": ActivationLayer,
    "LeakyReLU": ActivationLayer,
    "Softmax": ActivationLayer,
    "ZeroPadding2D": ZeroPadding2D,
    "Cropping2D": Cropping2D,
}
SUPPORTED_LAYERS = ("InputLayer", *OPS)


def make_op(layer: KerasLayer, layout: str) -> Op:
    factory = OPS.get(layer.class_name)
    if factory is None:
        raise UserError(
            f"layer {layer.name!r} of class {layer.class_name} is not supported "
            f"(supported: {', '.join(SUPPORTED_LAYERS)})"
        )
    return factory(layer, layout)

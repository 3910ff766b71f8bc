"""Layers that wrap code: tf.keras's TFOpLambda (a TensorFlow function called on a Keras
tensor, `tf.concat(...)`, `x * y`) and Lambda (a Python function).

A TFOpLambda records the function's name and its arguments, so the common ones become the
Keras layer they amount to (concat -> Concatenate, math.multiply -> Multiply, ...). A Lambda
holds Python code, which the kit never runs: it converts only the Lambdas of the public
libraries it knows, recognised from what the file states as data (the module that defined the
function, the function's name, its arguments, the names its code refers to, read as strings
and never unmarshalled). Anything else is refused in one line naming the way out: rebuild the
model without it, or register a converter for that one layer (`@register_layer("Lambda:name")`).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from onnx import numpy_helper

from unetkit.keras2onnx.keras_file import FIRST_ARGUMENT, InputSlot, KerasLayer
from unetkit.keras2onnx.layers.base import (
    SAME_GRID,
    Alignment,
    Config,
    Op,
    Shape,
    broadcast,
    rank_of,
    with_rank,
)
from unetkit.keras2onnx.onnx_graph import GraphBuilder
from unetkit.keras2onnx.registry import make_op, register_layer

LAMBDA_HELP = (
    "rebuild the model with Keras layers in its place, or register a converter for this layer "
    "with @register_layer({key!r}) (README: 'Your own layers')"
)


def _as_layer(layer: KerasLayer, class_name: str, config: dict[str, Any]) -> KerasLayer:
    """The Keras layer a TensorFlow function call amounts to, under the same name."""
    return KerasLayer(
        layer.name,
        class_name,
        {"name": layer.name, **config},
        layer.calls,
        [],
        layer.call_kwargs,
        layer.keras_major,
    )


class Delegate(Op):
    """An op that another op (`self.impl`) carries out."""

    impl: Op

    def alignment(self) -> Alignment | None:
        return self.impl.alignment()

    def pins_size(self, shapes: list[Shape]) -> str | None:
        return self.impl.pins_size(shapes)

    def output_shape(self, shapes: list[Shape]) -> Shape:
        return self.impl.output_shape(shapes)

    def emit(self, g: GraphBuilder, inputs: list[str], shapes: list[Shape]) -> str:
        return self.impl.emit(g, inputs, shapes)


# ---- TFOpLambda ----------------------------------------------------------------------------

ARITHMETIC = {
    "__operators__.add": "Add",
    "math.add": "Add",
    "math.subtract": "Subtract",
    "math.multiply": "Multiply",
    "math.truediv": "Divide",
    "math.maximum": "Maximum",
    "math.minimum": "Minimum",
}
ACTIVATION_FUNCTIONS = {
    "nn.relu": "relu",
    "nn.relu6": "relu6",
    "math.sigmoid": "sigmoid",
    "nn.sigmoid": "sigmoid",
    "math.tanh": "tanh",
    "nn.silu": "silu",
    "nn.swish": "swish",
    "nn.gelu": "gelu",
}


@register_layer("TFOpLambda")
class TFOpLambda(Delegate):
    """A TensorFlow function called on Keras tensors (tf.keras 2.x, `tf.concat(...)`)."""

    def __init__(self, layer: KerasLayer, layout: str) -> None:
        c = Config(layer)
        function = c.get("function")
        if not isinstance(function, str):
            raise c.fail(f"function={function!r} is not a TensorFlow function name")
        if len(layer.call_kwargs) != 1:
            raise c.fail("a TensorFlow function layer called more than once is not supported")
        self.function = function
        self.kwargs = layer.call_kwargs[0]
        self.config = c
        super().__init__(layer, layout)
        self.impl = self._impl(layer, layout)
        self.stride = self.impl.stride

    def _kwarg(self, key: str, default: Any = None) -> Any:
        return self.kwargs.get(key, default)

    def _impl(self, layer: KerasLayer, layout: str) -> Op:
        function = self.function
        if function == "concat":
            return make_op(_as_layer(layer, "Concatenate", {"axis": self._kwarg("axis")}), layout)
        if function in ARITHMETIC:
            return Arithmetic(layer, layout, ARITHMETIC[function], self._arguments("x", "y"))
        if function in ACTIVATION_FUNCTIONS:
            kind = ACTIVATION_FUNCTIONS[function]
            return make_op(_as_layer(layer, "Activation", {"activation": kind}), layout)
        if function == "nn.softmax":
            axis = self._kwarg("axis", -1)
            return make_op(_as_layer(layer, "Softmax", {"axis": axis}), layout)
        if function in ("math.reduce_mean", "math.reduce_max"):
            return self._reduce(layer, layout)
        if function == "expand_dims":
            return ExpandDims(layer, layout, self._kwarg("axis"))
        if function == "reshape":
            return self._reshape(layer, layout)
        if function in ("transpose", "compat.v1.transpose"):
            perm = self._kwarg("perm")
            if not isinstance(perm, list) or not perm or perm[0] != 0:
                raise self.config.fail(f"transpose perm={perm!r} moves the batch axis")
            return make_op(_as_layer(layer, "Permute", {"dims": perm[1:]}), layout)
        if function in ("image.resize", "compat.v1.image.resize_images", "compat.v1.image.resize"):
            return self._resize(layer, layout)
        raise self.config.fail(
            f"calls TensorFlow function {function!r}, which the kit does not convert (it "
            f"converts {', '.join(sorted(CONVERTED))}); "
            + LAMBDA_HELP.format(key=f"TFOpLambda:{layer.name}")
        )

    def _arguments(self, *names: str) -> list[Any]:
        """The function's arguments by name: the first from the call's first argument, the
        others from its keyword arguments (InputSlots for tensors, else constants)."""
        first = self._kwarg(FIRST_ARGUMENT, [InputSlot(0)])
        if len(first) != 1:
            raise self.config.fail(f"{self.function} takes one tensor as its first argument")
        values = [first[0]]
        for name in names[1:]:
            if name not in self.kwargs:
                raise self.config.fail(f"{self.function} without its argument {name!r}")
            values.append(self.kwargs[name])
        return values

    def _reduce(self, layer: KerasLayer, layout: str) -> Op:
        axis = self._kwarg("axis")
        spatial = [1, 2] if layout == "channels_last" else [2, 3]
        if (
            not isinstance(axis, list)
            or not all(isinstance(a, int) and not isinstance(a, bool) for a in axis)
            or sorted(a % 4 for a in axis) != spatial
        ):
            raise self.config.fail(f"{self.function} over axis={axis!r}: only over H and W")
        kind = "GlobalAveragePooling2D" if self.function.endswith("mean") else "GlobalMaxPooling2D"
        keepdims = bool(self._kwarg("keepdims", False))
        return make_op(_as_layer(layer, kind, {"keepdims": keepdims}), layout)

    def _reshape(self, layer: KerasLayer, layout: str) -> Op:
        shape = self._kwarg("shape")
        if not isinstance(shape, list) or len(shape) < 2 or shape[0] not in (-1, None):
            raise self.config.fail(f"reshape to {shape!r} must keep the batch axis first (-1)")
        if shape[0] == -1 and -1 in shape[1:]:
            raise self.config.fail(f"reshape to {shape!r} infers two dimensions")
        return make_op(_as_layer(layer, "Reshape", {"target_shape": shape[1:]}), layout)

    def _resize(self, layer: KerasLayer, layout: str) -> Op:
        size = self._kwarg("size")
        method = self._kwarg("method", "bilinear")
        if self.function == "image.resize":
            if self._kwarg("antialias", False) or self._kwarg("preserve_aspect_ratio", False):
                raise self.config.fail("image.resize with antialias or preserve_aspect_ratio")
            mode = "half_pixel"
        else:
            method = {0: "bilinear", 1: "nearest", 2: "bicubic", 3: "area"}.get(method, method)
            align = bool(self._kwarg("align_corners", False))
            half = bool(self._kwarg("half_pixel_centers", False))
            mode = "align_corners" if align else "half_pixel" if half else "asymmetric"
        return Resize(layer, layout, size, method, mode)


CONVERTED = {
    "concat",
    "expand_dims",
    "reshape",
    "transpose",
    "nn.softmax",
    "math.reduce_mean",
    "math.reduce_max",
    "image.resize",
    "compat.v1.image.resize",
    *ARITHMETIC,
    *ACTIVATION_FUNCTIONS,
}


class Arithmetic(Op):
    """x <op> y where either may be a tensor or a constant (a number, or one per channel)."""

    ONNX: ClassVar[dict[str, str]] = {
        "Add": "Add",
        "Subtract": "Sub",
        "Multiply": "Mul",
        "Divide": "Div",
        "Maximum": "Max",
        "Minimum": "Min",
    }

    def __init__(self, layer: KerasLayer, layout: str, kind: str, arguments: list[Any]) -> None:
        self.kind = kind
        self.arguments = arguments
        self.config = Config(layer)
        for value in arguments:
            if not isinstance(value, InputSlot):
                array = np.asarray(value, dtype=object)
                if array.ndim > 1 or not all(isinstance(v, int | float) for v in array.flat):
                    raise self.config.fail(f"constant {value!r} is not a number or a vector")
        if not any(isinstance(v, InputSlot) for v in arguments):
            raise self.config.fail("computes on constants only")
        super().__init__(layer, layout)

    def alignment(self) -> Alignment:
        return SAME_GRID

    def output_shape(self, shapes: list[Shape]) -> Shape:
        tensors = [shapes[v.index] for v in self.arguments if isinstance(v, InputSlot)]
        shape = tensors[0] if len(tensors) == 1 else broadcast(self, tensors)
        for value in self.arguments:
            size = np.asarray(value).size if not isinstance(value, InputSlot) else 1
            if size not in (1, shape[0]):
                raise self.config.fail(f"a constant of {size} values for {shape[0]} channels")
        return shape

    def emit(self, g: GraphBuilder, inputs: list[str], shapes: list[Shape]) -> str:
        names = []
        for i, value in enumerate(self.arguments):
            if isinstance(value, InputSlot):
                names.append(inputs[value.index])
            else:
                array = np.asarray(value, dtype=np.float32)
                array = array.reshape((-1, 1, 1)) if array.ndim == 1 else array
                names.append(g.constant(f"{self.name}/constant{i}", array))
        return g.node(self.ONNX[self.kind], names, self.name)


class ExpandDims(Op):
    """tf.expand_dims on a (batch, C) vector or a (batch, 1, C) tensor, on an axis that keeps C
    last: the stored [N, C, 1, 1] tensor stays as it is, one rank higher."""

    def __init__(self, layer: KerasLayer, layout: str, axis: Any) -> None:
        self.axis = axis
        self.config = Config(layer)
        if not isinstance(axis, int) or isinstance(axis, bool):
            raise self.config.fail(f"expand_dims axis={axis!r} is not an integer")
        super().__init__(layer, layout)

    def output_shape(self, shapes: list[Shape]) -> Shape:
        shape = self.single(shapes)
        rank = rank_of(shape)
        axis = self.axis % (rank + 1) if -(rank + 1) <= self.axis <= rank else None
        if rank == 4 or axis is None or axis == 0 or axis == rank:
            raise self.config.fail(
                f"expand_dims(axis={self.axis}) on a rank-{rank} tensor: only adding an axis "
                "before the channels of a vector is supported"
            )
        return with_rank(shape, rank + 1)

    def emit(self, g: GraphBuilder, inputs: list[str], shapes: list[Shape]) -> str:
        return inputs[0]


class Resize(Op):
    """An image resize to a fixed size (a TensorFlow function or a library's Lambda)."""

    MODES: ClassVar[dict[str, str]] = {
        "bilinear": "linear",
        "nearest": "nearest",
        "bicubic": "cubic",
    }

    def __init__(self, layer: KerasLayer, layout: str, size: Any, method: Any, mode: str) -> None:
        self.config = Config(layer)
        if (
            not isinstance(size, list | tuple)
            or len(size) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)
        ):
            raise self.config.fail(f"resize to size={size!r}: the kit needs a fixed (H, W)")
        if method not in self.MODES:
            raise self.config.fail(
                f"resize method {method!r} has no exact ONNX Resize equivalent "
                f"(supported: {', '.join(self.MODES)})"
            )
        self.size = (int(size[0]), int(size[1]))
        self.method = method
        self.mode = mode
        super().__init__(layer, layout)

    def output_shape(self, shapes: list[Shape]) -> Shape:
        channels, _, _ = self.single(shapes)
        return channels, self.size[0], self.size[1]

    def emit(self, g: GraphBuilder, inputs: list[str], shapes: list[Shape]) -> str:
        # Constant nodes, not initializers: shape inference then knows `sizes` has 4 values.
        def const(label: str, values: list[int]) -> str:
            tensor = numpy_helper.from_array(np.array(values, np.int64), f"{self.name}/{label}")
            return g.node("Constant", [], f"{self.name}/{label}", value=tensor)

        shape = g.node("Shape", inputs, self.name)
        batch_channels = g.node("Slice", [shape, const("zero", [0]), const("two", [2])], self.name)
        sizes = g.node(
            "Concat", [batch_channels, const("size", list(self.size))], self.name, axis=0
        )
        attrs: dict[str, object] = {
            "mode": self.MODES[self.method],
            "coordinate_transformation_mode": self.mode,
        }
        if self.method == "nearest":
            attrs["nearest_mode"] = "floor" if self.mode == "asymmetric" else "round_prefer_ceil"
        return g.node("Resize", [inputs[0], "", "", sizes], self.name, **attrs)


# ---- Lambda ---------------------------------------------------------------------------------


def _code_strings(function: Any) -> set[bytes] | None:
    """The identifiers a tf.keras Lambda's marshalled code object mentions: length-prefixed
    ASCII runs, found by scanning the bytes (never unmarshalled: that could run or crash
    on foreign data). None when the function is not stored as code."""
    if not isinstance(function, list) or not function or not isinstance(function[0], str):
        return None
    try:
        code = base64.b64decode(function[0].encode("ascii"), validate=False)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return None
    found = set()
    for i in range(len(code) - 1):
        length = code[i]
        text = code[i + 1 : i + 1 + length]
        if 0 < length == len(text) and all(0x21 <= b <= 0x7E for b in text):
            found.add(text)
    return found


@dataclass(frozen=True)
class KnownLambda:
    """A public library's Lambda: the module that defines it, the names its code uses (or its
    function name, as Keras 3 stores it), the keyword arguments it takes, its converter."""

    library: str
    module: str | None
    function_name: str
    code_names: frozenset[bytes]
    arguments: frozenset[str]
    build: Callable[[KerasLayer, str, dict[str, Any]], Op]

    def matches(self, layer: KerasLayer) -> bool:
        config = layer.config
        arguments = config.get("arguments") or {}
        if not isinstance(arguments, dict) or set(arguments) != self.arguments:
            return False
        function = config.get("function")
        if isinstance(function, dict):  # Keras 3 keeps a named function's name only
            return (
                function.get("class_name") == "function"
                and function.get("config") == self.function_name
            )
        names = _code_strings(function)
        return (
            names is not None and config.get("module") == self.module and self.code_names <= names
        )


def _expand_to_map(layer: KerasLayer, layout: str, arguments: dict[str, Any]) -> Op:
    """classification_models' expand_dims(x, channels_axis): (batch, C) -> a 1x1 map."""
    expected = 3 if layout == "channels_last" else 1
    if arguments.get("channels_axis") != expected:
        raise Config(layer).fail(f"expand_dims with {arguments} for a {layout} model")
    return VectorToMap(layer, layout)


def _aspp_resize(layer: KerasLayer, layout: str, arguments: dict[str, Any]) -> Op:
    """keras-unet-collection's ASPP_conv: tf.compat.v1.image.resize(x, shape[1:3],
    'bilinear', align_corners=True), the shape kept in the function's closure."""
    function = layer.config.get("function")
    closure = function[2] if isinstance(function, list) and len(function) > 2 else None
    shape = closure[0] if isinstance(closure, list) and closure else None
    if not isinstance(shape, list) or len(shape) != 4:
        raise Config(layer).fail(f"expected the target shape in its closure, found {closure!r}")
    size = shape[1:3] if layout == "channels_last" else shape[2:4]
    return Resize(layer, layout, size, "bilinear", "align_corners")


KNOWN_LAMBDAS = (
    KnownLambda(
        "image-classifiers (segmentation-models' SE-ResNet/SE-ResNeXt encoders)",
        "classification_models.models._common_blocks",
        "expand_dims",
        frozenset({b"expand_dims", b"channels_axis"}),
        frozenset({"channels_axis"}),
        _expand_to_map,
    ),
    KnownLambda(
        "keras-unet-collection (ResUNet-a's ASPP)",
        "keras_unet_collection.layer_utils",
        "<lambda>",
        frozenset({b"image", b"resize", b"bilinear", b"align_corners", b"shape_before"}),
        frozenset(),
        _aspp_resize,
    ),
)


class VectorToMap(Op):
    def output_shape(self, shapes: list[Shape]) -> Shape:
        shape = self.single(shapes)
        if rank_of(shape) != 2:
            raise Config(self.layer).fail("expand_dims expects a (batch, C) vector")
        return with_rank(shape, 4)

    def emit(self, g: GraphBuilder, inputs: list[str], shapes: list[Shape]) -> str:
        return inputs[0]


@register_layer("Lambda")
class Lambda(Delegate):
    """A Lambda of a library the kit knows (KNOWN_LAMBDAS), else a one-line refusal."""

    def __init__(self, layer: KerasLayer, layout: str) -> None:
        super().__init__(layer, layout)
        known = next((k for k in KNOWN_LAMBDAS if k.matches(layer)), None)
        if known is None:
            raise Config(layer).fail(
                "a Lambda layer holds Python code, which the kit does not run or convert; "
                + LAMBDA_HELP.format(key=f"Lambda:{layer.name}")
            )
        self.impl = known.build(layer, layout, layer.config.get("arguments") or {})
        self.stride = self.impl.stride

"""tf.keras's TFOpLambda: a TensorFlow function called on a Keras tensor (`tf.concat(...)`,
`x * y`, `tf.matmul(q, k, transpose_b=True)`).

A TFOpLambda records the function's name and its arguments, so the common ones become the
Keras layer they amount to (concat -> Concatenate, math.multiply -> Multiply, ...) or the
kit's tensor op (matmul, einsum, roll: see tensor_ops). Any other function is refused in one
line naming the way out: rebuild the model without it, or register a converter for that one
layer (`@register_layer("TFOpLambda:name")`).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from onnx import numpy_helper

from unetkit.keras2onnx.keras_file import FIRST_ARGUMENT, InputSlot, KerasLayer
from unetkit.keras2onnx.layers.base import Alignment, Config, Op, Shape, rank_of, with_rank
from unetkit.keras2onnx.layers.tensor_ops import Arithmetic, MatMul, Roll
from unetkit.keras2onnx.onnx_graph import GraphBuilder
from unetkit.keras2onnx.registry import make_op, register_layer

LAMBDA_HELP = (
    "rebuild the model with Keras layers in its place, or register a converter for this layer "
    "with @register_layer({key!r}) (docs/converter.md: 'Your own layers')"
)


def as_layer(layer: KerasLayer, class_name: str, config: dict[str, Any]) -> KerasLayer:
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
            return make_op(as_layer(layer, "Concatenate", {"axis": self._kwarg("axis")}), layout)
        if function in ARITHMETIC:
            return Arithmetic(layer, layout, ARITHMETIC[function], self._arguments("x", "y"))
        if function in ACTIVATION_FUNCTIONS:
            kind = ACTIVATION_FUNCTIONS[function]
            return make_op(as_layer(layer, "Activation", {"activation": kind}), layout)
        if function == "nn.softmax":
            axis = self._kwarg("axis", -1)
            return make_op(as_layer(layer, "Softmax", {"axis": axis}), layout)
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
            return make_op(as_layer(layer, "Permute", {"dims": perm[1:]}), layout)
        if function in ("image.resize", "compat.v1.image.resize_images", "compat.v1.image.resize"):
            return self._resize(layer, layout)
        if function in ("linalg.matmul", "matmul"):
            return self._matmul(layer, layout)
        if function == "roll":
            return Roll(layer, layout, self._kwarg("shift"), self._kwarg("axis"))
        if function == "einsum":
            raise self.config.fail(
                "tf.einsum: tf.keras saves its equation but not its tensors, so the file does "
                "not say what it multiplies; build the model with keras.layers.EinsumDense or "
                "tf.matmul"
            )
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

    def _matmul(self, layer: KerasLayer, layout: str) -> Op:
        a, b = self._arguments("a", "b")
        if not (isinstance(a, InputSlot) and isinstance(b, InputSlot)):
            raise self.config.fail("matmul with a constant; the kit multiplies two tensors")
        flags = {}
        for side in ("a", "b"):
            flags[side] = bool(self._kwarg(f"transpose_{side}")) or bool(
                self._kwarg(f"adjoint_{side}")
            )
        return MatMul(layer, layout, flags["a"], flags["b"])

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
        return make_op(as_layer(layer, kind, {"keepdims": keepdims}), layout)

    def _reshape(self, layer: KerasLayer, layout: str) -> Op:
        shape = self._kwarg("shape")
        if not isinstance(shape, list) or len(shape) < 2 or shape[0] not in (-1, None):
            raise self.config.fail(f"reshape to {shape!r} must keep the batch axis first (-1)")
        if shape[0] == -1 and -1 in shape[1:]:
            raise self.config.fail(f"reshape to {shape!r} infers two dimensions")
        return make_op(as_layer(layer, "Reshape", {"target_shape": shape[1:]}), layout)

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
    "linalg.matmul",
    "roll",
    *ARITHMETIC,
    *ACTIVATION_FUNCTIONS,
}


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

"""Keras 3 operations on tensors in a functional model (`x + table`, `ops.matmul(q, k)`).

Keras 3 saves a function of the `keras.ops` namespace called on a symbolic tensor as a node
of its own: its class (Add, Matmul, Einsum, ...), its module (keras.src.ops.numpy, ...), its
settings in the config and its arguments, tensors and constants, in the call. The registry
looks them up as "keras.ops.<class>", apart from the layers of the same names.
"""

from __future__ import annotations

from typing import Any, ClassVar

from unetkit.keras2onnx.keras_file import ARGUMENTS, InputSlot, KerasLayer
from unetkit.keras2onnx.layers.base import Config
from unetkit.keras2onnx.layers.tensor_ops import Arithmetic, Einsum, MatMul, Roll
from unetkit.keras2onnx.layers.tf_functions import Delegate, as_layer
from unetkit.keras2onnx.registry import make_op, register_layer


def _arguments(config: Config) -> list[Any]:
    calls = config.layer.call_kwargs
    if len(calls) != 1:
        raise config.fail("a Keras operation called more than once is not supported")
    return list(calls[0].get(ARGUMENTS, [InputSlot(0)]))


@register_layer(
    "keras.ops.Add",
    "keras.ops.Subtract",
    "keras.ops.Multiply",
    "keras.ops.Divide",
    "keras.ops.TrueDivide",
    "keras.ops.Maximum",
    "keras.ops.Minimum",
)
class ArithmeticOperation(Delegate):
    """x <op> y, tensors or constants (a position table Keras saved as `__tensor__`)."""

    KINDS: ClassVar[dict[str, str]] = {"TrueDivide": "Divide"}

    def __init__(self, layer: KerasLayer, layout: str) -> None:
        super().__init__(layer, layout)
        kind = self.KINDS.get(layer.class_name, layer.class_name)
        self.impl = Arithmetic(layer, layout, kind, _arguments(Config(layer)))


@register_layer("keras.ops.Matmul")
class MatmulOperation(Delegate):
    def __init__(self, layer: KerasLayer, layout: str) -> None:
        super().__init__(layer, layout)
        c = Config(layer)
        if not all(isinstance(v, InputSlot) for v in _arguments(c)):
            raise c.fail("matmul with a constant; the kit multiplies two tensors")
        self.impl = MatMul(layer, layout)


@register_layer("keras.ops.Einsum")
class EinsumOperation(Delegate):
    def __init__(self, layer: KerasLayer, layout: str) -> None:
        super().__init__(layer, layout)
        c = Config(layer)
        if not all(isinstance(v, InputSlot) for v in _arguments(c)):
            raise c.fail("einsum with a constant operand; the kit takes tensors")
        self.impl = Einsum(layer, layout, c.get("subscripts"))


@register_layer("keras.ops.Roll")
class RollOperation(Delegate):
    def __init__(self, layer: KerasLayer, layout: str) -> None:
        super().__init__(layer, layout)
        c = Config(layer)
        if c.get("axis") is None:
            raise c.fail(
                "roll with axis=None (the flattened tensor) is not supported (supported: axis=...)"
            )
        self.impl = Roll(layer, layout, c.get("shift"), c.get("axis"))


@register_layer("keras.ops.Transpose")
class TransposeOperation(Delegate):
    def __init__(self, layer: KerasLayer, layout: str) -> None:
        super().__init__(layer, layout)
        c = Config(layer)
        axes = c.get("axes")
        if not isinstance(axes, list) or not axes or axes[0] != 0:
            raise c.fail(f"transpose axes={axes!r} moves the batch axis (supported: axes[0] = 0)")
        self.impl = make_op(as_layer(layer, "Permute", {"dims": axes[1:]}), layout)


@register_layer("keras.ops.Reshape")
class ReshapeOperation(Delegate):
    def __init__(self, layer: KerasLayer, layout: str) -> None:
        super().__init__(layer, layout)
        c = Config(layer)
        shape = c.get("newshape")
        if not isinstance(shape, list) or len(shape) < 2 or shape[0] not in (-1, None):
            raise c.fail(f"reshape to {shape!r} must keep the batch axis first (-1)")
        if shape[0] == -1 and -1 in shape[1:]:
            raise c.fail(f"reshape to {shape!r} infers two dimensions")
        self.impl = make_op(as_layer(layer, "Reshape", {"target_shape": shape[1:]}), layout)


@register_layer("keras.ops.Softmax")
class SoftmaxOperation(Delegate):
    def __init__(self, layer: KerasLayer, layout: str) -> None:
        super().__init__(layer, layout)
        axis = Config(layer).get("axis", -1)
        self.impl = make_op(as_layer(layer, "Softmax", {"axis": axis}), layout)

"""Keras 3 operations are looked up as keras.ops.<class>, apart from the layers of the same
name: an Add operation with a constant, a transpose and a reshape of a sequence."""

import numpy as np
import pytest

from tests.keras2onnx.layers.reference import convert_layer, keras_layer, random, sequence
from tests.keras2onnx.layers.test_tensor_ops import operation
from unetkit.core import UserError
from unetkit.keras2onnx.keras_file import ARGUMENTS, InputSlot
from unetkit.keras2onnx.registry import make_op


def test_an_operation_and_a_layer_of_the_same_name_are_told_apart():
    x = random(1, 2, 3, 3)
    op = operation("Add", [InputSlot(0), 1.0])
    np.testing.assert_allclose(convert_layer(op, [x]), x + 1.0, atol=1e-6)
    layer = keras_layer("Add", {"name": "add"}, call_kwargs={ARGUMENTS: [[InputSlot(0)]]})
    with pytest.raises(UserError, match="needs at least two inputs"):
        make_op(layer, "channels_last").output_shape([(2, 3, 3)])


def test_transpose_and_reshape_operations():
    tokens = random(2, 6, 4)
    transpose = operation("Transpose", [InputSlot(0)], axes=[0, 2, 1])
    out = convert_layer(transpose, [sequence(tokens, (2, 3))], ranks=[3], dynamic=False)
    np.testing.assert_array_equal(out[:, :, :, 0], tokens)  # (batch, 4, 6) stored [N, 6, 4, 1]
    reshape = operation("Reshape", [InputSlot(0)], newshape=[-1, 2, 3, 4])
    out = convert_layer(reshape, [sequence(tokens, (2, 3))], ranks=[3], dynamic=False)
    np.testing.assert_array_equal(out, tokens.reshape(2, 2, 3, 4).transpose(0, 3, 1, 2))


def test_an_operation_the_kit_lacks_is_named_as_one():
    with pytest.raises(UserError, match=r"of class keras\.ops\.Cumsum is not supported"):
        make_op(operation("Cumsum", [InputSlot(0)], axis=1), "channels_last")
    with pytest.raises(UserError, match=r"transpose axes=\[1, 0, 2\] moves the batch axis"):
        make_op(operation("Transpose", [InputSlot(0)], axes=[1, 0, 2]), "channels_last")

"""The tensor ops TensorFlow functions and Keras 3 operations share, through Keras 3
operations (keras.ops.*): arithmetic with constants up to a per-token table, matrix products
and einsums in Keras's element order, and the roll of a shifted window attention."""

import numpy as np
import pytest

from tests.keras2onnx.layers.reference import (
    convert_layer,
    keras_layer,
    random,
    sequence,
    unsequence,
)
from unetkit.core import UserError
from unetkit.keras2onnx.keras_file import ARGUMENTS, InputSlot
from unetkit.keras2onnx.layers.base import ShapeMismatch, with_rank
from unetkit.keras2onnx.registry import make_op


def operation(class_name, arguments, **config):
    return keras_layer(
        class_name,
        {"name": class_name.lower(), **config},
        call_kwargs={ARGUMENTS: arguments},
        name=class_name.lower(),
        operation=True,
    )


def test_a_position_table_added_as_a_constant():
    """`tokens + Embedding(L, D)(range(L))`, which Keras saves as an Add with a constant."""
    tokens, table = random(2, 6, 4), random(6, 4)
    layer = operation("Add", [InputSlot(0), table.tolist()])
    out = convert_layer(layer, [sequence(tokens, (2, 3))], ranks=[3], dynamic=False)
    np.testing.assert_allclose(unsequence(out), tokens + table, atol=1e-6)
    op = make_op(layer, "channels_last")
    assert "one per position" in op.pins_size([with_rank((4, 2, 3), 3)])
    with pytest.raises(ShapeMismatch, match=r"constant of shape \(6, 4\)"):
        op.output_shape([with_rank((4, 3, 3), 3)])


@pytest.mark.parametrize(
    ("class_name", "constant", "reference"),
    [
        ("Multiply", 2.0, lambda x, c: x * c),
        ("TrueDivide", 4.0, lambda x, c: x / c),
        ("Subtract", [1.0, 2.0, 3.0], lambda x, c: x - np.array(c)[None, :, None, None]),
    ],
)
def test_arithmetic_with_a_number_or_a_vector(class_name, constant, reference):
    x = random(2, 3, 4, 4)
    out = convert_layer(operation(class_name, [InputSlot(0), constant]), [x])
    np.testing.assert_allclose(out, reference(x, constant), atol=1e-6)


def test_a_constant_that_is_not_numbers_is_refused():
    with pytest.raises(UserError, match="constant 'abc' is not an array of numbers"):
        make_op(operation("Add", [InputSlot(0), "abc"]), "channels_last")


def test_matmul_of_two_sequences_and_with_a_transposed_side():
    q, k = random(2, 6, 4), random(2, 5, 4)
    out = convert_layer(
        operation("Matmul", [InputSlot(0), InputSlot(1)]),
        [sequence(q, (2, 3)), sequence(k.transpose(0, 2, 1), (4, 1))],
        ranks=[3, 3],
        dynamic=False,
    )
    np.testing.assert_allclose(unsequence(out), q @ k.transpose(0, 2, 1), atol=1e-5)


def test_einsum_in_keras_order():
    scores, values = random(2, 6, 5), random(2, 5, 4)
    layer = operation("Einsum", [InputSlot(0), InputSlot(1)], subscripts="bts,bsd->btd")
    out = convert_layer(
        layer, [sequence(scores, (2, 3)), sequence(values, (5, 1))], ranks=[3, 3], dynamic=False
    )
    np.testing.assert_allclose(unsequence(out), scores @ values, atol=1e-5)
    assert out.shape[2:] == (2, 3)  # the grid of the operand whose tokens it keeps


def test_einsum_that_moves_the_batch_or_uses_an_ellipsis_is_refused():
    with pytest.raises(UserError, match=r"without '\.\.\.'"):
        make_op(operation("Einsum", [InputSlot(0)], subscripts="...c->...c"), "channels_last")
    with pytest.raises(UserError, match="batch as every operand's first axis"):
        make_op(operation("Einsum", [InputSlot(0)], subscripts="bc->cb"), "channels_last")


@pytest.mark.parametrize(("shift", "axis"), [(2, 1), (-1, 2), ([-1, -1], [1, 2]), (7, 1)])
def test_roll_of_a_map(shift, axis):
    """The cyclic shift of Swin's shifted windows, by any amount along H and W."""
    x = random(2, 3, 5, 4)
    out = convert_layer(operation("Roll", [InputSlot(0)], shift=shift, axis=axis), [x])
    expected = np.roll(x.transpose(0, 2, 3, 1), shift, axis).transpose(0, 3, 1, 2)
    np.testing.assert_array_equal(out, expected)


def test_roll_of_a_sequence_along_its_tokens():
    tokens = random(1, 6, 2)
    layer = operation("Roll", [InputSlot(0)], shift=2, axis=1)
    out = convert_layer(layer, [sequence(tokens, (2, 3))], ranks=[3], dynamic=False)
    np.testing.assert_array_equal(unsequence(out), np.roll(tokens, 2, 1))

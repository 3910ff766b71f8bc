"""Concatenate and the elementwise merges (Add, Subtract, Multiply, Average, Maximum,
Minimum), with Keras's broadcasting: a lower-rank input expanded after the batch axis, and
dimensions of 1 stretched."""

import numpy as np
import pytest

from tests.keras2onnx.layers.reference import convert_layer, keras_layer, random
from unetkit.core import UserError
from unetkit.keras2onnx.layers.base import ShapeMismatch, rank_of, with_rank
from unetkit.keras2onnx.registry import make_op

MERGES = {
    "Add": lambda xs: xs[0] + xs[1] + xs[2],
    "Multiply": lambda xs: xs[0] * xs[1] * xs[2],
    "Average": lambda xs: (xs[0] + xs[1] + xs[2]) / 3,
    "Maximum": lambda xs: np.maximum(np.maximum(xs[0], xs[1]), xs[2]),
    "Minimum": lambda xs: np.minimum(np.minimum(xs[0], xs[1]), xs[2]),
}


@pytest.mark.parametrize(
    ("axis", "layout"), [(-1, "channels_last"), (3, "channels_last"), (1, "channels_first")]
)
def test_concatenate_joins_channels(axis, layout):
    a, b = random(2, 3, 4, 5), random(2, 2, 4, 5)
    out = convert_layer(keras_layer("Concatenate", {"axis": axis}), [a, b], layout=layout)
    np.testing.assert_array_equal(out, np.concatenate([a, b], axis=1))


@pytest.mark.parametrize("class_name", sorted(MERGES))
def test_elementwise_merges_of_three(class_name):
    xs = [random(1, 3, 4, 4) for _ in range(3)]
    out = convert_layer(keras_layer(class_name, {}), xs)
    np.testing.assert_allclose(out, MERGES[class_name](xs), atol=1e-6)


def test_subtract_takes_two_inputs():
    a, b = random(1, 3, 4, 4), random(1, 3, 4, 4)
    np.testing.assert_allclose(convert_layer(keras_layer("Subtract", {}), [a, b]), a - b, atol=1e-6)
    with pytest.raises(UserError, match="takes two inputs"):
        convert_layer(keras_layer("Subtract", {}), [a, b, a])


@pytest.mark.parametrize("class_name", ["Multiply", "Add", "Subtract"])
def test_a_one_channel_attention_map_broadcasts_over_the_channels(class_name):
    features, gate = random(2, 6, 5, 4), random(2, 1, 5, 4)
    out = convert_layer(keras_layer(class_name, {}), [features, gate])
    reference = {"Multiply": np.multiply, "Add": np.add, "Subtract": np.subtract}[class_name]
    np.testing.assert_allclose(out, reference(features, gate), atol=1e-6)
    assert out.shape == features.shape


def test_a_channel_vector_scales_every_pixel():
    """Squeeze-and-excitation: (batch, C) acts as (batch, 1, 1, C)."""
    features, scale = random(2, 4, 5, 3), random(2, 4, 1, 1)
    out = convert_layer(keras_layer("Multiply", {}), [features, scale], ranks=[4, 2])
    np.testing.assert_allclose(out, features * scale, atol=1e-6)
    op = make_op(keras_layer("Multiply", {}), "channels_last")
    shape = op.output_shape([(4, None, None), with_rank((4, 1, 1), 2)])
    assert shape == (4, None, None) and rank_of(shape) == 4


def test_mismatched_shapes_say_which_axis_differs():
    op = make_op(keras_layer("Multiply", {}), "channels_last")
    with pytest.raises(ShapeMismatch, match=r"cannot combine channels 6 and 4 .*\(6, 8, 8\)"):
        op.output_shape([(6, 8, 8), (4, 8, 8)])
    with pytest.raises(ShapeMismatch, match="cannot combine height 8 and 9"):
        op.output_shape([(6, 8, 8), (6, 9, 8)])
    assert op.output_shape([(6, None, 8), (6, 9, None)]) == (6, 9, 8)


def test_concatenate_mismatch_names_the_axis():
    op = make_op(keras_layer("Concatenate", {"axis": -1}), "channels_last")
    with pytest.raises(ShapeMismatch, match="different height"):
        op.output_shape([(2, 8, 8), (3, 9, 8)])


def test_merging_along_the_batch_axis_is_refused():
    with pytest.raises(UserError, match="batch axis"):
        convert_layer(keras_layer("Concatenate", {"axis": 0}), [random(1, 1, 2, 2)] * 2)

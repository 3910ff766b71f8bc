"""ZeroPadding2D and Cropping2D with asymmetric amounts; Reshape and Permute in Keras's
element order (channels last), between vectors, 1x1 maps, images and token sequences."""

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
from unetkit.keras2onnx.layers.base import ShapeMismatch, rank_of, with_rank
from unetkit.keras2onnx.registry import make_op


def test_zero_padding():
    x = random(1, 2, 3, 4)
    out = convert_layer(keras_layer("ZeroPadding2D", {"padding": [[1, 2], [0, 3]]}), [x])
    np.testing.assert_array_equal(out, np.pad(x, ((0, 0), (0, 0), (1, 2), (0, 3))))


def test_cropping():
    x = random(2, 3, 9, 8)
    out = convert_layer(keras_layer("Cropping2D", {"cropping": [[1, 2], [3, 0]]}), [x])
    np.testing.assert_array_equal(out, x[:, :, 1:-2, 3:])


def to_keras(x: np.ndarray) -> np.ndarray:
    return x.transpose(0, 2, 3, 1)


def from_keras(x: np.ndarray) -> np.ndarray:
    return x.transpose(0, 3, 1, 2)


@pytest.mark.parametrize("target", [[1, 1, 6], [1, 1, -1]])
def test_reshape_of_a_vector_to_a_1x1_map_is_free(target):
    """The squeeze-and-excitation step: (batch, C) -> (batch, 1, 1, C)."""
    x = random(2, 6, 1, 1)
    layer = keras_layer("Reshape", {"target_shape": target})
    np.testing.assert_array_equal(convert_layer(layer, [x], ranks=[2]), x)
    shape = make_op(layer, "channels_last").output_shape([with_rank((6, 1, 1), 2)])
    assert shape == (6, 1, 1) and rank_of(shape) == 4


@pytest.mark.parametrize(
    ("target", "keras_out"),
    [
        ([4, 3, 2], lambda k: k.reshape(2, 4, 3, 2)),
        ([-1], lambda k: k.reshape(2, -1)),
        ([2, 2, -1], lambda k: k.reshape(2, 2, 2, -1)),
    ],
)
def test_reshape_follows_keras_element_order(target, keras_out):
    x = random(2, 2, 3, 4)  # Keras (batch, 3, 4, 2)
    layer = keras_layer("Reshape", {"target_shape": target})
    out = convert_layer(layer, [x], dynamic=False)
    expected = keras_out(to_keras(x))
    if expected.ndim == 2:
        np.testing.assert_array_equal(out[:, :, 0, 0], expected)
    else:
        np.testing.assert_array_equal(out, from_keras(expected))


def test_reshape_to_the_wrong_size_is_a_mismatch():
    op = make_op(keras_layer("Reshape", {"target_shape": [5, 5, 2]}), "channels_last")
    with pytest.raises(ShapeMismatch, match="cannot reshape"):
        op.output_shape([(2, 3, 4)])


def test_reshape_that_leaves_channels_to_the_image_size_is_refused():
    op = make_op(keras_layer("Reshape", {"target_shape": [4, 4, -1]}), "channels_last")
    with pytest.raises(UserError, match="known channel count"):
        op.output_shape([(2, None, None)])


@pytest.mark.parametrize("dims", [[2, 1, 3], [1, 2, 3], [3, 1, 2], [2, 3, 1]])
def test_permute_reorders_keras_axes(dims):
    x = random(2, 3, 3, 3)
    out = convert_layer(keras_layer("Permute", {"dims": dims}), [x], dynamic=False)
    expected = to_keras(x).transpose(0, *dims)
    np.testing.assert_array_equal(out, from_keras(expected))


def test_permute_of_channels_first_images():
    x = random(2, 3, 4, 5)
    out = convert_layer(
        keras_layer("Permute", {"dims": [1, 3, 2]}), [x], layout="channels_first", dynamic=False
    )
    np.testing.assert_array_equal(out, x.transpose(0, 1, 3, 2))


def test_permute_moving_an_unknown_size_into_the_channels_is_refused():
    op = make_op(keras_layer("Permute", {"dims": [3, 2, 1]}), "channels_last")
    with pytest.raises(UserError, match="known channel count"):
        op.output_shape([(3, None, None)])


def test_a_map_reshaped_to_tokens_keeps_its_grid_and_back_is_free():
    """(batch, H, W, C) -> (batch, H*W, C) -> (batch, H, W, C), as a ViT U-Net does: the stored
    [N, C, H, W] tensor stays as it is, at any size."""
    x = random(2, 4, 3, 5)
    to_tokens = keras_layer("Reshape", {"target_shape": [-1, 4]})
    out = convert_layer(to_tokens, [x])
    np.testing.assert_array_equal(unsequence(out), to_keras(x).reshape(2, 15, 4))
    op = make_op(to_tokens, "channels_last")
    shape = op.output_shape([(4, None, None)])
    assert shape == (4, None, None) and rank_of(shape) == 3
    back = make_op(keras_layer("Reshape", {"target_shape": [3, 5, 4]}), "channels_last")
    assert back.output_shape([with_rank((4, 3, 5), 3)]) == (4, 3, 5)


@pytest.mark.parametrize(
    ("target", "grid"),
    [([6, 5, 2], (6, 5)), ([30, 2], (30, 1)), ([5, 12], None), ([60], None)],
)
def test_reshape_of_a_sequence_follows_keras_element_order(target, grid):
    tokens = random(2, 15, 4)  # (batch, L, D) on a 3x5 grid
    layer = keras_layer("Reshape", {"target_shape": target})
    out = convert_layer(layer, [sequence(tokens, (3, 5))], ranks=[3], dynamic=False)
    expected = tokens.reshape(2, *target)
    if len(target) == 3:
        np.testing.assert_array_equal(out, from_keras(expected))
    elif len(target) == 2:
        np.testing.assert_array_equal(unsequence(out), expected)
        if grid is not None:
            assert out.shape[2:] == grid
    else:
        np.testing.assert_array_equal(out[:, :, 0, 0], expected)


def test_permute_of_a_sequence_swaps_tokens_and_features():
    tokens = random(2, 6, 4)
    layer = keras_layer("Permute", {"dims": [2, 1]})
    out = convert_layer(layer, [sequence(tokens, (2, 3))], ranks=[3], dynamic=False)
    np.testing.assert_array_equal(unsequence(out), tokens.transpose(0, 2, 1))
    with pytest.raises(UserError, match="known channel count"):
        make_op(layer, "channels_last").output_shape([with_rank((4, None, None), 3)])

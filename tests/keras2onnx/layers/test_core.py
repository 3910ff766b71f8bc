"""Dense acts on the channels: of a (batch, C) vector, or of every pixel of an image."""

import numpy as np
import pytest

from tests.keras2onnx.layers.reference import (
    ACTIVATIONS,
    convert_layer,
    keras_layer,
    random,
)
from unetkit.core import UserError
from unetkit.keras2onnx.layers.base import rank_of, with_rank
from unetkit.keras2onnx.registry import make_op


@pytest.mark.parametrize("activation", ["linear", "relu", "sigmoid"])
def test_dense_on_a_vector(activation):
    x = random(2, 6, 1, 1)
    kernel, bias = random(6, 3), random(3)
    layer = keras_layer("Dense", {"units": 3, "activation": activation}, [kernel, bias])
    out = convert_layer(layer, [x], ranks=[2])
    expected = ACTIVATIONS[activation](x[:, :, 0, 0] @ kernel + bias)
    np.testing.assert_allclose(out[:, :, 0, 0], expected, atol=1e-5)
    shape = make_op(layer, "channels_last").output_shape([with_rank((6, 1, 1), 2)])
    assert shape == (3, 1, 1) and rank_of(shape) == 2


def test_dense_on_an_image_is_a_1x1_convolution():
    x = random(2, 4, 5, 3)
    kernel = random(4, 2)
    layer = keras_layer("Dense", {"units": 2, "use_bias": False}, [kernel])
    out = convert_layer(layer, [x])
    expected = np.einsum("nchw,cd->ndhw", x, kernel)
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_dense_on_a_channels_first_image_is_refused():
    layer = keras_layer("Dense", {"units": 2}, [random(4, 2), random(2)])
    with pytest.raises(UserError, match="channels_first"):
        convert_layer(layer, [random(1, 4, 3, 3)], layout="channels_first")

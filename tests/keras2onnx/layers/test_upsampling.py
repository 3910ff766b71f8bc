"""UpSampling2D: nearest is a repeat, bilinear samples at half-pixel centres (TensorFlow)."""

import numpy as np
import pytest

from tests.keras2onnx.layers.reference import (
    convert_layer,
    keras_layer,
    random,
    resize_bilinear_half_pixel,
)
from unetkit.core import UserError


@pytest.mark.parametrize("size", [2, (2, 3), (1, 4)])
def test_nearest_repeats_pixels(size):
    sh, sw = (size, size) if isinstance(size, int) else size
    layer = keras_layer("UpSampling2D", {"size": size, "interpolation": "nearest"})
    x = random(2, 3, 5, 4)
    expected = x.repeat(sh, axis=2).repeat(sw, axis=3)
    np.testing.assert_array_equal(convert_layer(layer, [x]), expected)


@pytest.mark.parametrize("size", [2, (3, 2)])
def test_bilinear_matches_tensorflow_half_pixel_resizing(size):
    sh, sw = (size, size) if isinstance(size, int) else size
    layer = keras_layer("UpSampling2D", {"size": size, "interpolation": "bilinear"})
    x = random(1, 2, 4, 5)
    expected = resize_bilinear_half_pixel(x, (sh, sw))
    np.testing.assert_allclose(convert_layer(layer, [x]), expected, atol=1e-5)


def test_an_unknown_interpolation_is_refused_naming_the_mode():
    with pytest.raises(UserError, match="interpolation='lanczos9'"):
        convert_layer(
            keras_layer("UpSampling2D", {"interpolation": "lanczos9"}), [random(1, 1, 4, 4)]
        )

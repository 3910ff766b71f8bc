"""UpSampling2D: nearest is a repeat, bilinear samples at half-pixel centres, bicubic is
TensorFlow's Keys cubic with outside taps dropped, area at an integer scale is nearest; the
kernels ONNX Resize lacks are refused naming the mode."""

import numpy as np
import pytest

from tests.keras2onnx.layers.reference import (
    convert_layer,
    keras_layer,
    random,
    resize_bicubic_half_pixel,
    resize_bilinear_half_pixel,
)
from unetkit.core import UserError


@pytest.mark.parametrize("interpolation", ["nearest", "area"])
@pytest.mark.parametrize("size", [2, (2, 3), (1, 4)])
def test_nearest_and_area_repeat_pixels(size, interpolation):
    sh, sw = (size, size) if isinstance(size, int) else size
    layer = keras_layer("UpSampling2D", {"size": size, "interpolation": interpolation})
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


@pytest.mark.parametrize("size", [2, 4, (2, 8)])
def test_bicubic_matches_tensorflow_keys_cubic(size):
    sh, sw = (size, size) if isinstance(size, int) else size
    layer = keras_layer("UpSampling2D", {"size": size, "interpolation": "bicubic"})
    x = random(1, 2, 5, 4)
    expected = resize_bicubic_half_pixel(x, (sh, sw))
    np.testing.assert_allclose(convert_layer(layer, [x]), expected, atol=1e-5)


def test_bicubic_by_a_scale_that_is_not_a_power_of_two_is_refused():
    with pytest.raises(UserError, match="bicubic upsampling by 3x3"):
        convert_layer(
            keras_layer("UpSampling2D", {"size": 3, "interpolation": "bicubic"}),
            [random(1, 1, 4, 4)],
        )


@pytest.mark.parametrize("mode", ["lanczos3", "lanczos5", "gaussian", "mitchellcubic"])
def test_kernels_onnx_resize_lacks_are_refused_naming_the_mode(mode):
    with pytest.raises(UserError, match=f"interpolation='{mode}'") as refused:
        convert_layer(keras_layer("UpSampling2D", {"interpolation": mode}), [random(1, 1, 4, 4)])
    assert "\n" not in str(refused.value)
    assert "nearest, bilinear, bicubic, area" in str(refused.value)


def test_an_unknown_interpolation_is_refused_naming_the_mode():
    with pytest.raises(UserError, match="interpolation='lanczos9'"):
        convert_layer(
            keras_layer("UpSampling2D", {"interpolation": "lanczos9"}), [random(1, 1, 4, 4)]
        )

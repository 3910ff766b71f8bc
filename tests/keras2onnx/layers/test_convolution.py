"""Conv2D and Conv2DTranspose against numpy references: kernel layout, 'same' padding with
the odd pixel at the end, strides, dilation, bias, fused activations."""

import numpy as np
import pytest

from tests.keras2onnx.layers.reference import (
    ACTIVATIONS,
    conv2d,
    conv2d_transpose,
    convert_layer,
    keras_layer,
    random,
)
from unetkit.core import UserError


@pytest.mark.parametrize(
    ("kernel", "strides", "padding", "dilation", "size"),
    [
        (3, 1, "same", 1, (9, 7)),
        (4, 2, "same", 1, (9, 8)),  # even kernel, stride 2: pads depend on the size
        (3, 2, "same", 1, (7, 10)),
        (3, 1, "valid", 1, (8, 9)),
        (3, 1, "same", 2, (10, 9)),
        ((1, 3), (2, 1), "valid", 1, (7, 6)),
    ],
)
@pytest.mark.parametrize("dynamic", [True, False])
def test_conv2d_matches_the_reference(kernel, strides, padding, dilation, size, dynamic):
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    sh, sw = (strides, strides) if isinstance(strides, int) else strides
    weights = [random(kh, kw, 3, 4), random(4)]
    layer = keras_layer(
        "Conv2D",
        {
            "filters": 4,
            "kernel_size": [kh, kw],
            "strides": [sh, sw],
            "padding": padding,
            "dilation_rate": [dilation, dilation],
            "activation": "linear",
        },
        weights,
    )
    x = random(2, 3, *size)
    expected = conv2d(x, *weights, (sh, sw), padding, (dilation, dilation))
    np.testing.assert_allclose(convert_layer(layer, [x], dynamic=dynamic), expected, atol=1e-4)


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_conv2d_fuses_its_activation(activation):
    kernel = random(3, 3, 2, 3)
    layer = keras_layer(
        "Conv2D",
        {
            "filters": 3,
            "kernel_size": 3,
            "padding": "same",
            "use_bias": False,
            "activation": activation,
        },
        [kernel],
    )
    x = random(1, 2, 6, 5)
    expected = ACTIVATIONS[activation](conv2d(x, kernel, padding="same"))
    np.testing.assert_allclose(convert_layer(layer, [x]), expected, atol=1e-4)


@pytest.mark.parametrize(
    ("kernel", "strides", "padding"),
    [
        (3, 2, "same"),
        (2, 2, "valid"),
        (4, 2, "same"),
        (3, 1, "valid"),
        (1, 2, "valid"),
        (3, 3, "same"),
    ],
)
def test_conv2d_transpose_matches_keras_output_sizes_and_values(kernel, strides, padding):
    weights = [random(kernel, kernel, 4, 3), random(4)]
    layer = keras_layer(
        "Conv2DTranspose",
        {"filters": 4, "kernel_size": kernel, "strides": strides, "padding": padding},
        weights,
    )
    x = random(2, 3, 5, 6)
    expected = conv2d_transpose(x, *weights, (strides, strides), padding)
    np.testing.assert_allclose(convert_layer(layer, [x]), expected, atol=1e-4)


def test_weights_of_the_wrong_shape_are_named():
    layer = keras_layer("Conv2D", {"filters": 4, "kernel_size": 3}, [random(3, 3, 2, 5), random(4)])
    with pytest.raises(UserError, match=r"weights have shapes .* the config implies"):
        convert_layer(layer, [random(1, 2, 6, 6)])


def test_grouped_convolution_is_refused_in_one_line():
    with pytest.raises(UserError, match="groups"):
        convert_layer(
            keras_layer("Conv2D", {"filters": 4, "kernel_size": 3, "groups": 2}),
            [random(1, 4, 6, 6)],
        )

"""Conv2D (grouped too), DepthwiseConv2D, SeparableConv2D and Conv2DTranspose against numpy
references: kernel layout, 'same' padding with the odd pixel at the end, strides, dilation,
bias, fused activations, depth multipliers, output_padding."""

import numpy as np
import pytest

from tests.keras2onnx.layers.reference import (
    ACTIVATIONS,
    conv2d,
    conv2d_transpose,
    conv2d_transpose_padded,
    convert_layer,
    depthwise_conv2d,
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


def grouped_conv2d(x, kernel, bias, groups, padding):
    """Keras's grouped Conv2D: input channels and filters split into `groups` equal parts."""
    per_in, per_out = x.shape[1] // groups, kernel.shape[3] // groups
    outs = [
        conv2d(
            x[:, i * per_in : (i + 1) * per_in],
            kernel[:, :, :, i * per_out : (i + 1) * per_out],
            None,
            padding=padding,
        )
        for i in range(groups)
    ]
    return np.concatenate(outs, axis=1) + bias[None, :, None, None]


@pytest.mark.parametrize(
    ("channels", "filters", "groups", "kernel", "padding"),
    [(4, 6, 2, 3, "same"), (6, 6, 6, 7, "same"), (6, 3, 3, 2, "valid")],
)
def test_grouped_convolution(channels, filters, groups, kernel, padding):
    """Conv2D(groups=...): ConvNeXt's depthwise 7x7 is groups = channels."""
    x = random(2, channels, 9, 8)
    weights = [random(kernel, kernel, channels // groups, filters), random(filters)]
    config = {"filters": filters, "kernel_size": kernel, "groups": groups, "padding": padding}
    out = convert_layer(keras_layer("Conv2D", config, weights), [x])
    expected = grouped_conv2d(x, weights[0], weights[1], groups, padding)
    np.testing.assert_allclose(out, expected, atol=1e-4)


def test_groups_that_do_not_divide_the_channels_are_refused_in_one_line():
    with pytest.raises(UserError, match=r"groups=4 does not divide filters=6"):
        convert_layer(
            keras_layer("Conv2D", {"filters": 6, "kernel_size": 3, "groups": 4}),
            [random(1, 4, 6, 6)],
        )
    with pytest.raises(UserError, match=r"groups=2 does not divide the 3 input channels"):
        convert_layer(
            keras_layer("Conv2D", {"filters": 4, "kernel_size": 3, "groups": 2}),
            [random(1, 3, 6, 6)],
        )


@pytest.mark.parametrize(
    ("kernel", "strides", "padding", "multiplier", "dilation", "size"),
    [
        (3, 1, "same", 1, 1, (8, 9)),
        (3, 2, "same", 1, 1, (9, 8)),  # MobileNet's stride-2 blocks
        (5, 2, "same", 2, 1, (10, 11)),  # EfficientNet's 5x5, two filters per channel
        (3, 1, "valid", 1, 2, (9, 9)),
    ],
)
@pytest.mark.parametrize("dynamic", [True, False])
def test_depthwise_conv2d_is_a_grouped_convolution(
    kernel, strides, padding, multiplier, dilation, size, dynamic
):
    x = random(2, 3, *size)
    weights = [random(kernel, kernel, 3, multiplier), random(3 * multiplier)]
    config = {
        "kernel_size": kernel,
        "strides": strides,
        "padding": padding,
        "depth_multiplier": multiplier,
        "dilation_rate": dilation,
    }
    out = convert_layer(keras_layer("DepthwiseConv2D", config, weights), [x], dynamic=dynamic)
    expected = depthwise_conv2d(x, *weights, (strides, strides), padding, (dilation, dilation))
    np.testing.assert_allclose(out, expected, atol=1e-5)


@pytest.mark.parametrize(("strides", "use_bias"), [(1, True), (2, False)])
def test_separable_conv2d_is_depthwise_then_pointwise(strides, use_bias):
    x = random(1, 4, 9, 8)
    depthwise, pointwise, bias = random(3, 3, 4, 2), random(1, 1, 8, 5), random(5)
    weights = [depthwise, pointwise] + ([bias] if use_bias else [])
    config = {
        "filters": 5,
        "kernel_size": 3,
        "strides": strides,
        "padding": "same",
        "depth_multiplier": 2,
        "use_bias": use_bias,
        "activation": "relu",
    }
    out = convert_layer(keras_layer("SeparableConv2D", config, weights), [x])
    middle = depthwise_conv2d(x, depthwise, None, (strides, strides), "same")
    expected = np.maximum(conv2d(middle, pointwise, bias if use_bias else None), 0)
    np.testing.assert_allclose(out, expected, atol=1e-5)


@pytest.mark.parametrize(
    ("kernel", "strides", "padding", "output_padding"),
    [
        (3, 2, "same", 1),  # keras-unet's satellite_unet: the same size as without it
        (3, 2, "same", 0),  # one pixel smaller than 'same' alone
        (4, 2, "same", 1),
        (3, 2, "valid", 1),  # a row of zeros (plus the bias) at the end
        (2, 3, "valid", 2),
        (1, 2, "same", 1),  # a kernel smaller than the stride
    ],
)
def test_conv2d_transpose_with_output_padding(kernel, strides, padding, output_padding):
    x = random(2, 3, 5, 4)
    weights = [random(kernel, kernel, 2, 3), random(2)]
    config = {
        "filters": 2,
        "kernel_size": kernel,
        "strides": strides,
        "padding": padding,
        "output_padding": output_padding,
    }
    out = convert_layer(keras_layer("Conv2DTranspose", config, weights), [x])
    pairs = (strides, strides), (output_padding, output_padding)
    expected = conv2d_transpose_padded(x, weights[0], weights[1], pairs[0], padding, pairs[1])
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_satellite_unets_output_padding_changes_nothing():
    x = random(1, 3, 6, 5)
    weights = [random(3, 3, 2, 3), random(2)]
    config = {"filters": 2, "kernel_size": 3, "strides": 2, "padding": "same"}
    plain = convert_layer(keras_layer("Conv2DTranspose", config, weights), [x])
    padded = convert_layer(
        keras_layer("Conv2DTranspose", {**config, "output_padding": [1, 1]}, weights), [x]
    )
    np.testing.assert_array_equal(plain, padded)


def test_output_padding_as_large_as_the_stride_is_refused():
    config = {"filters": 2, "kernel_size": 3, "strides": 2, "output_padding": 2}
    with pytest.raises(UserError, match="must be smaller than the strides"):
        convert_layer(keras_layer("Conv2DTranspose", config, []), [random(1, 1, 3, 3)])

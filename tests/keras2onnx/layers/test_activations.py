"""Activation (every activation function), ReLU, LeakyReLU, Softmax, ELU, ThresholdedReLU,
GELU and PReLU layers."""

import numpy as np
import pytest

from tests.keras2onnx.layers.reference import (
    ACTIVATIONS,
    RNG,
    convert_layer,
    gelu,
    gelu_tanh,
    hard_sigmoid,
    keras_layer,
    random,
    sequence,
    sigmoid,
    softmax,
    unsequence,
)
from unetkit.core import UserError
from unetkit.keras2onnx.layers.base import ShapeMismatch
from unetkit.keras2onnx.layers.functions import ACTIVATIONS as KIT_ACTIVATIONS
from unetkit.keras2onnx.registry import make_op


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_activation_layer(activation):
    x = random(2, 3, 4, 5)
    out = convert_layer(keras_layer("Activation", {"activation": activation}), [x])
    np.testing.assert_allclose(out, ACTIVATIONS[activation](x), atol=1e-5)


@pytest.mark.parametrize(
    ("config", "reference"),
    [
        ({}, lambda x: np.maximum(x, 0)),
        ({"max_value": 0.5}, lambda x: np.clip(x, 0, 0.5)),
        ({"negative_slope": 0.1}, lambda x: np.where(x > 0, x, 0.1 * x)),
    ],
)
def test_relu_layer(config, reference):
    x = random(1, 2, 3, 4)
    np.testing.assert_allclose(
        convert_layer(keras_layer("ReLU", config), [x]), reference(x), atol=1e-6
    )


@pytest.mark.parametrize("key", ["alpha", "negative_slope"])
def test_leaky_relu_reads_either_keras_spelling(key):
    x = random(1, 2, 3, 4)
    out = convert_layer(keras_layer("LeakyReLU", {key: 0.2}), [x])
    np.testing.assert_allclose(out, np.where(x > 0, x, 0.2 * x), atol=1e-6)


def test_softmax_layer_over_channels():
    x = random(2, 4, 3, 3)
    np.testing.assert_allclose(
        convert_layer(keras_layer("Softmax", {"axis": -1}), [x]), softmax(x, 1), atol=1e-6
    )


def test_an_unknown_activation_is_named():
    with pytest.raises(UserError, match="activation 'mystery'"):
        convert_layer(keras_layer("Activation", {"activation": "mystery"}), [random(1, 1, 2, 2)])


def test_every_activation_the_kit_lists_has_a_reference():
    assert set(ACTIVATIONS) == set(KIT_ACTIVATIONS)


@pytest.mark.parametrize(("keras_major", "slope"), [(2, 0.2), (3, 1 / 6)])
def test_hard_sigmoid_follows_the_keras_that_wrote_the_file(keras_major, slope):
    x = np.linspace(-4, 4, 2 * 3 * 5 * 5, dtype=np.float32).reshape(2, 3, 5, 5)
    layer = keras_layer("Activation", {"activation": "hard_sigmoid"}, keras_major=keras_major)
    out = convert_layer(layer, [x])
    np.testing.assert_allclose(out, hard_sigmoid(x, keras_major), atol=1e-6)
    np.testing.assert_allclose(out, np.clip(slope * x + 0.5, 0, 1), atol=1e-6)


def test_keras3_function_activation_dict_is_read_by_name():
    x = random(1, 2, 3, 4)
    function = {"module": "builtins", "class_name": "function", "config": "swish"}
    out = convert_layer(keras_layer("Activation", {"activation": function}), [x])
    np.testing.assert_allclose(out, x * sigmoid(x), atol=1e-6)


def test_a_function_activation_of_unknown_name_is_named():
    function = {"module": "builtins", "class_name": "function", "config": "my_act"}
    with pytest.raises(UserError, match="activation 'my_act' is not supported"):
        convert_layer(keras_layer("Activation", {"activation": function}), [random(1, 1, 2, 2)])


@pytest.mark.parametrize("alpha", [1.0, 0.3])
def test_elu_layer(alpha):
    x = random(1, 2, 3, 4)
    out = convert_layer(keras_layer("ELU", {"alpha": alpha}), [x])
    np.testing.assert_allclose(out, np.where(x > 0, x, alpha * np.expm1(x)), atol=1e-6)


def test_thresholded_relu_layer():
    x = random(1, 2, 3, 4)
    out = convert_layer(keras_layer("ThresholdedReLU", {"theta": 0.4}), [x])
    np.testing.assert_allclose(out, np.where(x > 0.4, x, 0.0), atol=1e-7)


@pytest.mark.parametrize(("config", "reference"), [({}, gelu_tanh), ({"approximate": False}, gelu)])
def test_gelu_layer_is_the_tanh_approximation_unless_told(config, reference):
    x = random(1, 3, 4, 4) * 3
    out = convert_layer(keras_layer("GELU", config), [x])
    np.testing.assert_allclose(out, reference(x), atol=1e-5)
    other = gelu if reference is gelu_tanh else gelu_tanh
    assert np.abs(out - other(x)).max() > 1e-4  # the two forms differ measurably


def test_prelu_with_shared_spatial_axes_has_one_alpha_per_channel():
    x = random(2, 3, 4, 5)
    alpha = np.array([0.1, 0.2, 0.3], np.float32).reshape(1, 1, 3)
    layer = keras_layer("PReLU", {"shared_axes": [1, 2]}, [alpha])
    out = convert_layer(layer, [x])
    np.testing.assert_allclose(out, np.where(x > 0, x, alpha.reshape(1, 3, 1, 1) * x), atol=1e-6)


@pytest.mark.parametrize("layout", ["channels_last", "channels_first"])
def test_prelu_with_one_alpha_per_pixel_pins_the_size(layout):
    x = random(2, 3, 4, 5)
    alpha_chw = RNG.uniform(0.05, 0.3, (3, 4, 5)).astype(np.float32)
    alpha = alpha_chw if layout == "channels_first" else alpha_chw.transpose(1, 2, 0)
    layer = keras_layer("PReLU", {}, [alpha])
    out = convert_layer(layer, [x], layout=layout, dynamic=False)
    np.testing.assert_allclose(out, np.where(x > 0, x, alpha_chw[None] * x), atol=1e-6)
    op = make_op(layer, layout)
    with pytest.raises(ShapeMismatch, match="one alpha per pixel"):
        op.output_shape([(3, 6, 5)])
    assert op.output_shape([(3, None, 5)]) == (3, None, 5)


@pytest.mark.parametrize(("axis", "keras_axes"), [(1, (1,)), (-1, (2,)), ([1, 2], (1, 2))])
def test_softmax_layer_over_any_axis_of_a_sequence(axis, keras_axes):
    """Over the tokens (both axes of the stored grid), over the features, over both."""
    tokens = random(2, 6, 4)
    out = convert_layer(
        keras_layer("Softmax", {"axis": axis}), [sequence(tokens, (2, 3))], ranks=[3]
    )
    shifted = np.exp(tokens - tokens.max(axis=keras_axes, keepdims=True))
    expected = shifted / shifted.sum(axis=keras_axes, keepdims=True)
    np.testing.assert_allclose(unsequence(out), expected, atol=1e-6)


def test_softmax_over_axes_that_are_not_trailing_is_refused():
    with pytest.raises(UserError, match=r"softmax over axis=\[1, 3\] is not supported"):
        convert_layer(keras_layer("Softmax", {"axis": [1, 3]}), [random(1, 2, 3, 3)])

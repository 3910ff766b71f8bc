"""Activation, ReLU (slope, threshold, max_value), LeakyReLU (both Keras spellings), Softmax."""

import numpy as np
import pytest

from tests.keras2onnx.layers.reference import (
    ACTIVATIONS,
    convert_layer,
    keras_layer,
    random,
    softmax,
)
from unetkit.core import UserError


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

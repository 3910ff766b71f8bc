"""BatchNormalization at inference, with Keras's own epsilon (1e-3 unless set);
LayerNormalization over any axes of images and token sequences; LayerScale."""

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
from unetkit.keras2onnx.registry import make_op


@pytest.mark.parametrize(
    ("center", "scale", "epsilon"), [(True, True, 1e-3), (False, True, 0.01), (True, False, 1e-3)]
)
def test_batch_normalization_matches_the_formula(center, scale, epsilon):
    channels = 4
    gamma = np.random.default_rng(1).uniform(0.5, 1.5, channels).astype(np.float32)
    beta = random(channels)
    mean, variance = (
        random(channels),
        np.random.default_rng(2).uniform(0.1, 1.0, channels).astype(np.float32),
    )
    weights = [w for w, keep in ((gamma, scale), (beta, center)) if keep] + [mean, variance]
    layer = keras_layer(
        "BatchNormalization",
        {"axis": -1, "epsilon": epsilon, "center": center, "scale": scale},
        weights,
    )
    x = random(2, channels, 3, 5)
    g = gamma if scale else np.ones(channels)
    b = beta if center else np.zeros(channels)
    c = lambda v: v[None, :, None, None]  # noqa: E731
    expected = c(g) * (x - c(mean)) / np.sqrt(c(variance) + epsilon) + c(b)
    np.testing.assert_allclose(convert_layer(layer, [x]), expected, atol=1e-5)


def test_the_default_epsilon_is_keras_not_onnx():
    variance = np.full(2, 1e-3, np.float32)
    layer = keras_layer(
        "BatchNormalization",
        {},
        [np.ones(2, np.float32), np.zeros(2, np.float32), np.zeros(2, np.float32), variance],
    )
    x = np.ones((1, 2, 1, 1), np.float32)
    np.testing.assert_allclose(convert_layer(layer, [x]), 1 / np.sqrt(2e-3), rtol=1e-5)


def layer_norm(x: np.ndarray, axes: tuple[int, ...], gamma, beta, epsilon: float) -> np.ndarray:
    """Keras's LayerNormalization on a Keras-order array (gamma/beta broadcast as given)."""
    mean = x.mean(axis=axes, keepdims=True)
    variance = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    return (x - mean) / np.sqrt(variance + epsilon) * gamma + beta


def test_layer_normalization_over_the_channels_of_an_image():
    """ConvNeXt: LayerNormalization(epsilon=1e-6) on a channels_last map, axis -1."""
    x = random(2, 8, 3, 5) * 3 + 1
    gamma, beta = random(8), random(8)
    layer = keras_layer("LayerNormalization", {"axis": [-1], "epsilon": 1e-6}, [gamma, beta])
    expected = layer_norm(x.transpose(0, 2, 3, 1), (3,), gamma, beta, 1e-6)
    np.testing.assert_allclose(convert_layer(layer, [x]), expected.transpose(0, 3, 1, 2), atol=1e-5)


@pytest.mark.parametrize(("center", "scale"), [(True, True), (False, True), (True, False)])
def test_layer_normalization_over_the_features_of_a_sequence(center, scale):
    """A ViT block: LayerNormalization(axis=2) on (batch, L, D) tokens, as keras-unet-collection's
    TransUNet saves it ([2]), with or without beta and gamma."""
    tokens = random(2, 12, 6) * 2 - 1
    gamma, beta = random(6), random(6)
    weights = [w for w, keep in ((gamma, scale), (beta, center)) if keep]
    config = {"axis": [2], "epsilon": 1e-3, "center": center, "scale": scale}
    layer = keras_layer("LayerNormalization", config, weights)
    out = convert_layer(layer, [sequence(tokens, (3, 4))], ranks=[3])
    g = gamma if scale else 1.0
    b = beta if center else 0.0
    expected = layer_norm(tokens, (2,), g, b, 1e-3)
    np.testing.assert_allclose(unsequence(out), expected, atol=1e-5)


def test_layer_normalization_over_the_tokens_and_over_a_whole_map():
    tokens = random(2, 6, 4)
    gamma, beta = random(6), random(6)
    layer = keras_layer("LayerNormalization", {"axis": 1}, [gamma, beta])
    out = convert_layer(layer, [sequence(tokens, (2, 3))], ranks=[3], dynamic=False)
    expected = layer_norm(tokens, (1,), gamma[:, None], beta[:, None], 1e-3)
    np.testing.assert_allclose(unsequence(out), expected, atol=1e-5)

    x = random(2, 3, 4, 5)
    gamma, beta = random(4, 5, 3), random(4, 5, 3)
    layer = keras_layer("LayerNormalization", {"axis": [1, 2, 3]}, [gamma, beta])
    expected = layer_norm(x.transpose(0, 2, 3, 1), (1, 2, 3), gamma, beta, 1e-3)
    out = convert_layer(layer, [x], dynamic=False)
    np.testing.assert_allclose(out, expected.transpose(0, 3, 1, 2), atol=1e-5)
    op = make_op(layer, "channels_last")
    assert "gamma per pixel" in op.pins_size([(3, 4, 5)])


def test_layer_normalization_with_rms_scaling_or_over_the_batch_is_refused():
    layer = keras_layer("LayerNormalization", {"axis": -1, "rms_scaling": True}, [random(3)])
    with pytest.raises(UserError, match=r"rms_scaling=True is not supported \(supported: rms"):
        make_op(layer, "channels_last")
    op = make_op(keras_layer("LayerNormalization", {"axis": 0}, []), "channels_last")
    with pytest.raises(UserError, match=r"LayerNormalization.*batch axis"):
        op.output_shape([(3, 4, 4)])


def test_layer_scale_multiplies_each_channel():
    """Keras Applications' LayerScale (ConvNeXt), on a map and on tokens."""
    x, gamma = random(2, 4, 3, 3), random(4)
    layer = keras_layer("LayerScale", {"init_values": 1e-6, "projection_dim": 4}, [gamma])
    np.testing.assert_allclose(convert_layer(layer, [x]), x * gamma[None, :, None, None], atol=1e-6)
    tokens = random(2, 6, 4)
    out = convert_layer(layer, [sequence(tokens, (2, 3))], ranks=[3])
    np.testing.assert_allclose(unsequence(out), tokens * gamma, atol=1e-6)

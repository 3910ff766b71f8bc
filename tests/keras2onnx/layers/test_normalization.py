"""BatchNormalization at inference, with Keras's own epsilon (1e-3 unless set)."""

import numpy as np
import pytest

from tests.keras2onnx.layers.reference import convert_layer, keras_layer, random


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

"""Rescaling and Normalization, the preprocessing layers Keras Applications encoders carry:
per-channel or scalar, statistics from the config or from the weights (by name in .h5, by
position in .keras), Keras's epsilon floor, invert."""

import numpy as np
import pytest

from tests.keras2onnx.layers.reference import convert_layer, keras_layer, random
from unetkit.core import UserError


@pytest.mark.parametrize(
    ("scale", "offset"), [(1 / 255, 0.0), ([0.5, 2.0, -1.0], [0.1, 0.2, 0.3]), (2.0, -1.0)]
)
def test_rescaling(scale, offset):
    x = random(2, 3, 4, 5)
    out = convert_layer(keras_layer("Rescaling", {"scale": scale, "offset": offset}), [x])
    per_channel = np.asarray(scale, np.float32).reshape(-1, 1, 1)
    shift = np.asarray(offset, np.float32).reshape(-1, 1, 1)
    np.testing.assert_allclose(out, x * per_channel + shift, atol=1e-6)


MEAN = np.array([0.5, -0.2, 0.1], np.float32)
VARIANCE = np.array([0.04, 2.0, 0.0], np.float32)  # a zero variance divides by 1e-7


def normalized(x: np.ndarray) -> np.ndarray:
    std = np.maximum(np.sqrt(VARIANCE), 1e-7).reshape(1, 3, 1, 1)
    return (x - MEAN.reshape(1, 3, 1, 1)) / std


@pytest.mark.parametrize(
    ("weights", "names"),
    [
        ([np.array(0), MEAN, VARIANCE], ["n/count:0", "n/mean:0", "n/variance:0"]),  # .h5
        ([MEAN, VARIANCE, np.array(0)], ["n/vars/0", "n/vars/1", "n/vars/2"]),  # .keras
    ],
)
def test_normalization_reads_its_statistics_from_its_weights(weights, names):
    x = random(2, 3, 4, 4)
    layer = keras_layer("Normalization", {"axis": -1}, weights, weight_names=names)
    np.testing.assert_allclose(convert_layer(layer, [x]), normalized(x), rtol=1e-5, atol=1e-5)


def test_normalization_with_statistics_in_its_config_and_inverted():
    x = random(2, 3, 4, 4)
    config = {"axis": [3], "mean": MEAN.tolist(), "variance": VARIANCE.tolist()}
    out = convert_layer(keras_layer("Normalization", config), [x])
    np.testing.assert_allclose(out, normalized(x), rtol=1e-5, atol=1e-5)
    inverted = convert_layer(keras_layer("Normalization", {**config, "invert": True}), [x])
    std = np.sqrt(VARIANCE).reshape(1, 3, 1, 1)
    np.testing.assert_allclose(inverted, x * std + MEAN.reshape(1, 3, 1, 1), atol=1e-6)


def test_normalization_over_another_axis_is_refused():
    with pytest.raises(UserError, match="per channel"):
        convert_layer(
            keras_layer("Normalization", {"axis": 1}, [MEAN, VARIANCE, np.array(0)]),
            [random(1, 3, 2, 2)],
        )

"""ZeroPadding2D and Cropping2D, with asymmetric amounts."""

import numpy as np

from tests.keras2onnx.layers.reference import convert_layer, keras_layer, random


def test_zero_padding():
    x = random(1, 2, 3, 4)
    out = convert_layer(keras_layer("ZeroPadding2D", {"padding": [[1, 2], [0, 3]]}), [x])
    np.testing.assert_array_equal(out, np.pad(x, ((0, 0), (0, 0), (1, 2), (0, 3))))


def test_cropping():
    x = random(2, 3, 9, 8)
    out = convert_layer(keras_layer("Cropping2D", {"cropping": [[1, 2], [3, 0]]}), [x])
    np.testing.assert_array_equal(out, x[:, :, 1:-2, 3:])

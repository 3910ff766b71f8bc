"""MaxPooling2D and AveragePooling2D; 'same' average pooling counts only the image's pixels."""

import numpy as np
import pytest

from tests.keras2onnx.layers.reference import convert_layer, keras_layer, pool2d, random


@pytest.mark.parametrize("kind", ["max", "average"])
@pytest.mark.parametrize(
    ("pool", "strides", "padding", "size"),
    [
        (2, None, "valid", (8, 9)),
        (3, 2, "same", (7, 10)),
        (2, 1, "same", (5, 5)),
        (3, 3, "valid", (10, 11)),
    ],
)
def test_pooling_matches_the_reference(kind, pool, strides, padding, size):
    class_name = "MaxPooling2D" if kind == "max" else "AveragePooling2D"
    layer = keras_layer(class_name, {"pool_size": pool, "strides": strides, "padding": padding})
    x = random(2, 3, *size)
    stride = pool if strides is None else strides
    expected = pool2d(x, (pool, pool), (stride, stride), padding, kind)
    np.testing.assert_allclose(convert_layer(layer, [x]), expected, atol=1e-5)

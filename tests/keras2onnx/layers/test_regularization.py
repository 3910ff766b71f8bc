"""Dropout and SpatialDropout2D pass their input through at inference."""

import numpy as np
import pytest

from tests.keras2onnx.layers.reference import convert_layer, keras_layer, random


@pytest.mark.parametrize("class_name", ["Dropout", "SpatialDropout2D"])
def test_dropout_is_the_identity(class_name):
    x = random(2, 3, 4, 5)
    np.testing.assert_array_equal(convert_layer(keras_layer(class_name, {"rate": 0.5}), [x]), x)

"""MaxPooling2D and AveragePooling2D ('same' average pooling counts only the image's pixels),
GlobalAveragePooling2D and GlobalMaxPooling2D."""

import numpy as np
import pytest

from tests.keras2onnx.layers.reference import convert_layer, keras_layer, pool2d, random
from unetkit.keras2onnx.layers.base import rank_of
from unetkit.keras2onnx.registry import make_op


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


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize(
    ("class_name", "reduce"),
    [("GlobalAveragePooling2D", np.mean), ("GlobalMaxPooling2D", np.max)],
)
def test_global_pooling_gives_a_vector_or_a_1x1_map(class_name, reduce, keepdims):
    x = random(2, 3, 5, 7)
    layer = keras_layer(class_name, {"keepdims": keepdims})
    out = convert_layer(layer, [x])
    np.testing.assert_allclose(out, reduce(x, axis=(2, 3), keepdims=True), atol=1e-6)
    shape = make_op(layer, "channels_last").output_shape([(3, None, None)])
    assert shape == (3, 1, 1)
    assert rank_of(shape) == (4 if keepdims else 2)


def test_a_window_as_large_as_its_input_pins_the_size():
    """PSPNet's pyramid: pooling windows sized from the input are global at that size only."""
    op = make_op(
        keras_layer("AveragePooling2D", {"pool_size": 12, "strides": 12, "padding": "same"}),
        "channels_last",
    )
    assert "pools its whole 12x12 input" in op.pins_size([(8, 12, 12)])
    assert op.pins_size([(8, 24, 24)]) is None
    assert op.pins_size([(8, None, 12)]) is None
    downsampling = make_op(keras_layer("MaxPooling2D", {"pool_size": 2}), "channels_last")
    assert downsampling.pins_size([(8, 2, 2)]) is None  # a U-Net built for a small size

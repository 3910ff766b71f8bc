"""Concatenate, Add and Multiply, on the channel axis of either data format."""

import numpy as np
import pytest

from tests.keras2onnx.layers.reference import convert_layer, keras_layer, random
from unetkit.core import UserError


@pytest.mark.parametrize(
    ("axis", "layout"), [(-1, "channels_last"), (3, "channels_last"), (1, "channels_first")]
)
def test_concatenate_joins_channels(axis, layout):
    a, b = random(2, 3, 4, 5), random(2, 2, 4, 5)
    out = convert_layer(keras_layer("Concatenate", {"axis": axis}), [a, b], layout=layout)
    np.testing.assert_array_equal(out, np.concatenate([a, b], axis=1))


@pytest.mark.parametrize(("class_name", "reference"), [("Add", np.add), ("Multiply", np.multiply)])
def test_elementwise_merges_of_three(class_name, reference):
    a, b, c = random(1, 3, 4, 4), random(1, 3, 4, 4), random(1, 3, 4, 4)
    out = convert_layer(keras_layer(class_name, {}), [a, b, c])
    np.testing.assert_allclose(out, reference(reference(a, b), c), atol=1e-6)


def test_merging_along_the_batch_axis_is_refused():
    with pytest.raises(UserError, match="batch axis"):
        convert_layer(keras_layer("Concatenate", {"axis": 0}), [random(1, 1, 2, 2)] * 2)

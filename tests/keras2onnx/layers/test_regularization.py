"""The dropouts, the noise layers and ActivityRegularization pass their input through at
inference; so does a Dropout subclass the kit does not know (efficientnet's FixedDropout)."""

import numpy as np
import pytest

from tests.keras2onnx.layers.reference import convert_layer, keras_layer, random
from unetkit.core import UserError

PASS_THROUGH = [
    ("Dropout", {"rate": 0.5}),
    ("SpatialDropout2D", {"rate": 0.5}),
    ("GaussianDropout", {"rate": 0.2}),
    ("GaussianNoise", {"stddev": 0.1}),
    ("AlphaDropout", {"rate": 0.1}),
    ("ActivityRegularization", {"l1": 0.01}),
    ("FixedDropout", {"rate": 0.2, "noise_shape": [None, 1, 1, 1], "seed": None}),
]


@pytest.mark.parametrize(("class_name", "config"), PASS_THROUGH, ids=[c for c, _ in PASS_THROUGH])
def test_the_identity_at_inference(class_name, config):
    x = random(2, 3, 4, 5)
    np.testing.assert_array_equal(convert_layer(keras_layer(class_name, config), [x]), x)


@pytest.mark.parametrize(
    ("class_name", "config"),
    [("MyDropout", {"keep": 0.5}), ("Dropoutish", {"rate": 0.5})],
)
def test_only_a_dropout_named_class_with_dropouts_config_is_taken_for_one(class_name, config):
    with pytest.raises(UserError, match=f"of class {class_name} is not supported"):
        convert_layer(keras_layer(class_name, config), [random(1, 1, 2, 2)])

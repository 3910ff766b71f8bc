"""Lambda: converted only when it is one of the libraries' known functions; anything else is
refused in one line that names the way out.
"""

import base64

import numpy as np
import pytest

from tests.keras2onnx.layers.reference import (
    convert_layer,
    keras_layer,
    random,
)
from unetkit.core import UserError
from unetkit.keras2onnx.keras_file import FIRST_ARGUMENT, InputSlot
from unetkit.keras2onnx.layers.base import rank_of, with_rank
from unetkit.keras2onnx.registry import make_op

FIRST = {FIRST_ARGUMENT: [InputSlot(0)]}


def marshalled(*names: bytes) -> str:
    """Bytes shaped like a marshalled code object's names: length-prefixed strings."""
    body = b"\xe3\x00\x00" + b"".join(b"\xda" + bytes([len(n)]) + n for n in names)
    return base64.b64encode(body).decode()


def se_expand_dims(function: object, module: str | None) -> object:
    config = {"function": function, "arguments": {"channels_axis": 3}}
    if module is not None:
        config["module"] = module
    return keras_layer("Lambda", config, name="lambda")


@pytest.mark.parametrize(
    ("function", "module"),
    [
        ({"module": "builtins", "class_name": "function", "config": "expand_dims"}, None),
        (
            [marshalled(b"x", b"channels_axis", b"expand_dims"), None, None],
            "classification_models.models._common_blocks",
        ),
    ],
    ids=["keras3", "tf_keras"],
)
def test_se_resnets_expand_dims_lambda_is_known(function, module):
    layer = se_expand_dims(function, module)
    x = random(2, 6, 1, 1)
    np.testing.assert_array_equal(convert_layer(layer, [x], ranks=[2]), x)
    assert rank_of(make_op(layer, "channels_last").output_shape([with_rank((6, 1, 1), 2)])) == 4


def test_aspp_resize_lambda_is_known():
    code = marshalled(b"image", b"resize", b"bilinear", b"align_corners", b"shape_before")
    layer = keras_layer(
        "Lambda",
        {
            "function": [code, None, [[None, 6, 8, 4]]],
            "module": "keras_unet_collection.layer_utils",
            "arguments": {},
        },
    )
    x = random(2, 4, 1, 1)
    np.testing.assert_allclose(
        convert_layer(layer, [x]), np.broadcast_to(x, (2, 4, 6, 8)), atol=1e-7
    )


@pytest.mark.parametrize(
    "config",
    [
        {"function": [marshalled(b"x", b"sin"), None, None], "module": "__main__"},
        {"function": {"class_name": "__lambda__", "config": {"code": "..."}}},
        # the right names from the wrong module
        {
            "function": [marshalled(b"x", b"channels_axis", b"expand_dims"), None, None],
            "module": "my_project.blocks",
            "arguments": {"channels_axis": 3},
        },
    ],
)
def test_any_other_lambda_is_refused_in_one_line_naming_the_way_out(config):
    with pytest.raises(UserError) as refused:
        convert_layer(keras_layer("Lambda", config, name="my_lambda"), [random(1, 1, 2, 2)])
    message = str(refused.value)
    assert "\n" not in message
    assert "Lambda layer holds Python code" in message
    assert "rebuild the model with Keras layers" in message
    assert "register_layer('Lambda:my_lambda')" in message

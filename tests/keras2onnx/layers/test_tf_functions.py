"""TFOpLambda: a TensorFlow function on Keras tensors (tf.keras 2.x).

Its arguments come from its call: the first one (tensors, or constants), the others by name
(`y`, `axis`, ...), tensors among them as InputSlots. A function the kit does not convert is
refused in one line that names the way out.
"""

import numpy as np
import pytest

from tests.keras2onnx.layers.reference import (
    convert_layer,
    keras_layer,
    random,
    resize_bilinear_half_pixel,
    sequence,
    sigmoid,
    softmax,
    unsequence,
)
from unetkit.core import UserError
from unetkit.keras2onnx.keras_file import FIRST_ARGUMENT, InputSlot
from unetkit.keras2onnx.layers.base import rank_of, with_rank
from unetkit.keras2onnx.registry import make_op

FIRST = {FIRST_ARGUMENT: [InputSlot(0)]}


def tf_op(function: str, **kwargs: object):
    return keras_layer(
        "TFOpLambda",
        {"function": function},
        call_kwargs={FIRST_ARGUMENT: [InputSlot(0)], **kwargs},
        keras_major=2,
        name=f"tf.{function}",
    )


def test_concat():
    a, b = random(1, 2, 3, 3), random(1, 4, 3, 3)
    layer = keras_layer(
        "TFOpLambda",
        {"function": "concat"},
        call_kwargs={FIRST_ARGUMENT: [InputSlot(0), InputSlot(1)], "axis": -1},
    )
    np.testing.assert_array_equal(convert_layer(layer, [a, b]), np.concatenate([a, b], 1))


@pytest.mark.parametrize(
    ("function", "reference"),
    [
        ("__operators__.add", np.add),
        ("math.add", np.add),
        ("math.subtract", np.subtract),
        ("math.multiply", np.multiply),
        ("math.truediv", np.divide),
        ("math.maximum", np.maximum),
        ("math.minimum", np.minimum),
    ],
)
def test_arithmetic_with_a_tensor(function, reference):
    x, y = random(2, 3, 4, 4), random(2, 1, 4, 4) + 3.0  # y broadcasts over the channels
    out = convert_layer(tf_op(function, y=InputSlot(1), name=None), [x, y])
    np.testing.assert_allclose(out, reference(x, y), rtol=1e-6)


def test_arithmetic_with_constants_on_either_side():
    x = random(1, 3, 2, 2)
    times_two = tf_op("math.multiply", y=2.0)
    np.testing.assert_allclose(convert_layer(times_two, [x]), 2 * x, rtol=1e-6)
    one_minus = keras_layer(
        "TFOpLambda",
        {"function": "math.subtract"},
        call_kwargs={FIRST_ARGUMENT: [1.0], "y": InputSlot(0)},
    )
    np.testing.assert_allclose(convert_layer(one_minus, [x]), 1 - x, rtol=1e-6)
    per_channel = tf_op("__operators__.add", y=[1.0, 2.0, 3.0])
    expected = x + np.array([1, 2, 3], np.float32).reshape(1, 3, 1, 1)
    np.testing.assert_allclose(convert_layer(per_channel, [x]), expected, rtol=1e-6)


@pytest.mark.parametrize(
    ("function", "kwargs", "reference"),
    [
        ("nn.relu", {}, lambda x: np.maximum(x, 0)),
        ("nn.relu6", {}, lambda x: np.clip(x, 0, 6)),
        ("math.sigmoid", {}, sigmoid),
        ("math.tanh", {}, np.tanh),
        ("nn.softmax", {"axis": -1}, lambda x: softmax(x, 1)),
    ],
)
def test_activation_functions(function, kwargs, reference):
    x = random(2, 3, 4, 4) * 4
    np.testing.assert_allclose(
        convert_layer(tf_op(function, **kwargs), [x]), reference(x), atol=1e-6
    )


@pytest.mark.parametrize("keepdims", [True, False])
def test_reduce_mean_over_the_image_is_a_global_pooling(keepdims):
    x = random(2, 3, 4, 5)
    layer = tf_op("math.reduce_mean", axis=[1, 2], keepdims=keepdims)
    out = convert_layer(layer, [x])
    np.testing.assert_allclose(out, x.mean(axis=(2, 3), keepdims=True), atol=1e-6)
    assert rank_of(make_op(layer, "channels_last").output_shape([(3, None, None)])) == (
        4 if keepdims else 2
    )


def test_expand_dims_twice_turns_a_vector_into_a_1x1_map():
    """keras-unet-collection's ASPP: expand_dims(expand_dims(GAP(x), 1), 1)."""
    first = make_op(tf_op("expand_dims", axis=1), "channels_last")
    second = make_op(tf_op("expand_dims", axis=1), "channels_last")
    vector = with_rank((5, 1, 1), 2)
    middle = first.output_shape([vector])
    assert rank_of(middle) == 3
    assert rank_of(second.output_shape([middle])) == 4
    x = random(2, 5, 1, 1)
    np.testing.assert_array_equal(convert_layer(tf_op("expand_dims", axis=1), [x], ranks=[2]), x)
    with pytest.raises(UserError, match="expand_dims"):
        make_op(tf_op("expand_dims", axis=-1), "channels_last").output_shape([vector])


def test_reshape_and_transpose_keep_the_batch_axis():
    x = random(2, 2, 3, 3)
    keras = x.transpose(0, 2, 3, 1)
    out = convert_layer(tf_op("reshape", shape=[-1, 9, 1, 2]), [x], dynamic=False)
    np.testing.assert_array_equal(out, keras.reshape(2, 9, 1, 2).transpose(0, 3, 1, 2))
    out = convert_layer(tf_op("compat.v1.transpose", perm=[0, 2, 1, 3]), [x], dynamic=False)
    np.testing.assert_array_equal(out, keras.transpose(0, 2, 1, 3).transpose(0, 3, 1, 2))
    with pytest.raises(UserError, match="moves the batch axis"):
        convert_layer(tf_op("transpose", perm=[1, 0, 2, 3]), [x])


def test_image_resize_to_a_fixed_size():
    x = random(1, 2, 4, 5)
    out = convert_layer(tf_op("image.resize", size=[8, 10]), [x])
    np.testing.assert_allclose(out, resize_bilinear_half_pixel(x, (2, 2)), atol=1e-5)
    nearest = convert_layer(tf_op("image.resize", size=[8, 15], method="nearest"), [x])
    np.testing.assert_array_equal(nearest, x.repeat(2, axis=2).repeat(3, axis=3))


def test_v1_resize_with_align_corners_broadcasts_a_1x1_map():
    x = random(2, 3, 1, 1)
    out = convert_layer(
        tf_op("compat.v1.image.resize_images", size=[4, 6], align_corners=True), [x]
    )
    np.testing.assert_allclose(out, np.broadcast_to(x, (2, 3, 4, 6)), atol=1e-7)


def test_an_unknown_tensorflow_function_is_refused_naming_it_and_the_hook():
    with pytest.raises(UserError) as refused:
        convert_layer(tf_op("math.cumsum", axis=1), [random(1, 1, 2, 2)])
    message = str(refused.value)
    assert "'math.cumsum'" in message and "register_layer('TFOpLambda:tf.math.cumsum')" in message
    assert "\n" not in message


def test_matmul_with_transpose_b_is_attention_scores():
    """tf.matmul(q, k, transpose_b=True) on (batch, L, D) sequences."""
    q, k = random(2, 6, 4), random(2, 6, 4)
    layer = tf_op("linalg.matmul", b=InputSlot(1), transpose_b=True)
    out = convert_layer(
        layer, [sequence(q, (2, 3)), sequence(k, (2, 3))], ranks=[3, 3], dynamic=False
    )
    np.testing.assert_allclose(unsequence(out), q @ k.transpose(0, 2, 1), atol=1e-5)


def test_roll_along_height_and_width():
    x = random(1, 2, 4, 4)
    out = convert_layer(tf_op("roll", shift=[2, -1], axis=[1, 2]), [x])
    expected = np.roll(x.transpose(0, 2, 3, 1), (2, -1), (1, 2)).transpose(0, 3, 1, 2)
    np.testing.assert_array_equal(out, expected)


def test_einsum_is_refused_because_tf_keras_does_not_save_its_tensors():
    layer = tf_op("einsum")
    with pytest.raises(UserError, match=r"saves its equation but not its tensors.*EinsumDense"):
        make_op(layer, "channels_last")

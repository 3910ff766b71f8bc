"""EinsumDense against numpy's einsum: projections of tokens and of maps, with a bias over
some output axes, the ellipsis spelled out, an activation."""

import numpy as np
import pytest

from tests.keras2onnx.layers.reference import (
    convert_layer,
    keras_layer,
    random,
    sequence,
    sigmoid,
    unsequence,
)
from unetkit.core import UserError
from unetkit.keras2onnx.layers.base import with_rank
from unetkit.keras2onnx.registry import make_op


@pytest.mark.parametrize(
    ("equation", "kernel_shape", "bias_axes", "bias_shape"),
    [
        ("abc,cd->abd", (4, 5), "d", (5,)),
        ("...b,bc->...c", (4, 3), None, None),
        ("abc,cd->abd", (4, 2), None, None),
    ],
)
def test_einsum_dense_on_tokens(equation, kernel_shape, bias_axes, bias_shape):
    tokens = random(2, 6, 4)
    weights = [random(*kernel_shape)] + ([random(*bias_shape)] if bias_shape else [])
    config = {
        "equation": equation,
        "output_shape": [None, kernel_shape[1]],
        "bias_axes": bias_axes,
        "activation": "sigmoid",
    }
    out = convert_layer(
        keras_layer("EinsumDense", config, weights), [sequence(tokens, (2, 3))], ranks=[3]
    )
    expected = np.einsum("abc,cd->abd", tokens, weights[0]) + (weights[1] if bias_shape else 0)
    np.testing.assert_allclose(unsequence(out), sigmoid(expected), atol=1e-5)
    assert out.shape[2:] == (2, 3)


def test_einsum_dense_on_a_map_with_a_bias_over_two_axes():
    x = random(2, 3, 4, 5)  # NCHW: Keras (2, 4, 5, 3)
    kernel, bias = random(3, 6), random(5, 6)
    config = {"equation": "abcd,de->abce", "output_shape": [4, 5, 6], "bias_axes": "ce"}
    out = convert_layer(keras_layer("EinsumDense", config, [kernel, bias]), [x])
    expected = np.einsum("abcd,de->abce", x.transpose(0, 2, 3, 1), kernel) + bias
    np.testing.assert_allclose(out, expected.transpose(0, 3, 1, 2), atol=1e-5)


def test_einsum_dense_with_lora_or_moving_the_batch_is_refused():
    config = {"equation": "ab,bc->ac", "output_shape": [3], "lora_rank": 4}
    with pytest.raises(UserError, match=r"lora_rank=4 is not supported \(supported"):
        make_op(keras_layer("EinsumDense", config, [random(2, 3)]), "channels_last")
    config = {"equation": "abc,cd->bad", "output_shape": [3, 3]}
    op = make_op(keras_layer("EinsumDense", config, [random(4, 3)]), "channels_last")
    with pytest.raises(UserError, match="must keep the batch first"):
        op.output_shape([with_rank((4, 2, 3), 3)])

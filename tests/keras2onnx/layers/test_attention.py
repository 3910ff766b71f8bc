"""MultiHeadAttention against a numpy reference of Keras's computation: self- and cross-
attention, any head count, key and value dimensions, output size, with and without bias, an
attention mask or a causal one, over tokens or over the pixels of a map; the weights named as
each format names them. Real Keras files are checked by the golden and zoo models."""

import numpy as np
import pytest

from tests.keras2onnx.layers.reference import (
    convert_layer,
    keras_layer,
    random,
    sequence,
    softmax,
    unsequence,
)
from unetkit.core import UserError
from unetkit.keras2onnx.keras_file import ARGUMENTS, FIRST_ARGUMENT, InputSlot
from unetkit.keras2onnx.registry import make_op

NAMES = {
    "tf-keras .h5": [
        "mha/query/kernel:0",
        "mha/query/bias:0",
        "mha/key/kernel:0",
        "mha/key/bias:0",
        "mha/value/kernel:0",
        "mha/value/bias:0",
        "mha/attention_output/kernel:0",
        "mha/attention_output/bias:0",
    ],
    "Keras 3 .keras": [
        "mha/key_dense/vars/0",
        "mha/key_dense/vars/1",
        "mha/output_dense/vars/0",
        "mha/output_dense/vars/1",
        "mha/query_dense/vars/0",
        "mha/query_dense/vars/1",
        "mha/value_dense/vars/0",
        "mha/value_dense/vars/1",
    ],
}
ROLE_ORDER = {
    "tf-keras .h5": ["q", "bq", "k", "bk", "v", "bv", "o", "bo"],
    "Keras 3 .keras": ["k", "bk", "o", "bo", "q", "bq", "v", "bv"],
}


def make_weights(d_q, d_v, heads, key_dim, value_dim, out):
    return {
        "q": random(d_q, heads, key_dim),
        "bq": random(heads, key_dim),
        "k": random(d_v, heads, key_dim),
        "bk": random(heads, key_dim),
        "v": random(d_v, heads, value_dim),
        "bv": random(heads, value_dim),
        "o": random(heads, value_dim, out),
        "bo": random(out),
    }


def reference(query, value, key, w, key_dim, use_bias=True, keep=None):
    """Keras: project, scale the query, softmax(q k^T), weight the values, project back."""
    b = (lambda name: w[name]) if use_bias else (lambda name: 0.0)
    q = np.einsum("btd,dhk->bthk", query, w["q"]) + b("bq")
    k = np.einsum("bsd,dhk->bshk", key, w["k"]) + b("bk")
    v = np.einsum("bsd,dhv->bshv", value, w["v"]) + b("bv")
    scores = np.einsum("bthk,bshk->bhts", q / np.sqrt(key_dim), k)
    if keep is not None:
        scores = np.where(keep[:, None], scores, -1e9)
    attended = np.einsum("bhts,bshv->bthv", softmax(scores, axis=-1), v)
    return np.einsum("bthv,hvo->bto", attended, w["o"]) + b("bo")


def mha_layer(config, w, style, call_kwargs, use_bias=True):
    roles = [r for r in ROLE_ORDER[style] if use_bias or not r.startswith("b")]
    names = [n for n, r in zip(NAMES[style], ROLE_ORDER[style], strict=True) if r in roles]
    weights = [w[r] for r in roles]
    full = {"use_bias": use_bias, **config}
    return keras_layer(
        "MultiHeadAttention", full, weights, weight_names=names, name="mha", call_kwargs=call_kwargs
    )


@pytest.mark.parametrize("style", sorted(NAMES))
@pytest.mark.parametrize(
    ("heads", "key_dim", "value_dim", "output_shape", "use_bias"),
    [(2, 3, None, None, True), (3, 2, 4, 5, True), (1, 4, 4, [6], False)],
)
def test_self_attention_over_tokens(style, heads, key_dim, value_dim, output_shape, use_bias):
    tokens = random(2, 6, 4)
    out_dim = 4 if output_shape is None else np.ravel(output_shape)[0]
    w = make_weights(4, 4, heads, key_dim, value_dim or key_dim, out_dim)
    config = {
        "num_heads": heads,
        "key_dim": key_dim,
        "value_dim": value_dim,
        "output_shape": output_shape,
        "attention_axes": [1],
    }
    call = {FIRST_ARGUMENT: [InputSlot(0)], "value": InputSlot(1)}
    layer = mha_layer(config, w, style, call, use_bias)
    x = sequence(tokens, (2, 3))
    out = convert_layer(layer, [x, x], ranks=[3, 3])
    expected = reference(tokens, tokens, tokens, w, key_dim, use_bias)
    np.testing.assert_allclose(unsequence(out), expected, atol=1e-4)


def test_cross_attention_with_its_own_keys_and_an_attention_mask():
    """Keras 3 positional call (query, value, key) with attention_mask=... as a keyword."""
    query, value, key = random(2, 6, 4), random(2, 5, 3), random(2, 5, 3)
    keep = np.random.default_rng(3).random((2, 6, 5)) > 0.4
    keep[:, :, 0] = True
    w = make_weights(4, 3, 2, 3, 3, 4)
    call = {ARGUMENTS: [InputSlot(0), InputSlot(1), InputSlot(2)], "attention_mask": InputSlot(3)}
    layer = mha_layer({"num_heads": 2, "key_dim": 3}, w, "Keras 3 .keras", call)
    inputs = [
        sequence(query, (3, 2)),
        sequence(value, (5, 1)),
        sequence(key, (5, 1)),
        sequence(keep.astype(np.float32), (3, 2)),
    ]
    out = convert_layer(layer, inputs, ranks=[3, 3, 3, 3], dynamic=False)
    np.testing.assert_allclose(
        unsequence(out), reference(query, value, key, w, 3, keep=keep), atol=1e-4
    )


def test_causal_attention():
    tokens = random(1, 5, 4)
    w = make_weights(4, 4, 2, 2, 2, 4)
    call = {ARGUMENTS: [InputSlot(0), InputSlot(0)], "use_causal_mask": True}
    layer = mha_layer({"num_heads": 2, "key_dim": 2}, w, "Keras 3 .keras", call)
    out = convert_layer(layer, [sequence(tokens, (5, 1))], ranks=[3])
    keep = np.tril(np.ones((5, 5), bool))[None]
    np.testing.assert_allclose(
        unsequence(out), reference(tokens, tokens, tokens, w, 2, keep=keep), atol=1e-4
    )


def test_attention_over_the_pixels_of_a_map():
    """A (batch, H, W, C) map with attention_axes None attends over all H * W pixels."""
    x = random(2, 4, 3, 5)  # NCHW
    keras = x.transpose(0, 2, 3, 1).reshape(2, 15, 4)
    w = make_weights(4, 4, 2, 3, 3, 4)
    layer = mha_layer(
        {"num_heads": 2, "key_dim": 3},
        w,
        "tf-keras .h5",
        {FIRST_ARGUMENT: [InputSlot(0)], "value": InputSlot(0)},
    )
    out = convert_layer(layer, [x])
    expected = reference(keras, keras, keras, w, 3).reshape(2, 3, 5, 4).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(out, expected, atol=1e-4)


@pytest.mark.parametrize(
    ("config", "call", "message"),
    [
        ({"use_gate": True}, {}, r"use_gate=True is not supported \(supported: use_gate=False"),
        (
            {"sliding_window": 4},
            {},
            r"sliding_window=4 is not supported \(supported: sliding_window=None",
        ),
        ({}, {"return_attention_scores": True}, r"return_attention_scores=True gives two outputs"),
        (
            {"output_shape": [2, 3]},
            {},
            r"output_shape=\[2, 3\] is not supported \(supported: None or one",
        ),
    ],
)
def test_settings_the_kit_does_not_convert_are_refused_in_one_line(config, call, message):
    full = {"num_heads": 2, "key_dim": 2, **config}
    kwargs = {ARGUMENTS: [InputSlot(0), InputSlot(0)], **call}
    layer = keras_layer("MultiHeadAttention", full, call_kwargs=kwargs, name="mha")
    with pytest.raises(UserError, match=r"layer 'mha' \(MultiHeadAttention\): " + message):
        make_op(layer, "channels_last")


def test_attention_over_some_axes_of_a_map_is_refused():
    layer = keras_layer(
        "MultiHeadAttention",
        {"num_heads": 1, "key_dim": 2, "attention_axes": [2]},
        call_kwargs={ARGUMENTS: [InputSlot(0), InputSlot(0)]},
    )
    with pytest.raises(UserError, match=r"attention_axes=\[2\] on a rank-4 input is not supported"):
        make_op(layer, "channels_last").output_shape([(4, 3, 3)])

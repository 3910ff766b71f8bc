"""keras-unet-collection's SwinTransformerBlock and WindowAttention against a numpy version
of the library's call: LayerNorm, cyclic shift, windows, attention with the relative
position bias and the shift mask, windows merged and shifted back, the GELU MLP; the
weights named as tf-keras .h5 and .keras files name them."""

import numpy as np
import pytest

from tests.keras2onnx.layers.reference import (
    convert_layer,
    gelu,
    keras_layer,
    random,
    sequence,
    softmax,
    unsequence,
)
from unetkit.core import UserError
from unetkit.keras2onnx.layers.base import ShapeMismatch, with_rank
from unetkit.keras2onnx.registry import make_op


def position_index(ws: int) -> np.ndarray:
    """The library's relative_position_index for a ws x ws window."""
    coords = np.stack(np.meshgrid(np.arange(ws), np.arange(ws), indexing="ij")).reshape(2, -1)
    relative = (coords[:, :, None] - coords[:, None, :]).transpose(1, 2, 0)
    relative[:, :, 0] += ws - 1
    relative[:, :, 1] += ws - 1
    relative[:, :, 0] *= 2 * ws - 1
    return relative.sum(-1)


def partition(x: np.ndarray, ws: int) -> np.ndarray:
    n, h, w, c = x.shape
    x = x.reshape(n, h // ws, ws, w // ws, ws, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, ws * ws, c)


def merge(windows: np.ndarray, ws: int, h: int, w: int) -> np.ndarray:
    c = windows.shape[-1]
    x = windows.reshape(-1, h // ws, w // ws, ws, ws, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, h, w, c)


def shift_mask(h: int, w: int, ws: int, shift: int) -> np.ndarray:
    """The library's attention mask: -100 between regions that the shift wrapped around."""
    regions = np.zeros((1, h, w, 1))
    slices = (slice(0, -ws), slice(-ws, -shift), slice(-shift, None))
    for count, (hs, wsl) in enumerate((a, b) for a in slices for b in slices):
        regions[:, hs, wsl, :] = count
    windows = partition(regions, ws)[..., 0]
    diff = windows[:, None, :] - windows[:, :, None]
    return np.where(diff != 0, -100.0, 0.0)


def layer_norm(x, gamma, beta, eps=1e-5):
    mean = x.mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(((x - mean) ** 2).mean(-1, keepdims=True) + eps) * gamma + beta


def attention(x, w, heads, ws, mask=None):
    """WindowAttention.call on [windows, n, C]."""
    b, n, c = x.shape
    qkv = (x @ w["qkv"] + w["qkv_b"]).reshape(b, n, 3, heads, c // heads).transpose(2, 0, 3, 1, 4)
    q, k, v = qkv[0] * (c // heads) ** -0.5, qkv[1], qkv[2]
    scores = q @ k.transpose(0, 1, 3, 2)
    bias = w["table"][position_index(ws).reshape(-1)].reshape(n, n, heads).transpose(2, 0, 1)
    scores = scores + bias[None]
    if mask is not None:
        scores = (scores.reshape(-1, mask.shape[0], heads, n, n) + mask[None, :, None]).reshape(
            -1, heads, n, n
        )
    out = (softmax(scores, -1) @ v).transpose(0, 2, 1, 3).reshape(b, n, c)
    return out @ w["proj"] + w["proj_b"]


def block(x, w, grid, heads, ws, shift, mask):
    """SwinTransformerBlock.call on (batch, L, C)."""
    h, wd = grid
    skip = x
    y = layer_norm(x, w["g1"], w["b1"]).reshape(-1, h, wd, x.shape[-1])
    if shift:
        y = np.roll(y, (-shift, -shift), (1, 2))
    y = merge(attention(partition(y, ws), w, heads, ws, mask), ws, h, wd)
    if shift:
        y = np.roll(y, (shift, shift), (1, 2))
    x = skip + y.reshape(x.shape)
    y = layer_norm(x, w["g2"], w["b2"])
    return x + gelu(y @ w["fc1"] + w["fc1_b"]) @ w["fc2"] + w["fc2_b"]


LEGACY = {
    "g1": "name1_norm1/gamma:0",
    "b1": "name1_norm1/beta:0",
    "table": "window_attention_1/name1_attn_pos:0",
    "qkv": "window_attention_1/name1_attn_qkv/kernel:0",
    "qkv_b": "window_attention_1/name1_attn_qkv/bias:0",
    "proj": "window_attention_1/name1_attn_proj/kernel:0",
    "proj_b": "window_attention_1/name1_attn_proj/bias:0",
    "g2": "name1_norm2/gamma:0",
    "b2": "name1_norm2/beta:0",
    "fc1": "mlp_1/name1_mlp_0/kernel:0",
    "fc1_b": "mlp_1/name1_mlp_0/bias:0",
    "fc2": "mlp_1/name1_mlp_1/kernel:0",
    "fc2_b": "mlp_1/name1_mlp_1/bias:0",
    "mask": "name1_attn_mask:0",
    "index": "window_attention_1/name1_attn_pos_ind:0",
}
KERAS = {
    "g1": "norm1/vars/0",
    "b1": "norm1/vars/1",
    "table": "attn/vars/0",
    "index": "attn/vars/1",
    "qkv": "attn/qkv/vars/0",
    "qkv_b": "attn/qkv/vars/1",
    "proj": "attn/proj/vars/0",
    "proj_b": "attn/proj/vars/1",
    "g2": "norm2/vars/0",
    "b2": "norm2/vars/1",
    "fc1": "mlp/fc1/vars/0",
    "fc1_b": "mlp/fc1/vars/1",
    "fc2": "mlp/fc2/vars/0",
    "fc2_b": "mlp/fc2/vars/1",
    "mask": "vars/0",
}


def swin_weights(c, heads, ws, mlp):
    return {
        "g1": 1 + 0.1 * random(c),
        "b1": random(c),
        "table": random((2 * ws - 1) ** 2, heads),
        "qkv": random(c, 3 * c) * 0.3,
        "qkv_b": random(3 * c),
        "proj": random(c, c) * 0.3,
        "proj_b": random(c),
        "g2": 1 + 0.1 * random(c),
        "b2": random(c),
        "fc1": random(c, mlp) * 0.3,
        "fc1_b": random(mlp),
        "fc2": random(mlp, c) * 0.3,
        "fc2_b": random(c),
        "index": position_index(ws),
    }


def config(c, grid, heads, ws, shift, mlp):
    return {
        "dim": c,
        "num_patch": list(grid),
        "num_heads": heads,
        "window_size": ws,
        "shift_size": shift,
        "num_mlp": mlp,
        "qkv_bias": True,
        "qk_scale": None,
        "mlp_drop": 0,
        "attn_drop": 0,
        "proj_drop": 0,
        "drop_path_prob": 0,
        "name": "name1",
    }


@pytest.mark.parametrize("names", [LEGACY, KERAS], ids=["tf-keras .h5", ".keras"])
@pytest.mark.parametrize(("grid", "ws", "shift"), [((8, 8), 4, 2), ((4, 8), 2, 0), ((4, 4), 4, 0)])
def test_swin_block_matches_the_library(names, grid, ws, shift):
    c, heads, mlp = 8, 2, 16
    w = swin_weights(c, heads, ws, mlp)
    mask = shift_mask(*grid, ws, shift) if shift else None
    if mask is not None:
        w["mask"] = mask
    roles = list(w)
    layer = keras_layer(
        "SwinTransformerBlock",
        config(c, grid, heads, ws, shift, mlp),
        [w[r] for r in roles],
        weight_names=[f"swin_transformer_block_1/{names[r]}" for r in roles],
        name="swin_transformer_block_1",
    )
    tokens = random(2, grid[0] * grid[1], c)
    out = convert_layer(layer, [sequence(tokens, grid)], ranks=[3], dynamic=False)
    expected = block(tokens, w, grid, heads, ws, shift, mask)
    np.testing.assert_allclose(unsequence(out), expected, atol=1e-4)


def test_swin_block_pins_its_grid_and_refuses_a_window_that_does_not_divide_it():
    layer = keras_layer("SwinTransformerBlock", config(8, (8, 8), 2, 4, 2, 16), name="b")
    op = make_op(layer, "channels_last")
    with pytest.raises(ShapeMismatch, match="works on a 8x8 patch grid"):
        op.output_shape([with_rank((8, 6, None), 3)])
    assert "8x8 patch grid" in op.pins_size([with_rank((8, 8, 8), 3)])
    bad = keras_layer("SwinTransformerBlock", config(8, (8, 8), 2, 3, 1, 16), name="b")
    with pytest.raises(UserError, match=r"window_size=3 does not divide num_patch=\(8, 8\)"):
        make_op(bad, "channels_last")


def test_window_attention_on_its_own():
    c, heads, ws = 8, 2, 2
    w = swin_weights(c, heads, ws, 4)
    roles = ["table", "index", "qkv", "qkv_b", "proj", "proj_b"]
    paths = {
        "table": "vars/0",
        "index": "vars/1",
        "qkv": "qkv/vars/0",
        "qkv_b": "qkv/vars/1",
        "proj": "proj/vars/0",
        "proj_b": "proj/vars/1",
    }
    cfg = {
        "dim": c,
        "window_size": [ws, ws],
        "num_heads": heads,
        "qkv_bias": True,
        "qk_scale": None,
        "attn_drop": 0,
        "proj_drop": 0,
    }
    layer = keras_layer(
        "WindowAttention",
        cfg,
        [w[r] for r in roles],
        weight_names=[f"wa/{paths[r]}" for r in roles],
        name="wa",
    )
    windows = random(3, ws * ws, c)
    out = convert_layer(layer, [sequence(windows, (ws, ws))], ranks=[3], dynamic=False)
    np.testing.assert_allclose(unsequence(out), attention(windows, w, heads, ws), atol=1e-4)

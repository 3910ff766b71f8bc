"""keras-unet-collection's Swin transformer: SwinTransformerBlock and WindowAttention.

A block works on a (num_patch) grid of tokens, stored [N, C, H, W]:
  x + attention(LayerNorm(x)) then x + MLP(LayerNorm(x)), where attention is
  roll by -shift along H and W -> split into ws x ws windows -> per window, multi-head
  self-attention with a relative position bias (and, when shifted, the mask that keeps
  windows from mixing wrapped-around regions) -> merge the windows -> roll back.
The window attention computes as the library does, in its own element order: the qkv and
projection Dense layers as MatMuls on [windows, ws * ws, C]. The relative position bias
(the table gathered by the stored index) and the shift mask are read from the file and
added as one constant [windows, heads, ws * ws, ws * ws].
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from unetkit.keras2onnx.keras_file import KerasLayer
from unetkit.keras2onnx.layers.base import (
    Config,
    Shape,
    ShapeMismatch,
    describe,
    rank_of,
    with_rank,
)
from unetkit.keras2onnx.layers.calls import call_arguments
from unetkit.keras2onnx.layers.functions import emit_activation
from unetkit.keras2onnx.layers.library import LibraryLayer
from unetkit.keras2onnx.layers.normalization import channel_layer_norm
from unetkit.keras2onnx.layers.patches import OnPatchGrid, dense_kernel
from unetkit.keras2onnx.layers.tensor_ops import roll
from unetkit.keras2onnx.layers.tensors import from_keras_order, reshape, to_keras_order, transpose
from unetkit.keras2onnx.onnx_graph import GraphBuilder, LazyTensor
from unetkit.keras2onnx.registry import register_layer

ATTENTION_FIELDS = frozenset(
    {"dim", "window_size", "num_heads", "qkv_bias", "qk_scale", "attn_drop", "proj_drop"}
)
BLOCK_EPSILON = 1e-5  # the block's LayerNormalization(epsilon=1e-5)


class WindowWeights:
    """The window attention's weights, under `prefix` in .keras files ('attn/' in a block)."""

    def __init__(
        self,
        config: Config,
        dim: int,
        heads: int,
        window: tuple[int, int],
        prefix: str,
        qkv_bias: bool,
    ) -> None:
        self.config, self.dim, self.heads, self.window = config, dim, heads, window
        self.prefix, self.qkv_bias = prefix, qkv_bias

    def get(self, shape: tuple[int, ...], legacy: str, keras: str) -> LazyTensor:
        return self.config.weight(shape, legacy, self.prefix + keras)

    def additive(self, mask: LazyTensor | None) -> LazyTensor:
        """bias[h, i, j] = table[index[i, j], h], plus mask[w, i, j] per window: [W, h, n, n]."""
        n = self.window[0] * self.window[1]
        rows = (2 * self.window[0] - 1) * (2 * self.window[1] - 1)
        table = self.get((rows, self.heads), "attn_pos", "vars/0")
        index = self.get((n, n), "attn_pos_ind", "vars/1")
        windows = 1 if mask is None else mask.shape[0]

        def load() -> np.ndarray:
            positions = np.rint(index.load()).astype(np.int64).reshape(-1)
            bias = table.load()[positions].reshape(n, n, self.heads).transpose(2, 0, 1)
            if mask is None:
                return bias[None]
            return bias[None] + mask.load()[:, None]

        return LazyTensor((windows, self.heads, n, n), np.dtype(np.float32), load)


def window_attention(
    g: GraphBuilder, x: str, w: WindowWeights, scale: float, mask: LazyTensor | None, base: str
) -> str:
    """Multi-head self-attention within each window: x [B * windows, n, C] -> the same."""
    n, c, heads = w.window[0] * w.window[1], w.dim, w.heads
    kernel = w.get((c, 3 * c), "attn_qkv/kernel", "qkv/vars/0")
    qkv = g.node("MatMul", [x, g.constant(f"{base}/qkv/kernel", kernel)], base)
    if w.qkv_bias:
        qkv = g.node(
            "Add",
            [qkv, g.constant(f"{base}/qkv/bias", w.get((3 * c,), "attn_qkv/bias", "qkv/vars/1"))],
            base,
        )
    qkv = transpose(g, reshape(g, qkv, [-1, n, 3, heads, c // heads], base), [2, 0, 3, 1, 4], base)
    q, k, v = (
        g.node("Gather", [qkv, g.constant(f"{base}/part", np.array(i, np.int64))], base, axis=0)
        for i in range(3)
    )
    q = g.node("Mul", [q, g.constant(f"{base}/scale", np.array(scale, np.float32))], base)
    scores = g.node("MatMul", [q, transpose(g, k, [0, 1, 3, 2], base)], base)  # [B', h, n, n]
    additive = g.constant(f"{base}/position_bias", w.additive(mask))
    windows = w.additive(mask).shape[0]
    scores = reshape(g, scores, [-1, windows, heads, n, n], base)
    scores = reshape(g, g.node("Add", [scores, additive], base), [-1, heads, n, n], base)
    probs = g.node("Softmax", [scores], base, axis=3)
    out = transpose(g, g.node("MatMul", [probs, v], base), [0, 2, 1, 3], base)
    out = reshape(g, out, [-1, n, c], base)
    proj = w.get((c, c), "attn_proj/kernel", "proj/vars/0")
    out = g.node("MatMul", [out, g.constant(f"{base}/proj/kernel", proj)], base)
    bias = w.get((c,), "attn_proj/bias", "proj/vars/1")
    return g.node("Add", [out, g.constant(f"{base}/proj/bias", bias)], base)


def _scale(config: Config, dim: int, heads: int) -> float:
    qk_scale = config.get("qk_scale")
    if qk_scale is not None and not isinstance(qk_scale, int | float):
        raise config.fail(f"qk_scale={qk_scale!r} is not a number or None")
    return float(qk_scale or (dim // heads) ** -0.5)


@register_layer("SwinTransformerBlock")
class SwinTransformerBlock(OnPatchGrid):
    FIELDS: ClassVar[frozenset[str]] = frozenset(
        {
            "dim",
            "num_patch",
            "num_heads",
            "window_size",
            "shift_size",
            "num_mlp",
            "qkv_bias",
            "qk_scale",
            "mlp_drop",
            "attn_drop",
            "proj_drop",
            "drop_path_prob",
        }
    )

    def __init__(self, layer: KerasLayer, layout: str) -> None:
        super().__init__(layer, layout)
        c = self.config
        self.dim = c.integer("dim", minimum=1)
        self.heads = c.integer("num_heads", minimum=1)
        self.window = c.integer("window_size", minimum=1)
        self.shift = c.integer("shift_size", 0)
        self.mlp = c.integer("num_mlp", minimum=1)
        self.qkv_bias = c.flag("qkv_bias", True)
        h, w = self.grid()
        if h % self.window or w % self.window:
            raise c.fail(
                f"window_size={self.window} does not divide num_patch=({h}, {w}) (supported: a "
                "window size that divides the patch grid)"
            )
        if self.shift >= self.window:
            raise c.fail(f"shift_size={self.shift} is not below window_size={self.window}")
        if self.dim % self.heads:
            raise c.fail(f"dim={self.dim} is not a multiple of num_heads={self.heads}")
        self.scale = _scale(c, self.dim, self.heads)

    def output_shape(self, shapes: list[Shape]) -> Shape:
        shape = self.single(shapes)
        self.check_grid(shape)
        if shape[0] != self.dim:
            raise self.config.fail(f"dim={self.dim} for tokens of {shape[0]} features")
        h, w = self.grid()
        return with_rank((self.dim, h, w), 3)

    def emit(self, g: GraphBuilder, inputs: list[str], shapes: list[Shape]) -> str:
        c, base = self.config, self.name
        h, w = self.grid()
        shape = with_rank((self.dim, h, w), 3)
        x = self.on_grid(g, inputs[0], shapes[0])
        norm1 = (
            c.weight((self.dim,), "norm1/gamma", "norm1/vars/0"),
            c.weight((self.dim,), "norm1/beta", "norm1/vars/1"),
        )
        y = channel_layer_norm(g, x, shape, norm1, BLOCK_EPSILON, f"{base}/norm1")
        y = self._shifted_window_attention(g, y)
        x = g.node("Add", [x, y], base)
        norm2 = (
            c.weight((self.dim,), "norm2/gamma", "norm2/vars/0"),
            c.weight((self.dim,), "norm2/beta", "norm2/vars/1"),
        )
        y = channel_layer_norm(g, x, shape, norm2, BLOCK_EPSILON, f"{base}/norm2")
        return g.node("Add", [x, self._mlp(g, y)], base)

    def _shifted_window_attention(self, g: GraphBuilder, x: str) -> str:
        base, ws, s = f"{self.name}/attn", self.window, self.shift
        h, w = self.grid()
        if s:
            x = roll(g, roll(g, x, -s, 2, h, base), -s, 3, w, base)
        x = reshape(g, x, [0, self.dim, h // ws, ws, w // ws, ws], base)
        x = reshape(g, transpose(g, x, [0, 2, 4, 3, 5, 1], base), [-1, ws * ws, self.dim], base)
        weights = WindowWeights(self.config, self.dim, self.heads, (ws, ws), "attn/", self.qkv_bias)
        mask = None
        if s:
            count = (h // ws) * (w // ws)
            mask = self.config.weight((count, ws * ws, ws * ws), "attn_mask", "vars/0")
        x = window_attention(g, x, weights, self.scale, mask, base)
        x = reshape(g, x, [-1, h // ws, w // ws, ws, ws, self.dim], base)
        x = reshape(g, transpose(g, x, [0, 5, 1, 3, 2, 4], base), [-1, self.dim, h, w], base)
        if s:
            x = roll(g, roll(g, x, s, 2, h, base), s, 3, w, base)
        return x

    def _mlp(self, g: GraphBuilder, x: str) -> str:
        c, base = self.config, f"{self.name}/mlp"
        for i, (units, prior) in enumerate(((self.mlp, self.dim), (self.dim, self.mlp))):
            kernel = c.weight((prior, units), f"mlp_{i}/kernel", f"mlp/fc{i + 1}/vars/0")
            bias = c.weight((units,), f"mlp_{i}/bias", f"mlp/fc{i + 1}/vars/1")
            names = [
                x,
                g.constant(f"{base}/fc{i + 1}/kernel", dense_kernel(kernel)),
                g.constant(f"{base}/fc{i + 1}/bias", bias),
            ]
            x = g.node("Conv", names, base, kernel_shape=[1, 1])
            if i == 0:
                x = emit_activation(g, x, "gelu", base, 1)
        return x


@register_layer("WindowAttention")
class WindowAttention(LibraryLayer):
    """The library's window attention on its own: self-attention over a (batch, ws * ws, C)
    sequence with the relative position bias (called without a mask)."""

    FIELDS: ClassVar[frozenset[str]] = ATTENTION_FIELDS

    def __init__(self, layer: KerasLayer, layout: str) -> None:
        super().__init__(layer, layout)
        c = self.config
        self.dim = c.integer("dim", minimum=1)
        self.heads = c.integer("num_heads", minimum=1)
        self.window = c.pair("window_size")
        if self.dim % self.heads:
            raise c.fail(f"dim={self.dim} is not a multiple of num_heads={self.heads}")
        arguments = call_arguments(c, ("x", "mask"))
        if arguments.get("mask") is not None:
            raise c.fail(
                "called with a mask (supported: the block's own, inside SwinTransformerBlock)"
            )
        self.scale = _scale(c, self.dim, self.heads)

    def output_shape(self, shapes: list[Shape]) -> Shape:
        shape = self.single(shapes)
        n = self.window[0] * self.window[1]
        length = None if None in shape[1:] else shape[1] * shape[2]  # type: ignore[operator]
        if rank_of(shape) != 3 or shape[0] != self.dim or length not in (None, n):
            raise ShapeMismatch(
                f"layer {self.name!r} (WindowAttention) attends over {n} tokens of {self.dim} "
                f"features and got {describe(shape)} (C, h, w)"
            )
        return shape

    def emit(self, g: GraphBuilder, inputs: list[str], shapes: list[Shape]) -> str:
        qkv_bias = self.config.flag("qkv_bias", True)
        weights = WindowWeights(self.config, self.dim, self.heads, self.window, "", qkv_bias)
        x = to_keras_order(g, inputs[0], shapes[0], self.layout, self.name)
        y = window_attention(g, x, weights, self.scale, None, self.name)
        return from_keras_order(g, y, shapes[0], self.layout, self.name, like=inputs[0])

"""MultiHeadAttention: self- and cross-attention over the tokens of a sequence or the pixels
of a map, with an attention mask or a causal one.

Keras's einsum projections become 1x1 convolutions on the stored [N, D, h, w] tensors:
query, key and value kernels [D, heads, dim] -> Conv [heads * dim, D, 1, 1], the output
kernel [heads, dim, out] -> Conv [out, heads * dim, 1, 1]. In between, per head:
softmax(q k^T / sqrt(key_dim)) v as two MatMuls, the query scaled first as Keras does.
tf-keras and Keras 3 keep the same weights under different names (legacy HDF5:
'query/kernel'; .keras: '_query_dense/vars/0' in tf-keras, 'query_dense/vars/0' in Keras 3).
"""

from __future__ import annotations

import math

import numpy as np
from onnx import TensorProto

from unetkit.keras2onnx.keras_file import KerasLayer
from unetkit.keras2onnx.layers.base import (
    Config,
    Op,
    Shape,
    ShapeMismatch,
    describe,
    rank_of,
    tokens,
    with_rank,
)
from unetkit.keras2onnx.layers.calls import call_arguments, slot
from unetkit.keras2onnx.layers.tensors import int64s, regrid, reshape, to_keras_order, transpose
from unetkit.keras2onnx.onnx_graph import GraphBuilder, LazyTensor
from unetkit.keras2onnx.registry import register_layer

PARAMETERS = (
    "query",
    "value",
    "key",
    "query_mask",
    "value_mask",
    "key_mask",
    "attention_mask",
    "return_attention_scores",
    "use_causal_mask",
)
MASKED = -1e9  # what Keras's softmax gives masked scores
WEIGHTS = {
    "query": ("query/{}", "query_dense/vars/{}"),
    "key": ("key/{}", "key_dense/vars/{}"),
    "value": ("value/{}", "value_dense/vars/{}"),
    "output": ("attention_output/{}", "output_dense/vars/{}"),
}


def projection_to_onnx(kernel: LazyTensor) -> LazyTensor:
    """[D, heads, dim] -> Conv [heads * dim, D, 1, 1]."""
    d = kernel.shape[0]
    out = int(np.prod(kernel.shape[1:]))
    return LazyTensor(
        (out, d, 1, 1), kernel.dtype, lambda: kernel.load().reshape(d, out).T.reshape(out, d, 1, 1)
    )


def output_to_onnx(kernel: LazyTensor) -> LazyTensor:
    """[heads, dim, out] -> Conv [out, heads * dim, 1, 1]."""
    out = kernel.shape[-1]
    inner = int(np.prod(kernel.shape[:-1]))
    return LazyTensor(
        (out, inner, 1, 1),
        kernel.dtype,
        lambda: kernel.load().reshape(inner, out).T.reshape(out, inner, 1, 1),
    )


def causal_mask(g: GraphBuilder, scores: str, base: str) -> str:
    """[T, S] booleans, query i sees key j where j <= i (Keras's use_causal_mask)."""
    zero = g.constant(f"{base}/zero", np.array(0, np.int64))
    step = g.constant(f"{base}/step", np.array(1, np.int64))

    def positions(axis: int, unsqueeze: int) -> str:
        size = g.node(
            "Gather", [g.node("Shape", [scores], base), int64s(g, f"{base}/axis", [axis])], base
        )
        size = g.node("Squeeze", [size], base)
        ranged = g.node("Range", [zero, size, step], base)
        return g.node("Unsqueeze", [ranged, int64s(g, f"{base}/unsqueeze", [unsqueeze])], base)

    rows, cols = positions(2, 1), positions(3, 0)
    return g.node("Not", [g.node("Greater", [cols, rows], base)], base)


@register_layer("MultiHeadAttention")
class MultiHeadAttention(Op):
    """Keras's MultiHeadAttention at inference (dropout off)."""

    def __init__(self, layer: KerasLayer, layout: str) -> None:
        c = Config(layer)
        self.heads = c.integer("num_heads", minimum=1)
        self.key_dim = c.integer("key_dim", minimum=1)
        value_dim = c.get("value_dim")
        self.value_dim = self.key_dim if value_dim is None else c.integer("value_dim", minimum=1)
        self.use_bias = c.flag("use_bias", True)
        self.out_dim = self._output_dim(c)
        if c.flag("use_gate", False):
            raise c.fail(
                "use_gate=True is not supported (supported: use_gate=False, Keras's default)"
            )
        if c.get("sliding_window") is not None:
            raise c.fail(
                f"sliding_window={c.get('sliding_window')!r} is not supported (supported: "
                "sliding_window=None, attention over every token)"
            )
        self.arguments = call_arguments(c, PARAMETERS)
        if self.arguments.get("return_attention_scores"):
            raise c.fail(
                "return_attention_scores=True gives two outputs; not supported (supported: "
                "return_attention_scores=False)"
            )
        for name in ("query_mask", "value_mask", "key_mask"):
            if self.arguments.get(name) is not None:
                raise c.fail(f"{name} is not supported (supported: attention_mask)")
        self.causal = bool(self.arguments.get("use_causal_mask", False))
        self.slots = {
            name: slot(c, self.arguments, name)
            for name in ("query", "value", "key", "attention_mask")
        }
        if self.slots["query"] is None or self.slots["value"] is None:
            raise c.fail("called without a query and a value")
        self.config = c
        super().__init__(layer, layout)

    @staticmethod
    def _output_dim(c: Config) -> int | None:
        value = c.get("output_shape")
        if isinstance(value, list | tuple) and len(value) == 1:
            value = value[0]
        if value is None or (isinstance(value, int) and not isinstance(value, bool) and value > 0):
            return value
        raise c.fail(
            f"output_shape={value!r} is not supported (supported: None or one integer, the "
            "size of the output's last axis)"
        )

    def _check_axes(self, shape: Shape) -> None:
        axes = self.config.get("attention_axes")
        rank = rank_of(shape)
        if rank == 2:
            raise self.config.fail("attention on a (batch, C) vector has no tokens to attend over")
        if rank == 4 and self.layout == "channels_first":
            raise self.config.fail(
                "attention on a channels_first map is not supported (channels_last)"
            )
        every = list(range(1, rank - 1))
        if (
            axes is not None
            and [a % rank for a in (axes if isinstance(axes, list) else [axes])] != every
        ):
            raise self.config.fail(
                f"attention_axes={axes!r} on a rank-{rank} input is not supported (supported: "
                f"None or {every}, attention over every axis between the batch and the features)"
            )

    def _inputs(self, shapes: list[Shape]) -> dict[str, Shape]:
        found = {
            name: shapes[i] for name, i in self.slots.items() if i is not None and i < len(shapes)
        }
        if len(found) != sum(i is not None for i in self.slots.values()):
            raise self.config.fail(f"expected inputs {self.slots}, got {len(shapes)}")
        found.setdefault("key", found["value"])
        return found

    def output_shape(self, shapes: list[Shape]) -> Shape:
        found = self._inputs(shapes)
        for name in ("query", "value", "key"):
            self._check_axes(found[name])
        value, key = found["value"], found["key"]
        if tokens(value) is not None and tokens(key) is not None and tokens(value) != tokens(key):
            raise ShapeMismatch(
                f"layer {self.name!r} (MultiHeadAttention) has keys {describe(key)} and values "
                f"{describe(value)} of different lengths"
            )
        query = found["query"]
        out = self.out_dim or query[0]
        return with_rank((out, query[1], query[2]), rank_of(query))

    def _project(self, g: GraphBuilder, x: str, shape: Shape, role: str, dim: int) -> str:
        """[N, D, h, w] -> [N, heads, dim, h * w]."""
        legacy, keras = WEIGHTS[role]
        kernel = self.config.weight(
            (shape[0], self.heads, dim), legacy.format("kernel"), keras.format(0)
        )
        names = [x, g.constant(f"{self.name}/{role}/kernel", projection_to_onnx(kernel))]
        if self.use_bias:
            bias = self.config.weight((self.heads, dim), legacy.format("bias"), keras.format(1))
            flat = LazyTensor((self.heads * dim,), bias.dtype, lambda: bias.load().reshape(-1))
            names.append(g.constant(f"{self.name}/{role}/bias", flat))
        y = g.node("Conv", names, f"{self.name}/{role}", kernel_shape=[1, 1])
        return reshape(g, y, [0, self.heads, dim, -1], f"{self.name}/{role}")

    def emit(self, g: GraphBuilder, inputs: list[str], shapes: list[Shape]) -> str:
        found = self._inputs(shapes)
        tensors = {name: inputs[i] for name, i in self.slots.items() if i is not None}
        tensors.setdefault("key", tensors["value"])
        base = self.name
        q = self._project(g, tensors["query"], found["query"], "query", self.key_dim)
        k = self._project(g, tensors["key"], found["key"], "key", self.key_dim)
        v = self._project(g, tensors["value"], found["value"], "value", self.value_dim)
        scale = g.constant(f"{base}/scale", np.array(1.0 / math.sqrt(self.key_dim), np.float32))
        q = g.node("Mul", [q, scale], base)
        scores = g.node("MatMul", [transpose(g, q, [0, 1, 3, 2], base), k], base)  # [N, h, T, S]
        scores = self._masked(g, scores, tensors, found)
        probs = g.node("Softmax", [scores], base, axis=3)
        out = g.node("MatMul", [probs, transpose(g, v, [0, 1, 3, 2], base)], base)  # [N, h, T, v]
        out = transpose(g, out, [0, 1, 3, 2], base)  # [N, h, v, T]
        out = reshape(g, out, [0, self.heads * self.value_dim, -1], base)
        out = regrid(g, out, (found["query"][1], found["query"][2]), tensors["query"], base)
        return self._output(g, out, found["query"])

    def _masked(
        self, g: GraphBuilder, scores: str, tensors: dict[str, str], found: dict[str, Shape]
    ) -> str:
        base = self.name
        keep: str | None = None
        if "attention_mask" in tensors:
            mask = to_keras_order(
                g, tensors["attention_mask"], found["attention_mask"], self.layout, base
            )
            mask = g.node("Unsqueeze", [mask, int64s(g, f"{base}/heads_axis", [1])], base)
            half = g.constant(f"{base}/half", np.array(0.5, np.float32))
            keep = g.node(
                "Greater", [g.node("Cast", [mask], base, to=TensorProto.FLOAT), half], base
            )
        if self.causal:
            causal = causal_mask(g, scores, base)
            keep = causal if keep is None else g.node("And", [keep, causal], base)
        if keep is None:
            return scores
        masked = g.constant(f"{base}/masked", np.array(MASKED, np.float32))
        return g.node("Where", [keep, scores, masked], base)

    def _output(self, g: GraphBuilder, x: str, query: Shape) -> str:
        out = self.out_dim or query[0]
        legacy, keras = WEIGHTS["output"]
        kernel = self.config.weight(
            (self.heads, self.value_dim, out), legacy.format("kernel"), keras.format(0)
        )
        names = [x, g.constant(f"{self.name}/output/kernel", output_to_onnx(kernel))]
        if self.use_bias:
            bias = self.config.weight((out,), legacy.format("bias"), keras.format(1))
            names.append(g.constant(f"{self.name}/output/bias", bias))
        return g.node("Conv", names, f"{self.name}/output", kernel_shape=[1, 1])

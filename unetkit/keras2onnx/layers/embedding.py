"""Embedding: a row of a table per integer index (Keras casts float indices to integers).

A (batch, L) index vector becomes a (batch, L, D) sequence, a (batch, L, W) index tensor a
(batch, L, W, D) map. A position embedding Keras computed while building a functional model
(`Embedding(L, D)(range(L))`) is not a layer of the saved model but a constant added to the
tokens: see tensor_ops.Arithmetic.
"""

from __future__ import annotations

from onnx import TensorProto

from unetkit.keras2onnx.keras_file import KerasLayer
from unetkit.keras2onnx.layers.base import Config, Op, Shape, rank_of, tokens, with_rank
from unetkit.keras2onnx.layers.tensors import from_keras_order, to_keras_order
from unetkit.keras2onnx.onnx_graph import GraphBuilder
from unetkit.keras2onnx.registry import register_layer


@register_layer("Embedding")
class Embedding(Op):
    def __init__(self, layer: KerasLayer, layout: str) -> None:
        c = Config(layer)
        self.rows = c.integer("input_dim", minimum=1)
        self.dim = c.integer("output_dim", minimum=1)
        if c.flag("mask_zero", False):
            raise c.fail(
                "mask_zero=True masks later layers, which the kit does not (supported: "
                "mask_zero=False)"
            )
        self.config = c
        super().__init__(layer, layout)

    def output_shape(self, shapes: list[Shape]) -> Shape:
        shape = self.single(shapes)
        rank = rank_of(shape)
        if rank == 2:
            return with_rank((self.dim, shape[0], 1), 3)
        if rank == 3 and self.layout == "channels_last":
            return (self.dim, tokens(shape), shape[0])
        raise self.config.fail(
            f"indices of Keras rank {rank} (supported: (batch, L) and (batch, L, W) indices)"
        )

    def emit(self, g: GraphBuilder, inputs: list[str], shapes: list[Shape]) -> str:
        (table,) = self.config.weights([(self.rows, self.dim)])
        out = self.output_shape(shapes)
        indices = to_keras_order(g, inputs[0], shapes[0], self.layout, self.name)
        indices = g.node("Cast", [indices], self.name, to=TensorProto.INT64)
        rows = g.node(
            "Gather", [g.constant(f"{self.name}/embeddings", table), indices], self.name, axis=0
        )
        return from_keras_order(g, rows, out, self.layout, self.name)

"""Keras activation functions (the `activation=` argument and the Activation layer) as ONNX."""

from __future__ import annotations

import numpy as np

from unetkit.keras2onnx.onnx_graph import GraphBuilder

ACTIVATIONS = (
    "linear",
    "relu",
    "sigmoid",
    "softmax",
    "tanh",
    "elu",
    "selu",
    "swish",
    "silu",
)


def emit_activation(
    g: GraphBuilder,
    x: str,
    kind: str,
    base: str,
    softmax_axis: int,
    slope: float = 0.0,
    max_value: float | None = None,
) -> str:
    if kind == "linear":
        return x
    if kind == "relu":
        y = g.node("LeakyRelu", [x], base, alpha=slope) if slope else g.node("Relu", [x], base)
        if max_value is not None:
            limit = g.constant(f"{base}/max_value", np.array(max_value, dtype=np.float32))
            y = g.node("Clip", [y, "", limit], base)
        return y
    if kind in ("swish", "silu"):
        return g.node("Mul", [x, g.node("Sigmoid", [x], base)], base)
    if kind == "softmax":
        return g.node("Softmax", [x], base, axis=softmax_axis)
    if kind == "elu":
        return g.node("Elu", [x], base, alpha=1.0)
    op_type = {"sigmoid": "Sigmoid", "tanh": "Tanh", "selu": "Selu"}[kind]
    return g.node(op_type, [x], base)

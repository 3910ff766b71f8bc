"""Keras activation functions (the `activation=` argument and the Activation layer) as ONNX.

Every function is written with opset-13 operators, so the model runs wherever the lowest
supported opset does. Two definitions depend on the Keras that wrote the file:
`hard_sigmoid` is clip(0.2x + 0.5, 0, 1) in tf.keras 2.x and relu6(x + 3) / 6 in Keras 3.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from unetkit.keras2onnx.onnx_graph import GraphBuilder

ACTIVATIONS = (
    "linear",
    "relu",
    "relu6",
    "sigmoid",
    "softmax",
    "tanh",
    "elu",
    "selu",
    "swish",
    "silu",
    "gelu",
    "hard_sigmoid",
    "hard_swish",
    "hard_silu",
    "mish",
    "softplus",
    "softsign",
)
# (alpha, beta) of ONNX HardSigmoid, max(0, min(1, alpha * x + beta)), per Keras version.
HARD_SIGMOID = {2: (0.2, 0.5), 3: (1.0 / 6.0, 0.5)}


def function_name(value: Any) -> str | None:
    """The name of an activation as a config stores it: a string, None (linear), or the
    dict Keras 3 writes for a function, {'class_name': 'function', 'config': 'swish', ...}.

    A function is known by its name only; the file holds no code for it.
    """
    if value is None:
        return "linear"
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and value.get("class_name") == "function":
        name = value.get("config")
        return name if isinstance(name, str) else None
    return None


def activation_kind(name: str, keras_major: int) -> str:
    """The kind `emit_activation` takes: the name, made specific where Keras 2 and 3 differ."""
    if name == "hard_sigmoid":
        return f"hard_sigmoid_keras{2 if keras_major == 2 else 3}"
    return {"silu": "swish", "hard_silu": "hard_swish"}.get(name, name)


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
        return _relu(g, x, base, slope, max_value)
    if kind == "relu6":
        return _relu(g, x, base, 0.0, 6.0)
    if kind == "softmax":
        return g.node("Softmax", [x], base, axis=softmax_axis)
    if kind in SIMPLE:
        return g.node(SIMPLE[kind][0], [x], base, **SIMPLE[kind][1])
    if kind in COMPOSED:
        return COMPOSED[kind](g, x, base)
    raise ValueError(f"unknown activation kind {kind!r}")


def _relu(g: GraphBuilder, x: str, base: str, slope: float, max_value: float | None) -> str:
    y = g.node("LeakyRelu", [x], base, alpha=slope) if slope else g.node("Relu", [x], base)
    if max_value is not None:
        limit = g.constant(f"{base}/max_value", np.array(max_value, dtype=np.float32))
        y = g.node("Clip", [y, "", limit], base)
    return y


def _scalar(g: GraphBuilder, base: str, label: str, value: float) -> str:
    return g.constant(f"{base}/{label}", np.array(value, dtype=np.float32))


def _swish(g: GraphBuilder, x: str, base: str) -> str:
    return g.node("Mul", [x, g.node("Sigmoid", [x], base)], base)


def _hard_swish(g: GraphBuilder, x: str, base: str) -> str:
    """x * relu6(x + 3) / 6 (ONNX HardSwish needs opset 14)."""
    alpha, beta = HARD_SIGMOID[3]
    return g.node("Mul", [x, g.node("HardSigmoid", [x], base, alpha=alpha, beta=beta)], base)


def _mish(g: GraphBuilder, x: str, base: str) -> str:
    """x * tanh(softplus(x)) (ONNX Mish needs opset 18)."""
    return g.node("Mul", [x, g.node("Tanh", [g.node("Softplus", [x], base)], base)], base)


def _gelu(g: GraphBuilder, x: str, base: str) -> str:
    """0.5 x (1 + erf(x / sqrt(2))): Keras's `gelu`, approximate=False."""
    scaled = g.node("Div", [x, _scalar(g, base, "sqrt2", math.sqrt(2.0))], base)
    one_plus = g.node("Add", [g.node("Erf", [scaled], base), _scalar(g, base, "one", 1.0)], base)
    half_x = g.node("Mul", [x, _scalar(g, base, "half", 0.5)], base)
    return g.node("Mul", [half_x, one_plus], base)


def _gelu_tanh(g: GraphBuilder, x: str, base: str) -> str:
    """0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))): GELU with approximate=True."""
    cube = g.node("Mul", [g.node("Mul", [x, x], base), x], base)
    inner = g.node("Add", [x, g.node("Mul", [cube, _scalar(g, base, "c", 0.044715)], base)], base)
    scaled = g.node("Mul", [inner, _scalar(g, base, "k", math.sqrt(2.0 / math.pi))], base)
    one_plus = g.node("Add", [g.node("Tanh", [scaled], base), _scalar(g, base, "one", 1.0)], base)
    half_x = g.node("Mul", [x, _scalar(g, base, "half", 0.5)], base)
    return g.node("Mul", [half_x, one_plus], base)


SIMPLE: dict[str, tuple[str, dict[str, object]]] = {
    "sigmoid": ("Sigmoid", {}),
    "tanh": ("Tanh", {}),
    "selu": ("Selu", {}),
    "elu": ("Elu", {"alpha": 1.0}),
    "softplus": ("Softplus", {}),
    "softsign": ("Softsign", {}),
    "hard_sigmoid_keras2": ("HardSigmoid", {"alpha": HARD_SIGMOID[2][0], "beta": 0.5}),
    "hard_sigmoid_keras3": ("HardSigmoid", {"alpha": HARD_SIGMOID[3][0], "beta": 0.5}),
}
COMPOSED = {
    "swish": _swish,
    "hard_swish": _hard_swish,
    "mish": _mish,
    "gelu": _gelu,
    "gelu_tanh": _gelu_tanh,
}

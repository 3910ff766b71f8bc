"""Run one layer converter on its own, and numpy references of what Keras computes.

`convert_layer` builds the ONNX graph of a single Keras layer (NCHW float32 in and out, as
inside the kit's graph) through the registry, checks its declared output shape, and runs
it in ONNX Runtime. The references follow TensorFlow's definitions (SAME_UPPER padding,
average pooling over the pixels inside the image, half-pixel bilinear resizing), written
with plain numpy so that these tests need no TensorFlow.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper

from unetkit.keras2onnx.keras_file import KerasLayer, Weight
from unetkit.keras2onnx.layers.base import Shape, with_rank
from unetkit.keras2onnx.onnx_graph import GraphBuilder
from unetkit.keras2onnx.registry import make_op

RNG = np.random.default_rng(7)


def random(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def keras_layer(
    class_name: str,
    config: dict[str, Any],
    weights: Sequence[np.ndarray] = (),
    *,
    keras_major: int = 3,
    call_kwargs: dict[str, Any] | None = None,
    weight_names: Sequence[str] | None = None,
    name: str = "layer",
    operation: bool = False,
) -> KerasLayer:
    """A layer as the reader gives it; `operation`: a Keras 3 operation (keras.ops.add)."""
    names = weight_names or [f"{name}/{i}" for i in range(len(weights))]
    return KerasLayer(
        name=name,
        class_name=class_name,
        config=config,
        calls=[],
        weights=[Weight(n, w.shape, lambda w=w: w) for n, w in zip(names, weights, strict=True)],
        call_kwargs=[] if call_kwargs is None else [call_kwargs],
        keras_major=keras_major,
        operation=operation,
    )


def input_shape(x: np.ndarray, dynamic: bool, rank: int = 4) -> Shape:
    """The converter's shape of an NCHW array: an image, a (batch, C) vector stored as
    [N, C, 1, 1], or a (batch, L, D) sequence stored as [N, D, h, w] (L = h * w tokens)."""
    if rank == 2 or (rank == 3 and x.shape[2:] == (1, 1)):
        return with_rank((x.shape[1], 1, 1), rank)
    shape = (x.shape[1], None, None) if dynamic else (x.shape[1], x.shape[2], x.shape[3])
    return with_rank(shape, rank)


def sequence(x: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """A Keras (batch, L, D) sequence as the graph stores it: [N, D, h, w]."""
    n, length, depth = x.shape
    assert length == grid[0] * grid[1]
    return np.ascontiguousarray(x.transpose(0, 2, 1)).reshape(n, depth, *grid)


def unsequence(x: np.ndarray) -> np.ndarray:
    """The graph's [N, D, h, w] sequence as Keras's (batch, L, D)."""
    n, depth = x.shape[:2]
    return x.reshape(n, depth, -1).transpose(0, 2, 1)


def convert_layer(
    layer: KerasLayer,
    inputs: Sequence[np.ndarray],
    layout: str = "channels_last",
    dynamic: bool = True,
    ranks: Sequence[int] | None = None,
) -> np.ndarray:
    """The converted layer's output for NCHW `inputs`.

    dynamic: H and W unknown while converting (what the kit exports), else the inputs' own.
    ranks: the Keras ranks of the inputs (default 4; a (batch, C) vector is [N, C, 1, 1]).
    """
    op = make_op(layer, layout)
    ranks = ranks or [4] * len(inputs)
    shapes = [input_shape(x, dynamic, r) for x, r in zip(inputs, ranks, strict=True)]
    g = GraphBuilder()
    names = [g.reserve(f"x{i}") for i in range(len(inputs))]
    out = op.emit(g, names, shapes)
    graph = helper.make_graph(
        g.nodes,
        "layer",
        [
            helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", s[0], "H", "W"])
            for n, s in zip(names, shapes, strict=True)
        ],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)],
        initializer=list(g.tensors()),
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (result,) = session.run(None, {n: x for n, x in zip(names, inputs, strict=True)})
    static = [input_shape(x, False, r) for x, r in zip(inputs, ranks, strict=True)]
    declared = op.output_shape(static)
    assert tuple(declared) == result.shape[1:], (declared, result.shape)
    return result


# ---- references (NCHW float arrays; Keras kernels as Keras stores them) ----------------------


def same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow 'same': the odd extra pixel goes at the end (bottom/right)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _pad_hw(
    x: np.ndarray, pads: tuple[tuple[int, int], tuple[int, int]], value: float
) -> np.ndarray:
    return np.pad(x, ((0, 0), (0, 0), *pads), constant_values=value)


def conv2d(
    x: np.ndarray,
    kernel: np.ndarray,
    bias: np.ndarray | None = None,
    strides: tuple[int, int] = (1, 1),
    padding: str = "valid",
    dilation: tuple[int, int] = (1, 1),
) -> np.ndarray:
    """kernel [kh, kw, in, out]."""
    kh, kw = kernel.shape[:2]
    eff = ((kh - 1) * dilation[0] + 1, (kw - 1) * dilation[1] + 1)
    if padding == "same":
        x = _pad_hw(x, tuple(same_pads(x.shape[2 + i], eff[i], strides[i]) for i in range(2)), 0.0)
    oh = (x.shape[2] - eff[0]) // strides[0] + 1
    ow = (x.shape[3] - eff[1]) // strides[1] + 1
    out = np.zeros((x.shape[0], kernel.shape[3], oh, ow), np.float64)
    for dy in range(kh):
        for dx in range(kw):
            y0, x0 = dy * dilation[0], dx * dilation[1]
            patch = x[
                :,
                :,
                y0 : y0 + (oh - 1) * strides[0] + 1 : strides[0],
                x0 : x0 + (ow - 1) * strides[1] + 1 : strides[1],
            ]
            out += np.einsum("nihw,io->nohw", patch, kernel[dy, dx])
    if bias is not None:
        out += bias[None, :, None, None]
    return out.astype(np.float32)


def depthwise_conv2d(
    x: np.ndarray,
    kernel: np.ndarray,
    bias: np.ndarray | None = None,
    strides: tuple[int, int] = (1, 1),
    padding: str = "valid",
    dilation: tuple[int, int] = (1, 1),
) -> np.ndarray:
    """kernel [kh, kw, C, M]: output channel c*M + m is channel c through filter m."""
    _, _, c, m = kernel.shape
    outs = []
    for channel in range(c):
        for k in range(m):
            single = kernel[:, :, channel : channel + 1, k : k + 1]
            outs.append(
                conv2d(x[:, channel : channel + 1], single, None, strides, padding, dilation)
            )
    out = np.concatenate(outs, axis=1)
    if bias is not None:
        out = out + bias[None, :, None, None]
    return out.astype(np.float32)


def conv2d_transpose_padded(
    x: np.ndarray,
    kernel: np.ndarray,
    bias: np.ndarray | None,
    strides: tuple[int, int],
    padding: str,
    output_padding: tuple[int, int],
) -> np.ndarray:
    """Conv2DTranspose with output_padding, as TensorFlow computes it: the full transposed
    convolution ((in - 1)*s + k), cropped to Keras's size (in - 1)*s + k - 2*pad + p (pad
    k // 2 for 'same') with the crop's odd pixel at the end, or extended with zeros."""
    n, _, h, w = x.shape
    kh, kw = kernel.shape[:2]
    full = np.zeros((n, kernel.shape[2], (h - 1) * strides[0] + kh, (w - 1) * strides[1] + kw))
    for dy in range(kh):
        for dx in range(kw):
            full[
                :,
                :,
                dy : dy + (h - 1) * strides[0] + 1 : strides[0],
                dx : dx + (w - 1) * strides[1] + 1 : strides[1],
            ] += np.einsum("nihw,oi->nohw", x, kernel[dy, dx])
    sizes, begins = [], []
    for size, k, s, p in (
        (h, kh, strides[0], output_padding[0]),
        (w, kw, strides[1], output_padding[1]),
    ):
        pad = k // 2 if padding == "same" else 0
        out = (size - 1) * s + k - 2 * pad + p
        total = (size - 1) * s + k - out
        sizes.append(out)
        begins.append(max(total, 0) // 2)
    full = np.pad(
        full,
        (
            (0, 0),
            (0, 0),
            (0, max(sizes[0] - full.shape[2], 0)),
            (0, max(sizes[1] - full.shape[3], 0)),
        ),
    )
    out = full[:, :, begins[0] : begins[0] + sizes[0], begins[1] : begins[1] + sizes[1]]
    if bias is not None:
        out = out + bias[None, :, None, None]
    return out.astype(np.float32)


def conv2d_transpose(
    x: np.ndarray,
    kernel: np.ndarray,
    bias: np.ndarray | None = None,
    strides: tuple[int, int] = (1, 1),
    padding: str = "valid",
) -> np.ndarray:
    """kernel [kh, kw, out, in] (Keras's Conv2DTranspose layout); Keras's output sizes."""
    n, _, h, w = x.shape
    kh, kw = kernel.shape[:2]
    sh, sw = strides
    full = np.zeros((n, kernel.shape[2], (h - 1) * sh + kh, (w - 1) * sw + kw), np.float64)
    for dy in range(kh):
        for dx in range(kw):
            full[:, :, dy : dy + (h - 1) * sh + 1 : sh, dx : dx + (w - 1) * sw + 1 : sw] += (
                np.einsum("nihw,oi->nohw", x, kernel[dy, dx])
            )
    sizes, begins = [], []
    for size, k, s in ((h, kh, sh), (w, kw, sw)):
        if padding == "same":
            sizes.append(size * s)
            begins.append(max(k - s, 0) // 2)
        else:
            sizes.append(size * s + max(k - s, 0))
            begins.append(0)
    # A kernel smaller than the stride leaves zeros at the end.
    full = np.pad(
        full,
        (
            (0, 0),
            (0, 0),
            (0, max(sizes[0] - full.shape[2], 0)),
            (0, max(sizes[1] - full.shape[3], 0)),
        ),
    )
    out = full[:, :, begins[0] : begins[0] + sizes[0], begins[1] : begins[1] + sizes[1]]
    if bias is not None:
        out = out + bias[None, :, None, None]
    return out.astype(np.float32)


def pool2d(
    x: np.ndarray,
    pool: tuple[int, int],
    strides: tuple[int, int],
    padding: str,
    kind: str,
) -> np.ndarray:
    """Max or average pooling; the average counts the pixels inside the image only."""
    if padding == "same":
        pads = tuple(same_pads(x.shape[2 + i], pool[i], strides[i]) for i in range(2))
        values = _pad_hw(x.astype(np.float64), pads, -np.inf if kind == "max" else 0.0)
        counts = _pad_hw(np.ones_like(x, np.float64), pads, 0.0)
    else:
        values, counts = x.astype(np.float64), np.ones_like(x, np.float64)
    oh = (values.shape[2] - pool[0]) // strides[0] + 1
    ow = (values.shape[3] - pool[1]) // strides[1] + 1
    windows = [
        (
            values[
                :,
                :,
                dy : dy + (oh - 1) * strides[0] + 1 : strides[0],
                dx : dx + (ow - 1) * strides[1] + 1 : strides[1],
            ],
            counts[
                :,
                :,
                dy : dy + (oh - 1) * strides[0] + 1 : strides[0],
                dx : dx + (ow - 1) * strides[1] + 1 : strides[1],
            ],
        )
        for dy in range(pool[0])
        for dx in range(pool[1])
    ]
    if kind == "max":
        return np.max([v for v, _ in windows], axis=0).astype(np.float32)
    return (sum(v for v, _ in windows) / sum(c for _, c in windows)).astype(np.float32)


def resize_bilinear_half_pixel(x: np.ndarray, scale: tuple[int, int]) -> np.ndarray:
    """tf.image.resize(method='bilinear'): sample at half-pixel centres, edges clamped."""

    def axis_weights(size: int, factor: int) -> np.ndarray:
        source = (np.arange(size * factor) + 0.5) / factor - 0.5
        source = np.clip(source, 0, size - 1)
        low = np.floor(source).astype(int)
        high = np.minimum(low + 1, size - 1)
        frac = source - low
        matrix = np.zeros((size * factor, size))
        matrix[np.arange(size * factor), low] += 1 - frac
        matrix[np.arange(size * factor), high] += frac
        return matrix

    rows = axis_weights(x.shape[2], scale[0])
    cols = axis_weights(x.shape[3], scale[1])
    return np.einsum("yh,nchw,xw->ncyx", rows, x.astype(np.float64), cols).astype(np.float32)


def resize_bicubic_half_pixel(x: np.ndarray, scale: tuple[int, int]) -> np.ndarray:
    """tf.image.resize(method='bicubic'): Keys' cubic (a = -0.5) at half-pixel centres; taps
    outside the image get weight 0 and the others are renormalized (TensorFlow 2)."""

    def keys(t: np.ndarray) -> np.ndarray:
        t = np.abs(t)
        a = -0.5
        return np.where(
            t <= 1,
            (a + 2) * t**3 - (a + 3) * t**2 + 1,
            np.where(t < 2, a * t**3 - 5 * a * t**2 + 8 * a * t - 4 * a, 0.0),
        )

    def axis_weights(size: int, factor: int) -> np.ndarray:
        matrix = np.zeros((size * factor, size))
        for out in range(size * factor):
            source = (out + 0.5) / factor - 0.5
            base = int(np.floor(source))
            taps = [base + d for d in (-1, 0, 1, 2)]
            weights = np.array([keys(source - t) if 0 <= t < size else 0.0 for t in taps])
            weights /= weights.sum()
            for t, wt in zip(taps, weights, strict=True):
                if 0 <= t < size:
                    matrix[out, t] += wt
        return matrix

    rows = axis_weights(x.shape[2], scale[0])
    cols = axis_weights(x.shape[3], scale[1])
    return np.einsum("yh,nchw,xw->ncyx", rows, x.astype(np.float64), cols).astype(np.float32)


def softmax(x: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def gelu(x: np.ndarray) -> np.ndarray:
    erf = np.vectorize(math.erf)
    return 0.5 * x * (1.0 + erf(x.astype(np.float64) / math.sqrt(2.0)))


def gelu_tanh(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def hard_sigmoid(x: np.ndarray, keras_major: int = 3) -> np.ndarray:
    """Keras 3: relu6(x + 3) / 6; tf.keras 2.x: clip(0.2 x + 0.5, 0, 1)."""
    if keras_major == 2:
        return np.clip(0.2 * x + 0.5, 0.0, 1.0)
    return np.clip(x + 3.0, 0.0, 6.0) / 6.0


def softplus(x: np.ndarray) -> np.ndarray:
    return np.log1p(np.exp(x))


ACTIVATIONS = {
    "linear": lambda x: x,
    "relu": lambda x: np.maximum(x, 0),
    "relu6": lambda x: np.clip(x, 0, 6),
    "gelu": gelu,
    "hard_sigmoid": hard_sigmoid,
    "hard_swish": lambda x: x * hard_sigmoid(x),
    "hard_silu": lambda x: x * hard_sigmoid(x),
    "mish": lambda x: x * np.tanh(softplus(x)),
    "softplus": softplus,
    "softsign": lambda x: x / (1 + np.abs(x)),
    "sigmoid": sigmoid,
    "tanh": np.tanh,
    "elu": lambda x: np.where(x > 0, x, np.expm1(x)),
    "selu": lambda x: 1.0507009873554805 * np.where(x > 0, x, 1.6732632423543772 * np.expm1(x)),
    "swish": lambda x: x * sigmoid(x),
    "silu": lambda x: x * sigmoid(x),
    "softmax": lambda x: softmax(x, axis=1),
}

"""The ONNX graph of a scheduled network, wrapped in the kit's I/O contract.

IMAGE uint8 NHWC -> Cast -> (x - mean) / std -> Transpose to NCHW -> layers ->
Transpose to NHWC -> PROB; MASK = PROB > threshold (one class) or argmax (several).
IMAGE may be uint16 or float32 instead (input_dtype).
The weights stay lazy in the GraphBuilder: the skeleton holds everything else.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper

from unetkit.core import INPUT_IMAGE, OUTPUT_MASK, OUTPUT_PROB, UserError
from unetkit.keras2onnx.layers.base import Op, Shape, ShapeMismatch, rank_of
from unetkit.keras2onnx.onnx_graph import GraphBuilder
from unetkit.keras2onnx.schedule import Schedule
from unetkit.keras2onnx.size_search import Sizes

MAX_CLASSES = 256  # MASK is uint8


@dataclass(frozen=True)
class Emitted:
    """The graph without its weights (`skeleton`), the builder holding them, the classes."""

    skeleton: onnx.ModelProto
    graph: GraphBuilder
    classes: int


def emit_onnx(
    plan: Schedule,
    channels: int,
    sizes: Sizes,
    normalization: tuple[np.ndarray, np.ndarray],
    threshold: float,
    opset: int,
    input_dtype: str,
) -> Emitted:
    """The graph for an IMAGE of `input_dtype`, normalized as (x - mean) / std."""
    mean, std = normalization
    g = GraphBuilder()
    for name in (INPUT_IMAGE, OUTPUT_PROB, OUTPUT_MASK):
        g.reserve(name)
    nchw = _emit_normalize(g, mean, std)
    in_h, in_w = sizes.pinned or (None, None)
    out_shape = _emit_layers(g, plan, (nchw, (channels, in_h, in_w)))
    if rank_of(out_shape) != 4:
        raise UserError(
            f"the model's output {plan.output.layer!r} is not an image but a rank-"
            f"{rank_of(out_shape)} tensor; the kit serves segmentation maps"
        )
    classes = out_shape[0]
    if classes > MAX_CLASSES:
        raise UserError(f"the model outputs {classes} classes; MASK (uint8) holds at most 256")
    _emit_mask(g, classes, threshold)
    batch = "N"
    h_in, w_in = sizes.pinned or ("H", "W")
    h_out, w_out = (out_shape[1], out_shape[2]) if sizes.pinned else ("H_out", "W_out")
    graph = helper.make_graph(
        g.nodes,
        "unet",
        [
            helper.make_tensor_value_info(
                INPUT_IMAGE,
                helper.np_dtype_to_tensor_dtype(np.dtype(input_dtype)),
                [batch, h_in, w_in, channels],
            )
        ],
        [
            helper.make_tensor_value_info(
                OUTPUT_PROB, TensorProto.FLOAT, [batch, h_out, w_out, classes]
            ),
            helper.make_tensor_value_info(OUTPUT_MASK, TensorProto.UINT8, [batch, h_out, w_out]),
        ],
    )
    opsets = [helper.make_opsetid("", opset)]
    skeleton = helper.make_model(
        graph,
        opset_imports=opsets,
        ir_version=helper.find_min_ir_version_for(opsets),
        producer_name="unetkit",
    )
    return Emitted(skeleton, g, classes)


def _emit_normalize(g: GraphBuilder, mean: np.ndarray, std: np.ndarray) -> str:
    """uint8 NHWC IMAGE -> float (x - mean) / std in NCHW, the layout inside the graph."""
    pixels = g.node("Cast", [INPUT_IMAGE], "normalize", to=TensorProto.FLOAT)
    centred = g.node("Sub", [pixels, g.constant("normalize/mean", mean)], "normalize")
    scaled = g.node("Div", [centred, g.constant("normalize/std", std)], "normalize")
    return g.node("Transpose", [scaled], "to_nchw", perm=[0, 3, 1, 2])


def _emit_layers(g: GraphBuilder, plan: Schedule, first: tuple[str, Shape]) -> Shape:
    """Every layer in schedule order; PROB is the output in NHWC. Returns its shape."""

    def apply(op: Op, inputs: list[tuple[str, Shape]]) -> tuple[str, Shape]:
        shapes = [s for _, s in inputs]
        try:
            shape = op.output_shape(shapes)
        except ShapeMismatch as e:
            raise UserError(f"{e}; the model cannot run at this input size") from e
        return op.emit(g, [n for n, _ in inputs], shapes), shape

    name, shape = plan.run(first, apply)[plan.output]
    g.node("Transpose", [name], "to_nhwc", output=OUTPUT_PROB, perm=[0, 2, 3, 1])
    return shape


def _emit_mask(g: GraphBuilder, classes: int, threshold: float) -> None:
    if classes == 1:
        axis = g.constant("mask/axis", np.array([3], dtype=np.int64))
        prob = g.node("Squeeze", [OUTPUT_PROB, axis], "mask")
        limit = g.constant("mask/threshold", np.array(threshold, dtype=np.float32))
        above = g.node("Greater", [prob, limit], "mask")
        g.node("Cast", [above], "mask", output=OUTPUT_MASK, to=TensorProto.UINT8)
    else:
        best = g.node("ArgMax", [OUTPUT_PROB], "mask", axis=3, keepdims=0)
        g.node("Cast", [best], "mask", output=OUTPUT_MASK, to=TensorProto.UINT8)

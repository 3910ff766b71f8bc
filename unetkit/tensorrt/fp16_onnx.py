"""An fp16 copy of a contract ONNX model, for TensorRT 11's strongly typed networks.

TensorRT 11 removed the FP16 builder flag: a network computes in the types its ONNX
declares. This keeps the contract at the edges (IMAGE in its type, float32 PROB out) and
makes everything between fp16: the Cast after IMAGE casts to fp16, float weights become
fp16, and one Cast turns the result back into the float32 PROB. Nodes that read PROB
(the MASK threshold or argmax) stay float32. Resize scales stay float32, as ONNX requires.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from unetkit.core import OUTPUT_PROB, UserError

_FP32_INPUTS = {"Resize": (1, 2)}  # roi, scales


def _downstream_of(graph: onnx.GraphProto, tensor: str) -> set[int]:
    """Indices of the nodes that (transitively) read `tensor`."""
    reached, found = {tensor}, set()
    changed = True
    while changed:
        changed = False
        for index, node in enumerate(graph.node):
            if index not in found and reached.intersection(node.input):
                found.add(index)
                reached.update(node.output)
                changed = True
    return found


def _fp16_tensor(tensor: TensorProto) -> TensorProto:
    array = numpy_helper.to_array(tensor)
    if np.any(np.abs(array) > np.finfo(np.float16).max):
        raise UserError(f"weight {tensor.name!r} exceeds the fp16 range: use --precision fp32")
    return numpy_helper.from_array(array.astype(np.float16), tensor.name)


def _kept_fp32(graph: onnx.GraphProto, fp32_tail: set[int]) -> set[str]:
    """Tensors that stay fp32: what PROB's tail reads, and the inputs ops need in fp32."""
    keep: set[str] = set()
    for index, node in enumerate(graph.node):
        if index in fp32_tail:
            keep.update(node.input)
        for position in _FP32_INPUTS.get(node.op_type, ()):
            if position < len(node.input):
                keep.add(node.input[position])
    return keep


def _node_to_fp16(node: onnx.NodeProto, keep_fp32: set[str]) -> onnx.NodeProto | None:
    """Casts to float and float constants become fp16; the node computing PROB writes an
    fp16 copy, and the Cast back to float32 that then computes PROB is returned."""
    if node.op_type == "Cast":
        for attr in node.attribute:
            if attr.name == "to" and attr.i == TensorProto.FLOAT:
                attr.i = TensorProto.FLOAT16
    if node.op_type == "Constant" and node.output[0] not in keep_fp32:
        for attr in node.attribute:
            if attr.name == "value" and attr.t.data_type == TensorProto.FLOAT:
                attr.t.CopyFrom(_fp16_tensor(attr.t))
    for i, name in enumerate(node.output):
        if name == OUTPUT_PROB:
            node.output[i] = OUTPUT_PROB + ".fp16"
            return helper.make_node("Cast", [node.output[i]], [OUTPUT_PROB], to=TensorProto.FLOAT)
    return None


def to_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    converted = onnx.ModelProto()
    converted.CopyFrom(model)
    graph = converted.graph
    fp32_tail = _downstream_of(graph, OUTPUT_PROB)
    keep_fp32 = _kept_fp32(graph, fp32_tail)
    back_to_fp32 = None
    for index, node in enumerate(graph.node):
        if index not in fp32_tail:
            back_to_fp32 = _node_to_fp16(node, keep_fp32) or back_to_fp32
    for index, tensor in enumerate(graph.initializer):
        if tensor.data_type == TensorProto.FLOAT and tensor.name not in keep_fp32:
            graph.initializer[index].CopyFrom(_fp16_tensor(tensor))

    if back_to_fp32 is None:
        raise UserError(
            f"no node computes {OUTPUT_PROB}: export the model with build/export_onnx.py"
        )
    # PROB's readers come after the Cast that now produces it.
    tail = [graph.node[i] for i in sorted(fp32_tail)]
    rest = [n for i, n in enumerate(graph.node) if i not in fp32_tail]
    del graph.node[:]
    graph.node.extend([*rest, back_to_fp32, *tail])
    del graph.value_info[:]
    try:
        return onnx.shape_inference.infer_shapes(converted, check_type=True, strict_mode=True)
    except onnx.shape_inference.InferenceError as e:
        first = str(e).strip().splitlines()[0]
        raise UserError(
            f"cannot make an fp16 copy of this model ({first}): use --precision fp32"
        ) from e

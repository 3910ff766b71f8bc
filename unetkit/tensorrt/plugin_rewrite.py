"""Rewrite nearest integer-scale Resize nodes into the kit's TensorRT plugin op.

TensorRT's ONNX parser turns a node whose op_type it does not know into the plugin of that
name found in the plugin registry (version "1", namespace "" unless the node says
otherwise), passing the node's attributes as plugin fields. Only the Resize that Keras
UpSampling2D becomes is rewritten: nearest, asymmetric coordinates, floor rounding and
integer scales on H and W of an NCHW tensor, which is exactly output[y, x] =
input[y // scale_h, x // scale_w]. Any other nearest Resize computes something else, so
it is refused rather than silently changed; linear and cubic Resize stay native.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper, numpy_helper

from unetkit.core import UserError

PLUGIN_OP = "UnetkitUpsampleNearest"
# A custom domain keeps onnx.checker and other tools from mistaking the node for a
# standard op; TensorRT's parser looks the plugin up by op_type alone.
PLUGIN_DOMAIN = "trt.plugins"
PLUGIN_DOMAIN_VERSION = 1


@dataclass(frozen=True)
class Replaced:
    node: str
    scale_h: int
    scale_w: int


@dataclass
class RewriteResult:
    model: onnx.ModelProto
    replaced: list[Replaced] = field(default_factory=list)
    # (node name, why it stays a TensorRT resize layer)
    kept_native: list[tuple[str, str]] = field(default_factory=list)


def _attributes(node: onnx.NodeProto) -> dict[str, object]:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _constants(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    values = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            values[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return values


def _integer_scales(node: onnx.NodeProto, constants: dict[str, np.ndarray]) -> tuple[int, int]:
    name = node.name or node.output[0]
    has_sizes = len(node.input) > 3 and node.input[3]
    scales_name = node.input[2] if len(node.input) > 2 else ""
    if has_sizes or not scales_name:
        raise UserError(
            f"Resize {name!r} gives output sizes, not scales: the plugin needs constant "
            f"integer scales"
        )
    if scales_name not in constants:
        raise UserError(f"Resize {name!r} computes its scales at run time")
    scales = constants[scales_name].astype(np.float64).ravel()
    if scales.shape != (4,) or scales[0] != 1 or scales[1] != 1:
        raise UserError(
            f"Resize {name!r} scales {scales.tolist()} do not scale only H and W of an NCHW tensor"
        )
    rounded = np.rint(scales[2:])
    if np.any(rounded != scales[2:]) or np.any(rounded < 1):
        raise UserError(
            f"Resize {name!r} scales H,W by {scales[2:].tolist()}: the plugin takes integer "
            f"scales >= 1 only"
        )
    return int(rounded[0]), int(rounded[1])


def _check_nearest_semantics(node: onnx.NodeProto, attrs: dict[str, object]) -> None:
    name = node.name or node.output[0]
    transform = _text(attrs.get("coordinate_transformation_mode", "half_pixel"))
    rounding = _text(attrs.get("nearest_mode", "round_prefer_floor"))
    if transform != "asymmetric" or rounding != "floor":
        raise UserError(
            f"Resize {name!r} is nearest with coordinate_transformation_mode={transform}, "
            f"nearest_mode={rounding}: the plugin computes asymmetric+floor only "
            f"(what Keras UpSampling2D means)"
        )
    if "axes" in attrs:
        raise UserError(f"Resize {name!r} resizes selected axes only")


def _drop_unused_constants(graph: onnx.GraphProto) -> None:
    used = {name for node in graph.node for name in node.input}
    used.update(o.name for o in graph.output)
    kept = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    dead = [n for n in graph.node if n.op_type == "Constant" and n.output[0] not in used]
    for node in dead:
        graph.node.remove(node)


def rewrite_upsampling(model: onnx.ModelProto) -> RewriteResult:
    """Return a copy of `model` whose nearest integer-scale Resize nodes are plugin nodes."""
    rewritten = onnx.ModelProto()
    rewritten.CopyFrom(model)
    graph = rewritten.graph
    constants = _constants(graph)
    result = RewriteResult(model=rewritten)
    for index, node in enumerate(graph.node):
        if node.op_type != "Resize" or node.domain not in ("", "ai.onnx"):
            continue
        attrs = _attributes(node)
        mode = _text(attrs.get("mode", "nearest"))
        name = node.name or f"resize_{index}"
        if mode != "nearest":
            result.kept_native.append((name, f"mode={mode}"))
            continue
        _check_nearest_semantics(node, attrs)
        scale_h, scale_w = _integer_scales(node, constants)
        plugin = helper.make_node(
            PLUGIN_OP,
            inputs=[node.input[0]],
            outputs=[node.output[0]],
            name=name,
            domain=PLUGIN_DOMAIN,
            scale_h=scale_h,
            scale_w=scale_w,
        )
        graph.node[index].CopyFrom(plugin)
        result.replaced.append(Replaced(name, scale_h, scale_w))
    if result.replaced:
        _drop_unused_constants(graph)
        if not any(o.domain == PLUGIN_DOMAIN for o in rewritten.opset_import):
            rewritten.opset_import.append(helper.make_opsetid(PLUGIN_DOMAIN, PLUGIN_DOMAIN_VERSION))
    return result

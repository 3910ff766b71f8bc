"""Nested models (a Keras Applications backbone called as a layer) spliced into the outer graph."""

from __future__ import annotations

from dataclasses import replace

from unetkit.core import UserError
from unetkit.keras2onnx.keras_file.graph import KerasGraph, KerasLayer, TensorRef, require


def flatten(graph: KerasGraph) -> KerasGraph:
    """Replace every nested model by its own layers, once per call of it.

    An inner layer keeps its name unless an outer layer (or another nested model's layer)
    has it already; then it becomes '<nested model>/<inner layer>'.
    """
    taken = {layer.name for layer in graph.layers if layer.inner is None}
    layers: list[KerasLayer] = []
    nested_outputs: dict[TensorRef, TensorRef] = {}
    for layer in graph.layers:
        if layer.inner is None:
            layers.append(layer)
            continue
        inner = flatten(layer.inner)
        first_node = _first_call_node(graph, layer)
        for call_index, call_inputs in enumerate(layer.calls):
            prefix = layer.name if len(layer.calls) == 1 else f"{layer.name}/{call_index}"
            node = first_node + call_index
            layers.extend(
                _splice(inner, prefix, call_inputs, taken, layer.name, node, nested_outputs)
            )

    def resolve(ref: TensorRef) -> TensorRef:
        for _ in range(len(nested_outputs) + 1):
            if ref not in nested_outputs:
                return ref
            ref = nested_outputs[ref]
        raise UserError("nested models refer to each other in a cycle; the model is damaged")

    for layer in layers:
        layer.calls = [[resolve(r) for r in call] for call in layer.calls]
    return KerasGraph(
        layers, [resolve(r) for r in graph.inputs], [resolve(r) for r in graph.outputs]
    )


def _first_call_node(graph: KerasGraph, nested: KerasLayer) -> int:
    """The node index the outer model's references give the nested model's first call.

    tf.keras counts the node that built the nested model (its input linked to its outputs)
    as node 0 and leaves it out of the config, so references to the first call say node 1;
    Keras 3 says node 0. The references show which: an index past the calls means 1.
    """
    refs = [r for layer in graph.layers for call in layer.calls for r in call]
    nodes = [r.node for r in [*refs, *graph.outputs] if r.layer == nested.name]
    return 1 if nodes and max(nodes) >= len(nested.calls) else 0


def _splice(
    inner: KerasGraph,
    prefix: str,
    call_inputs: list[TensorRef],
    taken: set[str],
    nested_name: str,
    node: int,
    nested_outputs: dict[TensorRef, TensorRef],
) -> list[KerasLayer]:
    require(
        len(call_inputs) == len(inner.inputs),
        f"nested model {nested_name!r} takes {len(inner.inputs)} inputs but is called with "
        f"{len(call_inputs)}; the model config is damaged",
    )
    by_input = dict(zip(inner.inputs, call_inputs, strict=True))
    input_layers = {ref.layer for ref in inner.inputs}
    renamed: dict[str, str] = {}
    for layer in inner.layers:
        if layer.name in input_layers:
            continue
        name = layer.name if layer.name not in taken else f"{prefix}/{layer.name}"
        require(name not in taken, f"layer name {name!r} appears twice; the model is damaged")
        taken.add(name)
        renamed[layer.name] = name

    def remap(ref: TensorRef) -> TensorRef:
        if ref in by_input:
            return by_input[ref]
        require(
            ref.layer in renamed,
            f"nested model {nested_name!r} reads {ref.layer!r}, which it never computes; "
            "the model config is damaged",
        )
        return TensorRef(renamed[ref.layer], ref.node, ref.index)

    spliced = [
        replace(layer, name=renamed[layer.name], calls=[[remap(r) for r in c] for c in layer.calls])
        for layer in inner.layers
        if layer.name in renamed
    ]
    for index, output in enumerate(inner.outputs):
        nested_outputs[TensorRef(nested_name, node, index)] = remap(output)
    return spliced

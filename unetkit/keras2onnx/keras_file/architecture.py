"""The architecture JSON of a Keras file (tf.keras 2.x or Keras 3) -> a KerasGraph.

Layer calls are read in both formats: Keras 3's {"args": [...], "kwargs": {...}} and tf.keras's
lists of [layer, node, index, kwargs], including TFOpLambda's flat entries and constants.
A nested model stays a layer with its own graph (`KerasLayer.inner`) until `nesting` flattens it.
"""

from __future__ import annotations

from typing import Any

from unetkit.keras2onnx.keras_file.graph import (
    InputSlot,
    KerasGraph,
    KerasLayer,
    TensorRef,
    as_dict,
    as_list,
    as_str,
    require,
    tensor_ref,
)

CONSTANT_VALUE = "_CONSTANT_VALUE"  # tf.keras's marker of a constant in a call's first argument
FIRST_ARGUMENT = "__first__"  # call_kwargs key of a tf.keras call's first argument
ARGUMENTS = "__args__"  # call_kwargs key of a Keras 3 call's positional arguments


def _is_legacy_ref(value: Any) -> bool:
    """[layer, node, index] (a tensor inside a tf.keras call's keyword arguments)."""
    return (
        isinstance(value, list)
        and len(value) == 3
        and isinstance(value[0], str)
        and all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in value[1:])
    )


def _legacy_kwargs(value: Any, found: list[TensorRef], what: str) -> Any:
    """tf.keras keyword arguments with each tensor moved into `found` (an InputSlot left)."""
    if _is_legacy_ref(value):
        found.append(TensorRef(value[0], value[1], value[2]))
        return InputSlot(len(found) - 1)
    if isinstance(value, list):
        return [_legacy_kwargs(item, found, what) for item in value]
    if isinstance(value, dict):
        return {str(k): _legacy_kwargs(v, found, what) for k, v in value.items()}
    return value


def _parse_legacy_call(node: Any, what: str) -> tuple[list[TensorRef], dict[str, Any]]:
    """tf.keras 2.x: a list of [layer, node, index, kwargs] entries, one per tensor of the
    first argument. TFOpLambda layers store a single-tensor first argument flat, as the
    entry itself; a constant in the first argument is ['_CONSTANT_VALUE', -1, value, ...]."""
    entries = as_list(node, what)
    if entries and isinstance(entries[0], str):  # flat: one entry, not a list of them
        entries = [entries]
    refs: list[TensorRef] = []
    first: list[Any] = []  # the first argument: InputSlots and constants
    kwargs: Any = {}
    for entry in entries:
        items = as_list(entry, what)
        if len(items) >= 3 and items[0] == CONSTANT_VALUE:
            first.append(items[2])
        else:
            refs.append(tensor_ref(items, what))
            first.append(InputSlot(len(refs) - 1))
        if len(items) > 3:
            kwargs = as_dict(items[3], f"keyword arguments of {what}")
    extra: list[TensorRef] = []
    converted = _shift_slots(_legacy_kwargs(kwargs, extra, what), len(refs))
    return refs + extra, {**converted, FIRST_ARGUMENT: first}


def _shift_slots(value: Any, offset: int) -> Any:
    if isinstance(value, InputSlot):
        return InputSlot(value.index + offset)
    if isinstance(value, list):
        return [_shift_slots(item, offset) for item in value]
    if isinstance(value, dict):
        return {k: _shift_slots(v, offset) for k, v in value.items()}
    return value


def _keras3_arguments(value: Any, found: list[TensorRef]) -> Any:
    """A Keras 3 call argument with each tensor moved into `found` (an InputSlot left) and
    each constant (`__tensor__`, e.g. a position table added with ops.add) as its value."""
    if isinstance(value, list):
        return [_keras3_arguments(item, found) for item in value]
    if not isinstance(value, dict):
        return value
    if value.get("class_name") == "__keras_tensor__":
        config = as_dict(value.get("config"), "a tensor reference")
        found.append(tensor_ref(config.get("keras_history"), "keras_history"))
        return InputSlot(len(found) - 1)
    if value.get("class_name") == "__tensor__":
        return as_dict(value.get("config"), "a constant tensor").get("value")
    return {str(k): _keras3_arguments(v, found) for k, v in value.items()}


def _parse_call(node: Any, layer_name: str) -> tuple[list[TensorRef], dict[str, Any]]:
    what = f"inbound node of layer {layer_name!r}"
    if isinstance(node, dict):  # Keras 3: {"args": [...], "kwargs": {...}}
        found: list[TensorRef] = []
        arguments = _keras3_arguments(node.get("args", []), found)
        kwargs = node.get("kwargs", {})
        kwargs = _keras3_arguments(kwargs, found) if isinstance(kwargs, dict) else {}
        return found, {**kwargs, ARGUMENTS: arguments}
    return _parse_legacy_call(node, what)  # tf.keras 2.x


def _layer_name(entry: dict[str, Any]) -> str:
    config = as_dict(entry.get("config"), "a layer's config")
    name = entry.get("name", config.get("name"))
    return as_str(name, "a layer's name")


def _input_layer_from(first: dict[str, Any]) -> dict[str, Any] | None:
    """tf.keras Sequential models may keep the input shape on their first layer."""
    config = first["config"]
    shape = config.get("batch_input_shape", config.get("batch_shape"))
    if shape is None:
        return None
    return {"class_name": "InputLayer", "config": {"batch_shape": shape, "name": "input"}}


MODEL_CLASSES = ("Functional", "Model", "Sequential")
MAX_NESTING = 8


OPERATION_MODULE = "keras.src.ops."  # where Keras 3 keeps its functions on tensors


def _is_operation(entry: dict[str, Any], module: str | None) -> bool:
    """A Keras 3 function on tensors (ops.add saved as class Add), not a layer. The .keras
    format names its module; Keras 3's HDF5 drops modules, but an operation's config, unlike
    every layer's, has neither `trainable` nor `dtype`."""
    if module is not None:
        return module.startswith(OPERATION_MODULE)
    nodes = entry.get("inbound_nodes")
    keras3 = isinstance(nodes, list) and bool(nodes) and all(isinstance(n, dict) for n in nodes)
    config = entry["config"]
    return keras3 and "trainable" not in config and "dtype" not in config


def _is_nested_model(entry: dict[str, Any]) -> bool:
    return entry["class_name"] in MODEL_CLASSES and isinstance(entry["config"].get("layers"), list)


def parse_architecture(model_config: Any, depth: int = 0) -> KerasGraph:
    require(depth <= MAX_NESTING, "the model config nests models too deeply; it is damaged")
    top = as_dict(model_config, "the model config")
    class_name = top.get("class_name")
    config = as_dict(top.get("config"), "the model's config")
    entries = [as_dict(e, "a layer entry") for e in as_list(config.get("layers"), "layers")]
    for entry in entries:
        as_dict(entry.get("config"), "a layer's config")
        as_str(entry.get("class_name"), "a layer's class_name")
    if class_name == "Sequential":
        graph = _parse_sequential(entries, config)
    else:
        require(
            class_name in ("Functional", "Model"),
            f"model class {class_name!r} is not supported: save a Sequential or functional model",
        )
        graph = _parse_functional(entries, config)
    implied = len(graph.layers) - len(entries)  # a Sequential model's implied InputLayer
    for layer, entry in zip(graph.layers[implied:], entries, strict=True):
        module = entry.get("module")
        layer.module = module if isinstance(module, str) else None
        layer.operation = _is_operation(entry, layer.module)
        if _is_nested_model(entry):
            layer.inner = parse_architecture(entry, depth + 1)
    return graph


def _parse_sequential(entries: list[dict[str, Any]], config: dict[str, Any]) -> KerasGraph:
    require(bool(entries), "the Sequential model has no layers")
    if entries[0]["class_name"] != "InputLayer":
        implied = _input_layer_from(entries[0])
        if implied is None and "build_input_shape" in config:
            implied = {
                "class_name": "InputLayer",
                "config": {"batch_shape": config["build_input_shape"], "name": "input"},
            }
        require(
            implied is not None,
            "the Sequential model has no input shape: build it with keras.Input(shape) first",
        )
        entries = [implied, *entries]
    layers: list[KerasLayer] = []
    previous: TensorRef | None = None
    for entry in entries:
        name = _layer_name(entry)
        calls = [] if previous is None else [[previous]]
        kwargs: list[dict[str, Any]] = [] if previous is None else [{}]
        layers.append(KerasLayer(name, entry["class_name"], entry["config"], calls, [], kwargs))
        previous = TensorRef(name)
    assert previous is not None
    return KerasGraph(layers, [TensorRef(layers[0].name)], [previous])


def _io_refs(value: Any, what: str) -> list[TensorRef]:
    items = as_list(value, what)
    if items and isinstance(items[0], str):  # Keras 3 writes a single reference unnested
        return [tensor_ref(items, what)]
    return [tensor_ref(item, what) for item in items]


def _parse_functional(entries: list[dict[str, Any]], config: dict[str, Any]) -> KerasGraph:
    layers = []
    for entry in entries:
        name = _layer_name(entry)
        nodes = as_list(entry.get("inbound_nodes", []), f"inbound_nodes of {name!r}")
        parsed = [_parse_call(node, name) for node in nodes]
        layers.append(
            KerasLayer(
                name,
                entry["class_name"],
                entry["config"],
                [refs for refs, _ in parsed],
                [],
                [kwargs for _, kwargs in parsed],
            )
        )
    inputs = _io_refs(config.get("input_layers"), "input_layers")
    outputs = _io_refs(config.get("output_layers"), "output_layers")
    return KerasGraph(layers, inputs, outputs)

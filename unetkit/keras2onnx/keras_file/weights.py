"""Where each layer's weights live in the file: legacy HDF5 groups or Keras 3 `vars`."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import h5py
import numpy as np

from unetkit.keras2onnx.keras_file.graph import KerasGraph, KerasLayer, Weight, require


def decode(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _dataset_weight(dataset: Any, name: str) -> Weight:
    require(isinstance(dataset, h5py.Dataset), f"weight {name!r} is not an array in the file")
    return Weight(name, tuple(int(d) for d in dataset.shape), lambda: dataset[()])


def attach_legacy_h5_weights(graph: KerasGraph, root: h5py.File) -> None:
    group = root.get("model_weights", root)
    for layer in graph.layers:
        if layer.name not in group:
            continue
        layer_group = group[layer.name]
        names = [decode(n) for n in np.atleast_1d(layer_group.attrs.get("weight_names", []))]
        if layer.inner is not None:
            _attach_nested_h5_weights(layer, layer_group, names)
        else:
            layer.weights = [_dataset_weight(layer_group.get(n), n) for n in names]


def _leaves(graph: KerasGraph) -> Iterator[KerasLayer]:
    for layer in graph.layers:
        if layer.inner is None:
            yield layer
        else:
            yield from _leaves(layer.inner)


def _attach_nested_h5_weights(nested: KerasLayer, group: h5py.Group, names: list[str]) -> None:
    """A nested model's group lists all its weights as '<path>/<weight>', the path ending in
    the inner layer's name (Keras 3 puts the names of the models that built the layer in
    front: 'block/conv/kernel'). Each weight goes to the inner layer with the longest name
    that ends its path (layer names may hold '/': DenseNet's 'conv1/conv')."""
    assert nested.inner is not None
    leaves = {layer.name: layer for layer in _leaves(nested.inner)}
    owned: dict[str, list[Weight]] = {}
    for name in names:
        path = name.rsplit("/", 1)[0]
        owners = [n for n in leaves if path == n or path.endswith("/" + n)]
        if owners:
            owner = max(owners, key=len)
            owned.setdefault(owner, []).append(_dataset_weight(group.get(name), name))
    for name, weights in owned.items():
        leaves[name].weights = weights


MAX_SUBLAYER_DEPTH = 4


def _snake_case(name: str) -> str:
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def attach_keras3_weights(graph: KerasGraph, root: h5py.Group, sequential: bool) -> None:
    group = root.get("layers")
    if not isinstance(group, h5py.Group):
        return
    layers = graph.layers
    by_name: dict[str, h5py.Group] = {}
    for key in group:
        vars_group = group[key].get("vars")
        if isinstance(vars_group, h5py.Group) and "name" in vars_group.attrs:
            by_name[decode(vars_group.attrs["name"])] = vars_group
    # Files that lack the name attribute key each layer by its snake-cased class name,
    # numbered in the order of `model.layers` (which omits a Sequential model's input).
    seen: dict[str, int] = {}
    for layer in layers:
        if sequential and layer.class_name == "InputLayer":
            continue
        if layer.operation:
            continue
        base = _snake_case(layer.class_name)
        count = seen.get(base, 0)
        seen[base] = count + 1
        key = base if count == 0 else f"{base}_{count}"
        if layer.inner is not None:
            if isinstance(group.get(key), h5py.Group):
                inner_sequential = layer.class_name == "Sequential"
                attach_keras3_weights(layer.inner, group[key], inner_sequential)
            continue
        vars_group = by_name.get(layer.name)
        if vars_group is None and key in group:
            vars_group = group[key].get("vars")
        if isinstance(vars_group, h5py.Group) and isinstance(vars_group.parent, h5py.Group):
            layer.weights = list(_layer_vars(vars_group.parent, layer.name))


def _layer_vars(group: h5py.Group, path: str, depth: int = 0) -> Iterator[Weight]:
    """A layer's own weights (`vars/0`, `vars/1`, ...), then those of the layers it holds as
    attributes, each under its attribute's path: MultiHeadAttention's `query_dense/vars/0`
    (`_query_dense` in tf-keras), a library layer's `attn/qkv/vars/0`."""
    own = group.get("vars")
    if isinstance(own, h5py.Group):
        for i in sorted(int(k) for k in own if k.isdigit()):
            yield _dataset_weight(own[str(i)], f"{path}/vars/{i}")
    if depth >= MAX_SUBLAYER_DEPTH:
        return
    for key in sorted(group):
        sub = group[key]
        if key != "vars" and isinstance(sub, h5py.Group):
            yield from _layer_vars(sub, f"{path}/{key}", depth + 1)

"""Read a Keras model file into a neutral graph of layers: no TensorFlow, no Keras.

Two formats are understood:
- legacy HDF5 written by tf.keras 2.x or Keras 3 `model.save("x.h5")`: the architecture
  is the JSON attribute `model_config`, weights live under `model_weights/<layer>/` in the
  order given by each group's `weight_names` attribute;
- the Keras 3 `.keras` zip (also written by tf-keras 2.x): `config.json` plus
  `model.weights.h5`, whose weights live under `layers/<key>/vars/<i>` (Keras 3 also writes
  the layer name as an attribute of `vars`).

A functional model used as a layer (a Keras Applications backbone called on a tensor) is
flattened into the outer graph: its weights live in the file under the nested model's group
(legacy HDF5: `model_weights/<nested>/<inner layer>/...`; .keras:
`layers/<nested key>/layers/<inner key>/vars/<i>`), and its input and output tensors are
replaced by the tensors the outer model connects to it.

Weights stay in the file until an emitter asks for them, so a large model is never held
twice in memory. Every problem with the file is raised as UserError.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import struct
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from unetkit.core import UserError

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
ZIP_MAGIC = b"PK\x03\x04"
# h5py and zipfile report damaged files through many exception types.
FILE_ERRORS = (OSError, KeyError, ValueError, TypeError, RuntimeError, EOFError, zipfile.BadZipFile)


@dataclass(frozen=True)
class TensorRef:
    """Output `index` of call number `node` of layer `layer`."""

    layer: str
    node: int = 0
    index: int = 0


@dataclass
class Weight:
    """One weight array, read from the file only when `load()` is called."""

    name: str
    shape: tuple[int, ...]
    _load: Callable[[], np.ndarray] = field(repr=False)

    def load(self) -> np.ndarray:
        try:
            array = np.asarray(self._load())
        except FILE_ERRORS as e:
            raise UserError(f"cannot read weight {self.name!r}: {e}; the file is damaged") from e
        if array.shape != self.shape:
            raise UserError(f"weight {self.name!r} has shape {array.shape}, expected {self.shape}")
        if array.dtype.kind not in "fiu":
            raise UserError(f"weight {self.name!r} holds {array.dtype}, not numbers")
        return array


@dataclass(frozen=True)
class InputSlot:
    """A tensor passed as a keyword argument of a call: input number `index` of that call."""

    index: int


@dataclass
class KerasLayer:
    name: str
    class_name: str
    config: dict[str, Any]
    calls: list[list[TensorRef]]  # inputs of each call of the layer
    weights: list[Weight] = field(default_factory=list)
    # Keyword arguments of each call (tf.keras TFOpLambda: `axis`, `y`, ...), tensors among
    # them replaced by the InputSlot of the call's input that carries them.
    call_kwargs: list[dict[str, Any]] = field(default_factory=list)
    keras_major: int = 3  # the Keras that wrote the file: 2 (tf.keras, tf-keras) or 3
    module: str | None = None  # where the class is defined, when the file says (.keras)
    inner: KerasGraph | None = field(default=None, repr=False)  # a nested model's graph


@dataclass
class KerasGraph:
    """The layers of one (possibly nested) model and its input and output tensors."""

    layers: list[KerasLayer]
    inputs: list[TensorRef]
    outputs: list[TensorRef]


@dataclass
class KerasModel:
    layers: list[KerasLayer]
    inputs: list[TensorRef]
    outputs: list[TensorRef]
    source: str  # e.g. "Keras 3.15.1 .keras"


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise UserError(message)


def _as_dict(value: Any, what: str) -> dict[str, Any]:
    _require(isinstance(value, dict), f"model config is damaged: {what} is not an object")
    return value


def _as_list(value: Any, what: str) -> list[Any]:
    _require(isinstance(value, list), f"model config is damaged: {what} is not a list")
    return value


def _as_str(value: Any, what: str) -> str:
    _require(isinstance(value, str), f"model config is damaged: {what} is not a string")
    return value


def _tensor_ref(value: Any, what: str) -> TensorRef:
    items = _as_list(value, what)
    _require(
        len(items) >= 3
        and isinstance(items[0], str)
        and all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in items[1:3]),
        f"model config is damaged: {what} is not [layer, node, index]",
    )
    return TensorRef(items[0], items[1], items[2])


def _keras3_tensors(value: Any, found: list[TensorRef]) -> None:
    """Collect, in order, the `__keras_tensor__` references nested in a Keras 3 call."""
    if isinstance(value, list):
        for item in value:
            _keras3_tensors(item, found)
    elif isinstance(value, dict):
        if value.get("class_name") == "__keras_tensor__":
            config = _as_dict(value.get("config"), "a tensor reference")
            found.append(_tensor_ref(config.get("keras_history"), "keras_history"))
        else:
            for item in value.values():
                _keras3_tensors(item, found)


CONSTANT_VALUE = "_CONSTANT_VALUE"  # tf.keras's marker of a constant in a call's first argument
FIRST_ARGUMENT = "__first__"  # call_kwargs key of a tf.keras call's first argument


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
    entries = _as_list(node, what)
    if entries and isinstance(entries[0], str):  # flat: one entry, not a list of them
        entries = [entries]
    refs: list[TensorRef] = []
    first: list[Any] = []  # the first argument: InputSlots and constants
    kwargs: Any = {}
    for entry in entries:
        items = _as_list(entry, what)
        if len(items) >= 3 and items[0] == CONSTANT_VALUE:
            first.append(items[2])
        else:
            refs.append(_tensor_ref(items, what))
            first.append(InputSlot(len(refs) - 1))
        if len(items) > 3:
            kwargs = _as_dict(items[3], f"keyword arguments of {what}")
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


def _parse_call(node: Any, layer_name: str) -> tuple[list[TensorRef], dict[str, Any]]:
    what = f"inbound node of layer {layer_name!r}"
    if isinstance(node, dict):  # Keras 3: {"args": [...], "kwargs": {...}}
        found: list[TensorRef] = []
        _keras3_tensors(node.get("args", []), found)
        kwargs_tensors: list[TensorRef] = []
        kwargs = node.get("kwargs", {})
        _keras3_tensors(kwargs, kwargs_tensors)
        _require(
            not kwargs_tensors,
            f"layer {layer_name!r} takes a tensor as a keyword argument; not supported",
        )
        return found, kwargs if isinstance(kwargs, dict) else {}
    return _parse_legacy_call(node, what)  # tf.keras 2.x


def _layer_name(entry: dict[str, Any]) -> str:
    config = _as_dict(entry.get("config"), "a layer's config")
    name = entry.get("name", config.get("name"))
    return _as_str(name, "a layer's name")


def _input_layer_from(first: dict[str, Any]) -> dict[str, Any] | None:
    """tf.keras Sequential models may keep the input shape on their first layer."""
    config = first["config"]
    shape = config.get("batch_input_shape", config.get("batch_shape"))
    if shape is None:
        return None
    return {"class_name": "InputLayer", "config": {"batch_shape": shape, "name": "input"}}


MODEL_CLASSES = ("Functional", "Model", "Sequential")
MAX_NESTING = 8


def _is_nested_model(entry: dict[str, Any]) -> bool:
    return entry["class_name"] in MODEL_CLASSES and isinstance(entry["config"].get("layers"), list)


def _parse_architecture(model_config: Any, depth: int = 0) -> KerasGraph:
    _require(depth <= MAX_NESTING, "the model config nests models too deeply; it is damaged")
    top = _as_dict(model_config, "the model config")
    class_name = top.get("class_name")
    config = _as_dict(top.get("config"), "the model's config")
    entries = [_as_dict(e, "a layer entry") for e in _as_list(config.get("layers"), "layers")]
    for entry in entries:
        _as_dict(entry.get("config"), "a layer's config")
        _as_str(entry.get("class_name"), "a layer's class_name")
    if class_name == "Sequential":
        graph = _parse_sequential(entries, config)
    else:
        _require(
            class_name in ("Functional", "Model"),
            f"model class {class_name!r} is not supported: save a Sequential or functional model",
        )
        graph = _parse_functional(entries, config)
    implied = len(graph.layers) - len(entries)  # a Sequential model's implied InputLayer
    for layer, entry in zip(graph.layers[implied:], entries, strict=True):
        module = entry.get("module")
        layer.module = module if isinstance(module, str) else None
        if _is_nested_model(entry):
            layer.inner = _parse_architecture(entry, depth + 1)
    return graph


def _parse_sequential(entries: list[dict[str, Any]], config: dict[str, Any]) -> KerasGraph:
    _require(bool(entries), "the Sequential model has no layers")
    if entries[0]["class_name"] != "InputLayer":
        implied = _input_layer_from(entries[0])
        if implied is None and "build_input_shape" in config:
            implied = {
                "class_name": "InputLayer",
                "config": {"batch_shape": config["build_input_shape"], "name": "input"},
            }
        _require(
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
    items = _as_list(value, what)
    if items and isinstance(items[0], str):  # Keras 3 writes a single reference unnested
        return [_tensor_ref(items, what)]
    return [_tensor_ref(item, what) for item in items]


def _parse_functional(entries: list[dict[str, Any]], config: dict[str, Any]) -> KerasGraph:
    layers = []
    for entry in entries:
        name = _layer_name(entry)
        nodes = _as_list(entry.get("inbound_nodes", []), f"inbound_nodes of {name!r}")
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


def _flatten(graph: KerasGraph) -> KerasGraph:
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
        inner = _flatten(layer.inner)
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
    _require(
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
        _require(name not in taken, f"layer name {name!r} appears twice; the model is damaged")
        taken.add(name)
        renamed[layer.name] = name

    def remap(ref: TensorRef) -> TensorRef:
        if ref in by_input:
            return by_input[ref]
        _require(
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


def _decode(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _dataset_weight(dataset: Any, name: str) -> Weight:
    _require(isinstance(dataset, h5py.Dataset), f"weight {name!r} is not an array in the file")
    return Weight(name, tuple(int(d) for d in dataset.shape), lambda: dataset[()])


def _attach_legacy_h5_weights(graph: KerasGraph, root: h5py.File) -> None:
    group = root.get("model_weights", root)
    for layer in graph.layers:
        if layer.name not in group:
            continue
        layer_group = group[layer.name]
        names = [_decode(n) for n in np.atleast_1d(layer_group.attrs.get("weight_names", []))]
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


def _snake_case(name: str) -> str:
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _attach_keras3_weights(graph: KerasGraph, root: h5py.Group, sequential: bool) -> None:
    group = root.get("layers")
    if not isinstance(group, h5py.Group):
        return
    layers = graph.layers
    by_name: dict[str, h5py.Group] = {}
    for key in group:
        vars_group = group[key].get("vars")
        if isinstance(vars_group, h5py.Group) and "name" in vars_group.attrs:
            by_name[_decode(vars_group.attrs["name"])] = vars_group
    # Files that lack the name attribute key each layer by its snake-cased class name,
    # numbered in the order of `model.layers` (which omits a Sequential model's input).
    seen: dict[str, int] = {}
    for layer in layers:
        if sequential and layer.class_name == "InputLayer":
            continue
        base = _snake_case(layer.class_name)
        count = seen.get(base, 0)
        seen[base] = count + 1
        key = base if count == 0 else f"{base}_{count}"
        if layer.inner is not None:
            if isinstance(group.get(key), h5py.Group):
                inner_sequential = layer.class_name == "Sequential"
                _attach_keras3_weights(layer.inner, group[key], inner_sequential)
            continue
        vars_group = by_name.get(layer.name)
        if vars_group is None and key in group:
            vars_group = group[key].get("vars")
        if not isinstance(vars_group, h5py.Group):
            continue
        indices = sorted(int(k) for k in vars_group if k.isdigit())
        layer.weights = [
            _dataset_weight(vars_group[str(i)], f"{layer.name}/vars/{i}") for i in indices
        ]


def _load_json(data: bytes | str, what: str) -> Any:
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as e:
        raise UserError(f"{what} is not valid JSON ({e}); the file is damaged") from e


def _open_path(path: Path) -> bytes:
    if not path.exists():
        raise UserError(f"{path}: no such file; pass the path of a Keras .h5 or .keras file")
    if path.is_dir():
        raise UserError(
            f"{path} is a directory (a TensorFlow SavedModel?); load it in Keras and save it "
            "with model.save('model.keras') or model.save('model.h5')"
        )
    try:
        with open(path, "rb") as f:
            return f.read(8)
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror}") from e


@contextlib.contextmanager
def _read_legacy_h5(path: Path) -> Iterator[KerasModel]:
    with h5py.File(path, "r") as root:
        if "model_config" not in root.attrs:
            raise UserError(
                f"{path} holds weights but no architecture (written by save_weights?); "
                "save the whole model with model.save('model.h5')"
            )
        model_config = _load_json(_decode(root.attrs["model_config"]), "model_config")
        graph = _parse_architecture(model_config)
        _attach_legacy_h5_weights(graph, root)
        writer = _decode(root.attrs.get("keras_version", "unknown"))
        yield _finish(graph, writer, f"Keras {writer} HDF5")


@contextlib.contextmanager
def _read_keras_zip(path: Path) -> Iterator[KerasModel]:
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        if "config.json" not in names:
            raise UserError(f"{path} is a zip file without config.json: not a .keras model")
        model_config = _load_json(archive.read("config.json"), "config.json")
        metadata = (
            _load_json(archive.read("metadata.json"), "metadata.json")
            if "metadata.json" in names
            else {}
        )
        writer = metadata.get("keras_version", "3") if isinstance(metadata, dict) else "3"
        graph = _parse_architecture(model_config)
        if "model.weights.h5" not in names:
            raise UserError(f"{path} has no model.weights.h5: save the model with its weights")
        member = archive.getinfo("model.weights.h5")
        with (
            _open_member(path, archive, member) as weights_file,
            h5py.File(weights_file, "r") as root,
        ):
            sequential = model_config.get("class_name") == "Sequential"
            _attach_keras3_weights(graph, root, sequential)
            yield _finish(graph, str(writer), f"Keras {writer} .keras")


def _finish(graph: KerasGraph, writer: str, source: str) -> KerasModel:
    """The flat model, each layer marked with the major version of the Keras that wrote it."""
    flat = _flatten(graph)
    major = 2 if writer.startswith(("1.", "2.")) else 3
    for layer in flat.layers:
        layer.keras_major = major
    return KerasModel(flat.layers, flat.inputs, flat.outputs, source)


class _StoredMember(io.RawIOBase):
    """Random access to an uncompressed zip member, straight from the zip file.

    HDF5 seeks a lot; zipfile's own reader rewinds and re-reads on every backward seek.
    """

    def __init__(self, path: Path, member: zipfile.ZipInfo) -> None:
        super().__init__()
        self._file = open(path, "rb")  # noqa: SIM115  (closed in close())
        self._file.seek(member.header_offset)
        header = self._file.read(30)
        if len(header) != 30 or not header.startswith(ZIP_MAGIC):
            self._file.close()
            raise UserError(f"{path}: the zip entry {member.filename} is damaged")
        name_length, extra_length = struct.unpack("<HH", header[26:30])
        self._start = member.header_offset + 30 + name_length + extra_length
        self._size = member.file_size
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        self._position = max(base + offset, 0)
        return self._position

    def readinto(self, buffer: Any) -> int:
        count = max(min(len(buffer), self._size - self._position), 0)
        self._file.seek(self._start + self._position)
        read = self._file.readinto(memoryview(buffer)[:count])
        self._position += read
        return read

    def close(self) -> None:
        self._file.close()
        super().close()


def _open_member(path: Path, archive: zipfile.ZipFile, member: zipfile.ZipInfo) -> Any:
    if member.compress_type == zipfile.ZIP_STORED:  # what Keras writes
        return _StoredMember(path, member)
    return io.BytesIO(archive.read(member))


@contextlib.contextmanager
def open_keras_model(path: str | Path) -> Iterator[KerasModel]:
    """Open a Keras model file; weights can be loaded while the context is open."""
    path = Path(path)
    magic = _open_path(path)
    if magic.startswith(ZIP_MAGIC):
        reader = _read_keras_zip
    elif magic.startswith(HDF5_MAGIC):
        reader = _read_legacy_h5
    else:
        raise UserError(
            f"{path} is not a Keras model file: expected HDF5 (.h5, from model.save('x.h5')) "
            "or a Keras 3 zip (.keras)"
        )
    with contextlib.ExitStack() as stack:
        try:
            model = stack.enter_context(reader(path))
        except UserError:
            raise
        except RecursionError as e:
            raise UserError(
                f"{path}: the model config is nested too deeply; the file is damaged"
            ) from e
        except FILE_ERRORS as e:
            raise UserError(
                f"{path} cannot be read as a Keras model ({e}); the file is damaged"
            ) from e
        yield model

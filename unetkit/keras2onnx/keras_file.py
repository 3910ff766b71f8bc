"""Read a Keras model file into a neutral graph of layers: no TensorFlow, no Keras.

Two formats are understood:
- legacy HDF5 written by tf.keras 2.x or Keras 3 `model.save("x.h5")`: the architecture
  is the JSON attribute `model_config`, weights live under `model_weights/<layer>/` in the
  order given by each group's `weight_names` attribute;
- the Keras 3 `.keras` zip: `config.json` plus `model.weights.h5`, whose weights live under
  `layers/<key>/vars/<i>` (the `vars` group carries the layer name as an attribute).

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
from dataclasses import dataclass, field
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


@dataclass
class KerasLayer:
    name: str
    class_name: str
    config: dict[str, Any]
    calls: list[list[TensorRef]]  # inputs of each call of the layer
    weights: list[Weight] = field(default_factory=list)


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


def _parse_call(node: Any, layer_name: str) -> list[TensorRef]:
    what = f"inbound node of layer {layer_name!r}"
    if isinstance(node, dict):  # Keras 3: {"args": [...], "kwargs": {...}}
        found: list[TensorRef] = []
        _keras3_tensors(node.get("args", []), found)
        kwargs_tensors: list[TensorRef] = []
        _keras3_tensors(node.get("kwargs", {}), kwargs_tensors)
        _require(
            not kwargs_tensors,
            f"layer {layer_name!r} takes a tensor as a keyword argument; not supported",
        )
        return found
    return [_tensor_ref(entry, what) for entry in _as_list(node, what)]  # tf.keras 2.x


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


def _parse_architecture(
    model_config: Any,
) -> tuple[list[KerasLayer], list[TensorRef], list[TensorRef]]:
    top = _as_dict(model_config, "the model config")
    class_name = top.get("class_name")
    config = _as_dict(top.get("config"), "the model's config")
    entries = [_as_dict(e, "a layer entry") for e in _as_list(config.get("layers"), "layers")]
    for entry in entries:
        _as_dict(entry.get("config"), "a layer's config")
        _as_str(entry.get("class_name"), "a layer's class_name")
    if class_name == "Sequential":
        return _parse_sequential(entries, config)
    _require(
        class_name in ("Functional", "Model"),
        f"model class {class_name!r} is not supported: save a Sequential or functional model",
    )
    return _parse_functional(entries, config)


def _parse_sequential(
    entries: list[dict[str, Any]], config: dict[str, Any]
) -> tuple[list[KerasLayer], list[TensorRef], list[TensorRef]]:
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
        layers.append(KerasLayer(name, entry["class_name"], entry["config"], calls))
        previous = TensorRef(name)
    assert previous is not None
    return layers, [TensorRef(layers[0].name)], [previous]


def _io_refs(value: Any, what: str) -> list[TensorRef]:
    items = _as_list(value, what)
    if items and isinstance(items[0], str):  # Keras 3 writes a single reference unnested
        return [_tensor_ref(items, what)]
    return [_tensor_ref(item, what) for item in items]


def _parse_functional(
    entries: list[dict[str, Any]], config: dict[str, Any]
) -> tuple[list[KerasLayer], list[TensorRef], list[TensorRef]]:
    layers = []
    for entry in entries:
        name = _layer_name(entry)
        nodes = _as_list(entry.get("inbound_nodes", []), f"inbound_nodes of {name!r}")
        calls = [_parse_call(node, name) for node in nodes]
        layers.append(KerasLayer(name, entry["class_name"], entry["config"], calls))
    inputs = _io_refs(config.get("input_layers"), "input_layers")
    outputs = _io_refs(config.get("output_layers"), "output_layers")
    return layers, inputs, outputs


def _decode(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _dataset_weight(dataset: Any, name: str) -> Weight:
    _require(isinstance(dataset, h5py.Dataset), f"weight {name!r} is not an array in the file")
    return Weight(name, tuple(int(d) for d in dataset.shape), lambda: dataset[()])


def _attach_legacy_h5_weights(layers: list[KerasLayer], root: h5py.File) -> None:
    group = root.get("model_weights", root)
    for layer in layers:
        if layer.name not in group:
            continue
        layer_group = group[layer.name]
        names = [_decode(n) for n in np.atleast_1d(layer_group.attrs.get("weight_names", []))]
        layer.weights = [_dataset_weight(layer_group.get(n), n) for n in names]


def _snake_case(name: str) -> str:
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _attach_keras3_weights(layers: list[KerasLayer], root: h5py.File, sequential: bool) -> None:
    group = root.get("layers")
    if group is None:
        return
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
        layers, inputs, outputs = _parse_architecture(model_config)
        _attach_legacy_h5_weights(layers, root)
        writer = _decode(root.attrs.get("keras_version", "unknown"))
        yield KerasModel(layers, inputs, outputs, f"Keras {writer} HDF5")


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
        layers, inputs, outputs = _parse_architecture(model_config)
        if "model.weights.h5" not in names:
            raise UserError(f"{path} has no model.weights.h5: save the model with its weights")
        member = archive.getinfo("model.weights.h5")
        with (
            _open_member(path, archive, member) as weights_file,
            h5py.File(weights_file, "r") as root,
        ):
            sequential = model_config.get("class_name") == "Sequential"
            _attach_keras3_weights(layers, root, sequential)
            yield KerasModel(layers, inputs, outputs, f"Keras {writer} .keras")


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

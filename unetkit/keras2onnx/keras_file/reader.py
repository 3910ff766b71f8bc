"""Open a Keras file of either format and read it into a flat KerasModel."""

from __future__ import annotations

import contextlib
import io
import json
import struct
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py

from unetkit.core import UserError
from unetkit.keras2onnx.keras_file.architecture import parse_architecture
from unetkit.keras2onnx.keras_file.graph import FILE_ERRORS, KerasGraph, KerasModel
from unetkit.keras2onnx.keras_file.nesting import flatten
from unetkit.keras2onnx.keras_file.weights import (
    attach_keras3_weights,
    attach_legacy_h5_weights,
    decode,
)

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
ZIP_MAGIC = b"PK\x03\x04"


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
        model_config = _load_json(decode(root.attrs["model_config"]), "model_config")
        graph = parse_architecture(model_config)
        attach_legacy_h5_weights(graph, root)
        writer = decode(root.attrs.get("keras_version", "unknown"))
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
        graph = parse_architecture(model_config)
        if "model.weights.h5" not in names:
            raise UserError(f"{path} has no model.weights.h5: save the model with its weights")
        member = archive.getinfo("model.weights.h5")
        with (
            _open_member(path, archive, member) as weights_file,
            h5py.File(weights_file, "r") as root,
        ):
            sequential = model_config.get("class_name") == "Sequential"
            attach_keras3_weights(graph, root, sequential)
            yield _finish(graph, str(writer), f"Keras {writer} .keras")


def _finish(graph: KerasGraph, writer: str, source: str) -> KerasModel:
    """The flat model, each layer marked with the major version of the Keras that wrote it."""
    flat = flatten(graph)
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

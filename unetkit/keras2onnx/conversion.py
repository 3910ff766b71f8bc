"""A converted model, checked and written: in memory, or streamed to a file atomically."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import onnx

from unetkit.core import ModelInfo, UserError, atomic_path
from unetkit.keras2onnx.onnx_graph import GraphBuilder, stream_model


@dataclass
class Conversion:
    """A converted model whose weights are still read lazily from the open Keras file."""

    skeleton: onnx.ModelProto  # the whole model except the initializers
    graph: GraphBuilder
    info: ModelInfo
    notes: list[str]  # what the user should know about the export (sizes served, pinned)

    def to_model(self) -> onnx.ModelProto:
        model = onnx.ModelProto()
        model.CopyFrom(self.skeleton)
        model.graph.initializer.extend(self.graph.tensors())
        _check(model)
        return model

    def check(self) -> None:
        """onnx.checker with shape inference on the graph, the weights declared as inputs.

        Checking the written file would load all weights twice more; the tensors
        themselves come from numpy_helper.from_array.
        """
        twin = onnx.ModelProto()
        twin.CopyFrom(self.skeleton)
        twin.graph.input.extend(self.graph.declared_inputs())
        _check(twin)

    def write(self, path: str | Path) -> None:
        """Stream to a temporary file, check it, then rename: never a partial `path`."""
        self.check()
        with output_file(path) as tmp, open(tmp, "wb") as out:
            stream_model(self.skeleton, self.graph.tensors(), out)


def _check(model: onnx.ModelProto) -> None:
    try:
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as e:
        first = " ".join(str(e).split("\n")[:2])  # the cause; the rest are its consequences
        raise UserError(f"the exported graph fails onnx.checker: {first}") from e


def save_onnx(model: onnx.ModelProto, path: str | Path) -> None:
    """Write an in-memory model atomically: a reader sees the old file or the new one."""
    with output_file(path) as tmp:
        onnx.save_model(model, str(tmp))


@contextlib.contextmanager
def output_file(path: str | Path) -> Iterator[Path]:
    """atomic_path with one-line errors for outputs the user has to fix."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"output {path} is a directory; pass a file name such as model.onnx")
    try:
        with atomic_path(path) as tmp:
            yield tmp
    except OSError as e:
        reason = e.strerror or str(e)
        raise UserError(f"cannot write {path}: {reason}; choose a writable location") from e

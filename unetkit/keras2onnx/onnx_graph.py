"""Collect ONNX nodes and initializers under unique names; write large graphs by streaming.

Initializers are kept as loaders (functions returning the array) so that weights travel
from the Keras file to the ONNX file one tensor at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
import onnx
from onnx import helper, numpy_helper


@dataclass(frozen=True)
class LazyTensor:
    """An initializer whose data is produced only when the file is written."""

    shape: tuple[int, ...]
    dtype: np.dtype
    load: Callable[[], np.ndarray]

    @classmethod
    def of(cls, array: np.ndarray) -> LazyTensor:
        return cls(array.shape, array.dtype, lambda: array)


class GraphBuilder:
    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[tuple[str, LazyTensor]] = []
        self._used: set[str] = set()

    def unique(self, base: str) -> str:
        name, counter = base, 1
        while name in self._used:
            name = f"{base}_{counter}"
            counter += 1
        self._used.add(name)
        return name

    def reserve(self, name: str) -> str:
        """Claim an exact name (a graph input or output)."""
        if name in self._used:
            raise ValueError(f"tensor name {name!r} is already used")
        self._used.add(name)
        return name

    def constant(self, base: str, value: np.ndarray | LazyTensor) -> str:
        name = self.unique(base)
        self.initializers.append(
            (name, value if isinstance(value, LazyTensor) else LazyTensor.of(value))
        )
        return name

    def node(
        self, op_type: str, inputs: list[str], base: str, output: str | None = None, **attrs: object
    ) -> str:
        out = output if output is not None else self.unique(base)
        self.nodes.append(
            helper.make_node(op_type, inputs, [out], name=self.unique(f"{base}/{op_type}"), **attrs)
        )
        return out

    def tensors(self) -> Iterator[onnx.TensorProto]:
        for name, tensor in self.initializers:
            array = np.asarray(tensor.load())
            # ascontiguousarray would make a scalar 1-D: keep the shape the graph declares
            contiguous = array if array.ndim == 0 else np.ascontiguousarray(array)
            yield numpy_helper.from_array(contiguous, name)

    def declared_inputs(self) -> list[onnx.ValueInfoProto]:
        """The initializers as typed graph inputs: lets onnx.checker see a weightless twin."""
        return [
            helper.make_tensor_value_info(
                name, helper.np_dtype_to_tensor_dtype(tensor.dtype), list(tensor.shape)
            )
            for name, tensor in self.initializers
        ]


def stream_model(
    skeleton: onnx.ModelProto, tensors: Iterator[onnx.TensorProto], out: BinaryIO
) -> None:
    """Write `skeleton` plus `tensors` as its graph initializers, one tensor in memory at a time.

    Protocol buffers parse concatenated messages as one merged message, and repeated fields
    append: a ModelProto followed by ModelProto{graph{initializer}} fragments reads back as
    the full model.
    """
    out.write(skeleton.SerializeToString())
    for tensor in tensors:
        fragment = onnx.ModelProto(graph=onnx.GraphProto(initializer=[tensor]))
        out.write(fragment.SerializeToString())

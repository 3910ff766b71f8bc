"""The neutral graph a Keras file is read into: layers, their calls and their lazy weights."""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from unetkit.core import UserError

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
    operation: bool = False  # a Keras 3 operation (keras.ops.add), not a layer
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


def require(condition: bool, message: str) -> None:
    if not condition:
        raise UserError(message)


def as_dict(value: Any, what: str) -> dict[str, Any]:
    require(isinstance(value, dict), f"model config is damaged: {what} is not an object")
    return value


def as_list(value: Any, what: str) -> list[Any]:
    require(isinstance(value, list), f"model config is damaged: {what} is not a list")
    return value


def as_str(value: Any, what: str) -> str:
    require(isinstance(value, str), f"model config is damaged: {what} is not a string")
    return value


def tensor_ref(value: Any, what: str) -> TensorRef:
    items = as_list(value, what)
    require(
        len(items) >= 3
        and isinstance(items[0], str)
        and all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in items[1:3]),
        f"model config is damaged: {what} is not [layer, node, index]",
    )
    return TensorRef(items[0], items[1], items[2])

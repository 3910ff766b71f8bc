"""Which converter handles which Keras layer class: one decorator per class, no overrides.

Each converter is an `Op` subclass registered under the Keras class names it handles:

    @register_layer("Conv2D")
    class Conv2D(Op): ...

A second registration of a class name is an error, so a converter can never be replaced
silently; the kit's own converters are registered when `unetkit.keras2onnx` is imported,
and a user registers one for a custom layer class the same way, before converting.

A converter registered as "<class>:<layer name>" converts that one layer only (a Lambda,
whose class says nothing about what it computes): it is looked up before the class's own.

A class the registry lacks is converted as its base class where the file shows that base:
neither format records a layer's base class, so the kit goes by the name and the config. A
class whose name ends in "Dropout" and whose config has Dropout's `rate` (efficientnet's
FixedDropout) is a Dropout subclass: a no-op at inference, as Keras's own predict treats it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from unetkit.core import UserError

if TYPE_CHECKING:
    from unetkit.keras2onnx.keras_file import KerasLayer
    from unetkit.keras2onnx.layers.base import Op

OpClass = TypeVar("OpClass", bound="type[Op]")


class DuplicateRegistration(ValueError):
    """A Keras layer class already has a converter."""


@dataclass(frozen=True)
class Registration:
    class_name: str
    converter: type[Op]

    @property
    def family(self) -> str:
        """The module the converter lives in, e.g. 'convolution' (or the user's module)."""
        return self.converter.__module__.rsplit(".", 1)[-1]


_REGISTRY: dict[str, Registration] = {}


def register_layer(*class_names: str) -> Callable[[OpClass], OpClass]:
    """Class decorator: `converter` converts Keras layers of these class names."""
    if not class_names:
        raise ValueError("register_layer needs at least one Keras class name")

    def decorate(converter: OpClass) -> OpClass:
        for name in class_names:
            if name in _REGISTRY:
                existing = _REGISTRY[name].converter
                raise DuplicateRegistration(
                    f"Keras layer class {name!r} already has a converter "
                    f"({existing.__module__}.{existing.__qualname__})"
                )
        for name in class_names:
            _REGISTRY[name] = Registration(name, converter)
        return converter

    return decorate


def registrations() -> list[Registration]:
    """Every registered converter, by family and class name."""
    return sorted(_REGISTRY.values(), key=lambda r: (r.family, r.class_name))


def supported_layers() -> list[str]:
    return sorted(name for name in _REGISTRY if ":" not in name)


def registry_key(layer: KerasLayer) -> str:
    """The class name the registry knows a layer by: "keras.ops.<class>" for a Keras 3
    operation (ops.add is saved as class Add, not the Add layer)."""
    return f"keras.ops.{layer.class_name}" if layer.operation else layer.class_name


def _registration(layer: KerasLayer) -> Registration | None:
    key = registry_key(layer)
    found = _REGISTRY.get(f"{key}:{layer.name}") or _REGISTRY.get(key)
    if found is None and layer.class_name.endswith("Dropout") and "rate" in layer.config:
        found = _REGISTRY.get("Dropout")  # a Dropout subclass (efficientnet's FixedDropout)
    return found


def make_op(layer: KerasLayer, layout: str) -> Op:
    registration = _registration(layer)
    if registration is None:
        raise UserError(
            f"layer {layer.name!r} of class {registry_key(layer)} is not supported: register a "
            "converter for it with unetkit.keras2onnx.register_layer (docs/converter.md: 'Your own "
            "layers'), or rebuild the model from supported layers "
            f"({', '.join(['InputLayer', *supported_layers()])})"
        )
    return registration.converter(layer, layout)


def supported_layers_markdown() -> str:
    """The README's table of supported layers, generated from the registry."""
    from unetkit.keras2onnx.layers.functions import ACTIVATIONS

    families: dict[str, list[Registration]] = {}
    for registration in registrations():
        families.setdefault(registration.family, []).append(registration)
    rows = ["| family | Keras layer classes |", "|---|---|", "| input | InputLayer |"]
    for family, members in families.items():
        rows.append(f"| {family} | {', '.join(r.class_name for r in members)} |")
    return "\n".join(
        [
            *rows,
            "",
            f"Activation functions (`activation=` and the `Activation` layer): "
            f"{', '.join(ACTIVATIONS)}.",
        ]
    )

"""A layer call's arguments by parameter name, as either Keras recorded them.

tf.keras keeps a call's first argument as its inbound entries (`FIRST_ARGUMENT`) and every
other argument as a keyword (MultiHeadAttention(q, v) is saved as q with `value=v`); Keras 3
keeps positional arguments (`ARGUMENTS`) and keywords. Tensors are `InputSlot`s (the call's
input they arrive on), constants are their values.
"""

from __future__ import annotations

from typing import Any

from unetkit.keras2onnx.keras_file import ARGUMENTS, FIRST_ARGUMENT, InputSlot
from unetkit.keras2onnx.layers.base import Config

IGNORED = frozenset({"training", "mask"})  # Keras's own call plumbing, no effect at inference


def call_arguments(config: Config, parameters: tuple[str, ...]) -> dict[str, Any]:
    """The arguments of the layer's call(s) by name (every call must pass the same ones).

    `parameters` are the call's parameter names in order. An argument the kit does not know
    is refused, naming it.
    """
    layer = config.layer
    found: list[dict[str, Any]] = [
        _one_call(config, kwargs, parameters) for kwargs in layer.call_kwargs
    ]
    if not found:
        return {parameters[0]: InputSlot(0)}
    if any(f != found[0] for f in found[1:]):
        raise config.fail("called several times with different arguments; not supported")
    return found[0]


def _one_call(
    config: Config, kwargs: dict[str, Any], parameters: tuple[str, ...]
) -> dict[str, Any]:
    if FIRST_ARGUMENT in kwargs:
        first = kwargs[FIRST_ARGUMENT]
        positional = [first[0] if len(first) == 1 else first]
    else:
        positional = list(kwargs.get(ARGUMENTS, [InputSlot(0)]))
    if len(positional) > len(parameters):
        raise config.fail(f"called with {len(positional)} positional arguments")
    named = dict(zip(parameters, positional, strict=False))
    for key, value in kwargs.items():
        if key in (FIRST_ARGUMENT, ARGUMENTS) or key in IGNORED:
            continue
        if key not in parameters:
            raise config.fail(
                f"called with argument {key}={value!r}, which the kit does not convert"
            )
        named[key] = value
    return named


def slot(config: Config, arguments: dict[str, Any], name: str) -> int | None:
    """The input an argument's tensor arrives on; None when it is not passed."""
    value = arguments.get(name)
    if value is None:
        return None
    if not isinstance(value, InputSlot):
        raise config.fail(f"argument {name} is a constant ({value!r}), not a tensor")
    return value.index

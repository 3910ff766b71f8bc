"""Lambda layers: a Python function, which the kit never runs.

It converts only the Lambdas of the public libraries it knows, recognised from what the file
states as data (the module that defined the function, the function's name, its arguments, the
names its code refers to, read as strings and never unmarshalled). Anything else is refused in
one line naming the way out: rebuild the model without it, or register a converter for that
one layer (`@register_layer("Lambda:name")`).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from unetkit.keras2onnx.keras_file import KerasLayer
from unetkit.keras2onnx.layers.base import Config, Op, Shape, rank_of, with_rank
from unetkit.keras2onnx.layers.tf_functions import LAMBDA_HELP, Delegate, Resize
from unetkit.keras2onnx.onnx_graph import GraphBuilder
from unetkit.keras2onnx.registry import register_layer


def _code_strings(function: Any) -> set[bytes] | None:
    """The identifiers a tf.keras Lambda's marshalled code object mentions: length-prefixed
    ASCII runs, found by scanning the bytes (never unmarshalled: that could run or crash
    on foreign data). None when the function is not stored as code."""
    if not isinstance(function, list) or not function or not isinstance(function[0], str):
        return None
    try:
        code = base64.b64decode(function[0].encode("ascii"), validate=False)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return None
    found = set()
    for i in range(len(code) - 1):
        length = code[i]
        text = code[i + 1 : i + 1 + length]
        if 0 < length == len(text) and all(0x21 <= b <= 0x7E for b in text):
            found.add(text)
    return found


@dataclass(frozen=True)
class KnownLambda:
    """A public library's Lambda: the module that defines it, the names its code uses (or its
    function name, as Keras 3 stores it), the keyword arguments it takes, its converter."""

    library: str
    module: str | None
    function_name: str
    code_names: frozenset[bytes]
    arguments: frozenset[str]
    build: Callable[[KerasLayer, str, dict[str, Any]], Op]

    def matches(self, layer: KerasLayer) -> bool:
        config = layer.config
        arguments = config.get("arguments") or {}
        if not isinstance(arguments, dict) or set(arguments) != self.arguments:
            return False
        function = config.get("function")
        if isinstance(function, dict):  # Keras 3 keeps a named function's name only
            return (
                function.get("class_name") == "function"
                and function.get("config") == self.function_name
            )
        names = _code_strings(function)
        return (
            names is not None and config.get("module") == self.module and self.code_names <= names
        )


def _expand_to_map(layer: KerasLayer, layout: str, arguments: dict[str, Any]) -> Op:
    """classification_models' expand_dims(x, channels_axis): (batch, C) -> a 1x1 map."""
    expected = 3 if layout == "channels_last" else 1
    if arguments.get("channels_axis") != expected:
        raise Config(layer).fail(f"expand_dims with {arguments} for a {layout} model")
    return VectorToMap(layer, layout)


def _aspp_resize(layer: KerasLayer, layout: str, arguments: dict[str, Any]) -> Op:
    """keras-unet-collection's ASPP_conv: tf.compat.v1.image.resize(x, shape[1:3],
    'bilinear', align_corners=True), the shape kept in the function's closure."""
    function = layer.config.get("function")
    closure = function[2] if isinstance(function, list) and len(function) > 2 else None
    shape = closure[0] if isinstance(closure, list) and closure else None
    if not isinstance(shape, list) or len(shape) != 4:
        raise Config(layer).fail(f"expected the target shape in its closure, found {closure!r}")
    size = shape[1:3] if layout == "channels_last" else shape[2:4]
    return Resize(layer, layout, size, "bilinear", "align_corners")


KNOWN_LAMBDAS = (
    KnownLambda(
        "image-classifiers (segmentation-models' SE-ResNet/SE-ResNeXt encoders)",
        "classification_models.models._common_blocks",
        "expand_dims",
        frozenset({b"expand_dims", b"channels_axis"}),
        frozenset({"channels_axis"}),
        _expand_to_map,
    ),
    KnownLambda(
        "keras-unet-collection (ResUNet-a's ASPP)",
        "keras_unet_collection.layer_utils",
        "<lambda>",
        frozenset({b"image", b"resize", b"bilinear", b"align_corners", b"shape_before"}),
        frozenset(),
        _aspp_resize,
    ),
)


class VectorToMap(Op):
    def output_shape(self, shapes: list[Shape]) -> Shape:
        shape = self.single(shapes)
        if rank_of(shape) != 2:
            raise Config(self.layer).fail("expand_dims expects a (batch, C) vector")
        return with_rank(shape, 4)

    def emit(self, g: GraphBuilder, inputs: list[str], shapes: list[Shape]) -> str:
        return inputs[0]


@register_layer("Lambda")
class Lambda(Delegate):
    """A Lambda of a library the kit knows (KNOWN_LAMBDAS), else a one-line refusal."""

    def __init__(self, layer: KerasLayer, layout: str) -> None:
        super().__init__(layer, layout)
        known = next((k for k in KNOWN_LAMBDAS if k.matches(layer)), None)
        if known is None:
            raise Config(layer).fail(
                "a Lambda layer holds Python code, which the kit does not run or convert; "
                + LAMBDA_HELP.format(key=f"Lambda:{layer.name}")
            )
        self.impl = known.build(layer, layout, layer.config.get("arguments") or {})
        self.stride = self.impl.stride

"""Public libraries' own layer classes, known by class name and the config fields they write.

Neither file format records a layer's code, only its class name, its config and (.keras)
its module. A library layer is converted when all three say it is the library's: the
config has exactly the library's fields (besides Keras's own name, trainable, dtype) and
the module, where the file names one, is the library's. A class of the same name with
another config is someone else's layer and is refused in one line.
"""

from __future__ import annotations

from typing import ClassVar

from unetkit.keras2onnx.keras_file import KerasLayer
from unetkit.keras2onnx.layers.base import Config, Op

KERAS_FIELDS = frozenset({"name", "trainable", "dtype"})
KUC = "keras-unet-collection 0.1.13"
KUC_MODULE = "keras_unet_collection.transformer_layers"


class LibraryLayer(Op):
    """A library's layer: `FIELDS` are the config fields its get_config writes."""

    LIBRARY: ClassVar[str] = KUC
    MODULE: ClassVar[str] = KUC_MODULE
    FIELDS: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, layer: KerasLayer, layout: str) -> None:
        self.config = Config(layer)
        fields = frozenset(layer.config) - KERAS_FIELDS
        if fields != self.FIELDS or layer.module not in (None, self.MODULE):
            found = f"config fields {', '.join(sorted(fields)) or '(none)'}" + (
                f" from module {layer.module}" if layer.module not in (None, self.MODULE) else ""
            )
            raise self.config.fail(
                f"has {found}, not those of {self.LIBRARY}'s {layer.class_name} "
                f"({', '.join(sorted(self.FIELDS))}); if it is a layer of your own, register a "
                f"converter with @register_layer({layer.class_name!r}) "
                "(docs/converter.md: 'Your own layers')"
            )
        super().__init__(layer, layout)

    def pair(self, key: str) -> tuple[int, int]:
        """A (height, width) setting: an int means a square."""
        return self.config.pair(key)

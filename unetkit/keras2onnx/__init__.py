"""Keras .h5/.keras file -> ONNX with the kit's I/O contract, without TensorFlow.

`keras_file` reads the file into a neutral graph of layers, `layers/` holds one converter
per Keras layer family (registered with `register_layer`), `converter` runs a conversion:
`schedule` orders the layer calls, `size_search` finds the sizes the export serves, `emit`
builds the ONNX graph and `conversion` writes it.
"""

from typing import TYPE_CHECKING

from unetkit.core import lazy_exports
from unetkit.keras2onnx import layers  # noqa: F401  (the kit's converters register first)

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "converter": ["DEFAULT_OPSET", "MIN_OPSET", "convert", "export_onnx", "write_onnx"],
        "conversion": ["Conversion", "save_onnx"],
        "registry": [
            "DuplicateRegistration",
            "Registration",
            "register_layer",
            "registrations",
            "supported_layers",
            "supported_layers_markdown",
        ],
        "layers.base": ["Config", "Op", "Shape", "ShapeMismatch"],
        "onnx_graph": ["GraphBuilder", "LazyTensor"],
    },
)

if TYPE_CHECKING:  # what editors and type checkers follow; the names load on first use
    from unetkit.keras2onnx.conversion import Conversion, save_onnx
    from unetkit.keras2onnx.converter import (
        DEFAULT_OPSET,
        MIN_OPSET,
        convert,
        export_onnx,
        write_onnx,
    )
    from unetkit.keras2onnx.layers.base import Config, Op, Shape, ShapeMismatch
    from unetkit.keras2onnx.onnx_graph import GraphBuilder, LazyTensor
    from unetkit.keras2onnx.registry import (
        DuplicateRegistration,
        Registration,
        register_layer,
        registrations,
        supported_layers,
        supported_layers_markdown,
    )

"""Load a contract ONNX file for the engine build and refuse anything that is not one."""

from __future__ import annotations

from pathlib import Path

import onnx

from unetkit.contract import INPUT_IMAGE, OUTPUT_MASK, OUTPUT_PROB
from unetkit.errors import UserError
from unetkit.export import ModelInfo, read_model_info

_FIX = "export it with build/export_onnx.py"
_TYPES = {
    INPUT_IMAGE: onnx.TensorProto.UINT8,
    OUTPUT_PROB: onnx.TensorProto.FLOAT,
    OUTPUT_MASK: onnx.TensorProto.UINT8,
}


def load_onnx(path: Path) -> onnx.ModelProto:
    if not path.is_file():
        raise UserError(f"{path}: no such ONNX file ({_FIX})")
    try:
        return onnx.load(str(path))
    except Exception as e:
        raise UserError(f"{path}: not a readable ONNX file ({type(e).__name__}): {_FIX}") from e


def contract_info(model: onnx.ModelProto) -> ModelInfo:
    """The converter's ModelInfo, after checking the IMAGE/PROB/MASK names and types."""
    tensors = {v.name: v for v in (*model.graph.input, *model.graph.output)}
    for name, elem_type in _TYPES.items():
        if name not in tensors:
            raise UserError(f"the ONNX model has no tensor {name!r}: {_FIX}")
        found = tensors[name].type.tensor_type.elem_type
        if found != elem_type:
            raise UserError(
                f"ONNX {name} is {onnx.TensorProto.DataType.Name(found)}, the contract says "
                f"{onnx.TensorProto.DataType.Name(elem_type)}: {_FIX}"
            )
    return read_model_info(model)

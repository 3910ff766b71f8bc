"""--input-dtype: IMAGE as uint16 or float32 for models trained on 16-bit or float data. The
in-graph normalization follows the type's scale, so the same picture on each scale gives
the same PROB; the contract is otherwise unchanged."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from tests.helpers import GOLDEN
from tests.helpers import REPO_ROOT as ROOT
from unetkit.core import INPUT_IMAGE, OUTPUT_PROB, contract_info
from unetkit.keras2onnx import export_onnx

MODEL = GOLDEN / "models" / "sequential_k3.keras"
CLI = ROOT / "build" / "export_onnx.py"
PICTURE = np.random.default_rng(11).integers(0, 256, (2, 32, 32, 1), dtype=np.uint8)
# the picture on each type's scale: 0..255, 0..65535, 0..1
ON_SCALE = {
    "uint8": PICTURE,
    "uint16": PICTURE.astype(np.uint16) * 257,
    "float32": PICTURE.astype(np.float32) / 255,
}
ELEM_TYPES = {
    "uint8": onnx.TensorProto.UINT8,
    "uint16": onnx.TensorProto.UINT16,
    "float32": onnx.TensorProto.FLOAT,
}


def prob(model: onnx.ModelProto, image: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (out,) = session.run([OUTPUT_PROB], {INPUT_IMAGE: image})
    return out


@pytest.mark.parametrize("dtype", ["uint16", "float32"])
def test_each_input_type_normalizes_its_own_scale_to_the_same_prob(dtype: str) -> None:
    reference, _ = export_onnx(MODEL)
    model, info = export_onnx(MODEL, input_dtype=dtype)
    assert model.graph.input[0].type.tensor_type.elem_type == ELEM_TYPES[dtype]
    assert info.input_dtype == dtype and contract_info(model) == info
    assert info.std == ((65535.0,) if dtype == "uint16" else (1.0,))  # the top of its scale
    np.testing.assert_allclose(
        prob(model, ON_SCALE[dtype]), prob(reference, PICTURE), rtol=0, atol=1e-6
    )


def test_the_command_line_takes_input_dtype(tmp_path: Path, capsys) -> None:
    out = tmp_path / "model.onnx"
    argv = sys.argv
    sys.argv = [str(CLI), str(MODEL), "-o", str(out), "--input-dtype", "float32"]
    try:
        with pytest.raises(SystemExit) as exited:
            runpy.run_path(str(CLI), run_name="__main__")
    finally:
        sys.argv = argv
    assert exited.value.code == 0
    assert "IMAGE float32 [N,H,W,1]" in capsys.readouterr().out
    assert contract_info(onnx.load(str(out))).input_dtype == "float32"

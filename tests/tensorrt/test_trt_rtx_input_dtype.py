"""The GPU route with an IMAGE of another type (export --input-dtype), on TensorRT-RTX ahead
of time with no GPU (`make check-trt-rtx`): the same ONNX a float32-input CPU repository
serves parses into a network with a FLOAT input, fp16 included, and builds through
build_engine.py; a uint16 IMAGE, which TensorRT's parser cannot take, is refused in one
line before any TensorRT work."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import ModuleType

import onnx
import pytest

from tests.helpers import REPO_ROOT
from tests.helpers.engine import AOT_COMPUTE_CAPABILITY, prepare
from unetkit import tensorrt
from unetkit.core import contract_info
from unetkit.keras2onnx import write_onnx
from unetkit.pipelines import EXAMPLE_MODEL

pytestmark = pytest.mark.trt_rtx

TOOL = REPO_ROOT / "build" / "build_engine.py"


@pytest.fixture(scope="module")
def trt() -> ModuleType:
    return tensorrt.import_tensorrt("tensorrt_rtx")


def exported(folder: Path, dtype: str) -> Path:
    version = folder / "unet" / "1"
    version.mkdir(parents=True)
    write_onnx(EXAMPLE_MODEL, version / "model.onnx", input_dtype=dtype)
    return version / "model.onnx"


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_a_float32_image_parses_into_a_float_input(trt, tmp_path, precision):
    model = onnx.load(str(exported(tmp_path, "float32")))
    setup = prepare(trt, model, contract_info(model), precision)
    image = setup.network.get_input(0)
    assert (image.name, image.dtype) == ("IMAGE", trt.DataType.FLOAT)


def build(onnx_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable, str(TOOL), str(onnx_path), "-o", str(onnx_path.with_name("model.plan")),
            "--tensorrt-module", "tensorrt_rtx", "--compute-capability", AOT_COMPUTE_CAPABILITY,
            "--skip-check",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip


def test_build_engine_builds_a_float32_image_and_refuses_uint16_in_one_line(tmp_path):
    built = build(exported(tmp_path / "float", "float32"))
    assert built.returncode == 0, built.stdout + built.stderr
    config = (tmp_path / "float" / "unet" / "config.pbtxt").read_text()
    assert config.count("data_type: TYPE_FP32") == 3  # IMAGE, PROB and the warm-up's IMAGE

    refused = build(exported(tmp_path / "sixteen", "uint16"))
    assert refused.returncode == 2
    assert refused.stderr.splitlines() == [
        "error: TensorRT has no uint16 tensors: export the model with --input-dtype float32 "
        "for the GPU route (clients then send 0..1, 16-bit images lose nothing)"
    ]
    assert not (tmp_path / "sixteen" / "unet" / "1" / "model.plan").exists()

"""The fp16 copy that TensorRT 11 builds from (no FP16 builder flag there), run in ONNX
Runtime against the fp32 model with the same tolerance check build_engine.py applies."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto

from tests.helpers import REPO_ROOT
from tests.helpers.engine import lower_plugin_nodes, run, save, tiny_unet
from unetkit.core import BatchShape, Profile, load_samples, read_model_info
from unetkit.tensorrt import accuracy, rewrite_upsampling, to_fp16


def types(model: onnx.ModelProto) -> dict[str, int]:
    return {t.name: t.data_type for t in model.graph.initializer}


def test_fp16_inside_contract_types_at_the_edges(tmp_path):
    model = tiny_unet(channels=3)
    before = model.SerializeToString()
    half = to_fp16(model)
    assert model.SerializeToString() == before
    onnx.checker.check_model(half, full_check=True)
    edges = {v.name: v.type.tensor_type.elem_type for v in (*half.graph.input, *half.graph.output)}
    assert edges == {
        "IMAGE": TensorProto.UINT8,
        "PROB": TensorProto.FLOAT,
        "MASK": TensorProto.UINT8,
    }
    kinds = types(half)
    assert {kinds[n] for n in ("w1", "b1", "w2", "b2", "w3", "b3", "scale255")} == {
        TensorProto.FLOAT16
    }
    # Resize scales must stay float; the threshold compares the float32 PROB
    assert kinds["up_scales"] == kinds["threshold"] == TensorProto.FLOAT

    reference = accuracy.onnxruntime_runner(save(model, tmp_path / "fp32.onnx"))
    candidate = accuracy.onnxruntime_runner(save(half, tmp_path / "fp16.onnx"))
    rng = np.random.default_rng(3)
    inputs = [rng.integers(0, 256, (2, 64, 96, 3), dtype=np.uint8) for _ in range(3)]
    result = accuracy.compare(reference, candidate, inputs, "fp16")
    assert result.passed and result.max_abs_prob_diff > 0


def test_plugin_rewrite_of_the_fp16_copy_keeps_its_results():
    half = to_fp16(tiny_unet())
    rewritten = rewrite_upsampling(half)
    assert len(rewritten.replaced) == 1
    image = np.random.default_rng(4).integers(0, 256, (2, 32, 32, 1), dtype=np.uint8)
    expected, got = run(half, image), run(lower_plugin_nodes(rewritten.model), image)
    # ONNX Runtime runs some fp16 CPU kernels in float32 behind inserted casts, and where
    # depends on the graph: the two agree to within an fp16 rounding step, not bit for bit.
    np.testing.assert_allclose(got[0], expected[0], rtol=0, atol=2e-3)
    assert np.mean(got[1] == expected[1]) >= accuracy.MASK_AGREEMENT_REQUIRED


def test_fp16_copy_of_the_example_model_passes_the_engine_tolerance(example_onnx, tmp_path):
    path = example_onnx
    info = read_model_info(path)
    half = save(to_fp16(onnx.load(str(path))), tmp_path / "fp16.onnx")
    samples = load_samples(REPO_ROOT / "samples", info.channels)[:2]
    profile = Profile(BatchShape(1, 16, 16), BatchShape(2, 256, 256), BatchShape(2, 256, 256))
    inputs, _ = accuracy.batches(samples, profile, info)
    result = accuracy.compare(
        accuracy.onnxruntime_runner(path), accuracy.onnxruntime_runner(half), inputs, "fp16"
    )
    assert result.passed, accuracy.describe(result)

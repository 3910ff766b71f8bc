"""The CPU route's engines, real OpenVINO and ONNX Runtime on the exported example model: the
same numbers from the same file, OpenVINO's kept activations given back, and which
candidates an export measures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from unetkit.core import INPUT_IMAGE, OUTPUT_MASK, OUTPUT_PROB, UserError, load_samples
from unetkit.core import read_model_info as model_info
from unetkit.triton import (
    AUTO,
    FP32,
    INT8,
    ONNXRUNTIME,
    OPENVINO,
    EngineSpec,
    choose_engine,
    native_bf16,
    open_engine,
    resident_bytes,
)
from unetkit.triton.engine_choice import candidate_specs

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def test_both_runtimes_compute_the_same_fp32_model(example_onnx: Path) -> None:
    image = np.random.default_rng(3).integers(0, 256, (2, 64, 96, 1), np.uint8)
    outputs = [OUTPUT_PROB, OUTPUT_MASK]
    prob_ort, mask_ort = open_engine(EngineSpec(ONNXRUNTIME, FP32), example_onnx, 1).run(
        outputs, {INPUT_IMAGE: image}
    )
    prob_ov, mask_ov = open_engine(EngineSpec(OPENVINO, FP32), example_onnx, 1).run(
        outputs, {INPUT_IMAGE: image}
    )
    assert prob_ov.shape == prob_ort.shape == (2, 64, 96, 1) and mask_ov.dtype == np.uint8
    np.testing.assert_allclose(prob_ov, prob_ort, rtol=0, atol=1e-4)
    assert np.mean(mask_ov != mask_ort) < 1e-4


def test_openvino_gives_back_the_activations_of_a_large_call(example_onnx: Path) -> None:
    engine = open_engine(EngineSpec(OPENVINO, FP32), example_onnx, 2)
    engine.run([OUTPUT_MASK], {INPUT_IMAGE: np.zeros((1, 64, 64, 1), np.uint8)})
    small = resident_bytes()
    engine.run([OUTPUT_MASK], {INPUT_IMAGE: np.zeros((1, 1024, 1024, 1), np.uint8)})
    large = resident_bytes()
    assert engine.keeps_activations and large - small > 150 << 20  # ~350 B per pixel, kept
    engine.release()
    assert large - resident_bytes() > 150 << 20
    (mask,) = engine.run([OUTPUT_MASK], {INPUT_IMAGE: np.zeros((1, 64, 64, 1), np.uint8)})
    assert mask.shape == (1, 64, 64)  # recompiled, and runs


def specs(precision: str, runtime: str, has_int8: bool = True) -> dict[str, str]:
    return {str(c.spec): c.skipped for c in candidate_specs(precision, runtime, has_int8)}


def test_an_export_measures_every_runtime_and_precision_it_may_serve() -> None:
    every = specs(AUTO, AUTO)
    assert next(iter(every)) == "onnxruntime fp32"  # the reference, first
    assert set(every) == {
        "onnxruntime fp32",
        "openvino fp32",
        "openvino int8",
        "openvino bf16",
        "onnxruntime int8",
    }
    bf16 = every["openvino bf16"]
    assert bf16 == (
        "" if native_bf16() else "this CPU has no native bf16 (OpenVINO would emulate it)"
    )
    assert set(specs(FP32, AUTO)) == {"onnxruntime fp32", "openvino fp32"}
    assert set(specs(AUTO, ONNXRUNTIME)) == {"onnxruntime fp32", "onnxruntime int8"}
    assert set(specs(AUTO, AUTO, has_int8=False)) == {
        "onnxruntime fp32",
        "openvino fp32",
        "openvino bf16",
    }
    with pytest.raises(UserError, match="precision 'fp16': use auto, int8, bf16, fp32"):
        specs("fp16", AUTO)


def test_a_precision_asked_for_by_name_falls_back_to_fp32(example_onnx: Path) -> None:
    """int8 asked for, none exported: fp32 serves, with the reason in one line."""
    info = model_info(example_onnx)
    samples = load_samples(SAMPLES, info.channels)[:2]
    choice = choose_engine({FP32: example_onnx}, info, samples, INT8, ONNXRUNTIME, 1)
    assert choice.served == EngineSpec(ONNXRUNTIME, FP32)
    assert choice.reason.startswith("serving onnxruntime fp32: ") and "\n" not in choice.reason
    (reference,) = choice.candidates
    assert reference.images_per_s > 0 and reference.gate is None

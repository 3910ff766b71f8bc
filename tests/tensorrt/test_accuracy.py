"""The tolerance check build_engine.py exits on, with ONNX Runtime as the reference.

The candidate runners stand for an engine: ONNX Runtime itself (must pass), and ONNX
Runtime with a perturbation of known size (must pass or fail exactly at the tolerance).
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from PIL import Image

from tests.helpers import REPO_ROOT
from tests.helpers.engine import save, tiny_unet
from unetkit.core import BatchShape, ModelInfo, Profile, SizeRule, UserError, load_samples
from unetkit.tensorrt import accuracy

PROFILE = Profile(BatchShape(1, 16, 16), BatchShape(4, 32, 32), BatchShape(4, 256, 256))


def model_info(multiple: int = 2) -> ModelInfo:
    rule = SizeRule(multiple, multiple)
    return ModelInfo(1, 1, rule, rule, None, (0, 0, 0, 0), 0.5, (0.0,), (255.0,), "test")


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> accuracy.Runner:
    path = save(tiny_unet(), tmp_path_factory.mktemp("onnx") / "tiny.onnx")
    return accuracy.onnxruntime_runner(path)


def images(count: int = 3, size: int = 32) -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    return [rng.integers(0, 256, (2, size, size, 1), dtype=np.uint8) for _ in range(count)]


def shifted(runner: accuracy.Runner, delta: float, flip_pixels: int = 0) -> accuracy.Runner:
    def run(batch: np.ndarray) -> accuracy.Outputs:
        prob, mask = runner(batch)
        mask = mask.copy()
        mask.reshape(-1)[:flip_pixels] ^= 1
        return prob + np.float32(delta), mask

    return run


def test_the_reference_against_itself_is_exact(reference):
    result = accuracy.compare(reference, reference, images(), "fp32")
    assert result.passed and result.max_abs_prob_diff == 0 and result.mask_agreement == 1
    assert result.samples == 6
    assert "ok" in accuracy.describe(result)


@pytest.mark.parametrize(
    "delta,precision,passed",
    [(5e-4, "fp32", True), (5e-3, "fp32", False), (5e-3, "fp16", True), (5e-2, "fp16", False)],
)
def test_prob_tolerance_per_precision(reference, delta, precision, passed):
    result = accuracy.compare(reference, shifted(reference, delta), images(), precision)
    assert result.max_abs_prob_diff == pytest.approx(delta, rel=1e-3)
    assert result.passed is passed


def test_mask_agreement_threshold(reference):
    batches = images(count=2, size=256)  # 262,144 mask pixels: 0.1% is 262
    few = accuracy.compare(reference, shifted(reference, 0, flip_pixels=100), batches, "fp32")
    many = accuracy.compare(reference, shifted(reference, 0, flip_pixels=150), batches, "fp32")
    assert few.mask_agreement == 1 - 200 / 262144
    assert few.passed and not many.passed
    assert "FAILED" in accuracy.describe(many)


def test_shape_disagreement_is_an_error(reference):
    def cropped(batch: np.ndarray) -> accuracy.Outputs:
        prob, mask = reference(batch)
        return prob[:, :-1], mask[:, :-1]

    with pytest.raises(UserError, match="output shapes"):
        accuracy.compare(reference, cropped, images(), "fp32")


def test_committed_samples_are_loaded_and_batched_within_the_rules():
    samples = load_samples(REPO_ROOT / "samples", channels=1)
    assert len(samples) == 8 and all(s.image.shape[2] == 1 for s in samples)
    profile = Profile(BatchShape(1, 16, 16), BatchShape(4, 256, 256), BatchShape(4, 256, 256))
    inputs, skipped = accuracy.batches(samples, profile, model_info(16))
    # six 256x256 images: one single, then batches of 4 and 2; 320x240 is outside the
    # profile and 300x200 is not a multiple of 16
    assert [b.shape for b in inputs] == [(1, 256, 256, 1), (4, 256, 256, 1), (2, 256, 256, 1)]
    assert len(skipped) == 2
    assert any("cells_07" in s and "outside the profile" in s for s in skipped)
    assert any("cells_08" in s and "multiple of 16" in s for s in skipped)


def test_samples_are_converted_to_the_models_channels(tmp_path):
    Image.new("RGB", (32, 16), (10, 200, 30)).save(tmp_path / "rgb.png")
    Image.new("L", (32, 16), 77).save(tmp_path / "gray.png")
    gray = load_samples(tmp_path, channels=1)
    assert [s.image.shape for s in gray] == [(16, 32, 1), (16, 32, 1)]
    rgb = load_samples(tmp_path, channels=3)
    # sorted by name: gray.png, rgb.png
    assert rgb[0].image[0, 0].tolist() == [77, 77, 77]
    assert rgb[1].image.shape == (16, 32, 3) and rgb[1].image[0, 0].tolist() == [10, 200, 30]


def test_sample_problems_are_one_line_errors(tmp_path):
    with pytest.raises(UserError, match=r"no \.png or \.jpg images"):
        load_samples(tmp_path, channels=1)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(UserError, match=r"cannot read image .*broken\.png"):
        load_samples(tmp_path, channels=1)
    with pytest.raises(UserError, match="takes 2 channels"):
        load_samples(tmp_path, channels=2)


def test_onnxruntime_runner_runs_the_contract_outputs(tmp_path):
    path = save(tiny_unet(channels=3), tmp_path / "rgb.onnx")
    prob, mask = accuracy.onnxruntime_runner(path)(np.zeros((2, 8, 8, 3), np.uint8))
    assert prob.shape == (2, 8, 8, 1) and prob.dtype == np.float32
    assert mask.shape == (2, 8, 8) and mask.dtype == np.uint8
    assert onnx.load(str(path)).graph.input[0].name == "IMAGE"

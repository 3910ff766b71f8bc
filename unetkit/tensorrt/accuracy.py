"""Does an engine compute what the ONNX model computes? Sample images, ONNX Runtime
reference outputs, and the tolerance check the engine build exits on."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from unetkit.core import (
    INPUT_IMAGE,
    OUTPUT_MASK,
    OUTPUT_PROB,
    ModelInfo,
    Profile,
    Sample,
    UserError,
)
from unetkit.tensorrt.build_report import Accuracy

# max |PROB difference| allowed per precision, and the share of MASK pixels that must agree
PROB_TOLERANCE = {"fp32": 1e-3, "fp16": 2e-2}
MASK_AGREEMENT_REQUIRED = 0.999

Outputs = tuple[np.ndarray, np.ndarray]  # PROB, MASK
Runner = Callable[[np.ndarray], Outputs]


def batches(
    samples: list[Sample], profile: Profile, info: ModelInfo
) -> tuple[list[np.ndarray], list[str]]:
    """Same-sized samples, on the model's input scale, stacked into batches the engine
    accepts, and why others were left out. Each size contributes one single image and then
    full batches, so both the batch-1 and the batched kernels are checked."""
    by_size: dict[tuple[int, int], list[np.ndarray]] = {}
    skipped = []
    for sample in samples:
        h, w = sample.image.shape[:2]
        problem = info.check_size(h, w)
        if problem is None and not (
            profile.min.height <= h <= profile.max.height
            and profile.min.width <= w <= profile.max.width
        ):
            problem = f"outside the profile {profile.min} .. {profile.max}"
        if problem:
            skipped.append(f"{sample.name} ({h}x{w}: {problem})")
            continue
        by_size.setdefault((h, w), []).append(info.from_8bit(sample.image))
    inputs = []
    for images in by_size.values():
        inputs.append(images[0][None])
        for start in range(0, len(images), profile.max.batch):
            chunk = images[start : start + profile.max.batch]
            if len(chunk) > 1:
                inputs.append(np.stack(chunk))
    return inputs, skipped


def onnxruntime_runner(onnx_path: Path) -> Runner:
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])

    def run(images: np.ndarray) -> Outputs:
        prob, mask = session.run([OUTPUT_PROB, OUTPUT_MASK], {INPUT_IMAGE: images})
        return prob, mask

    return run


def compare(
    reference: Runner, candidate: Runner, inputs: list[np.ndarray], precision: str
) -> Accuracy:
    if precision not in PROB_TOLERANCE:
        raise UserError(f"unknown precision {precision!r}: use fp32 or fp16")
    worst = 0.0
    equal = total = 0
    for images in inputs:
        ref_prob, ref_mask = reference(images)
        prob, mask = candidate(images)
        if prob.shape != ref_prob.shape or mask.shape != ref_mask.shape:
            raise UserError(
                f"engine output shapes {prob.shape}/{mask.shape} differ from ONNX "
                f"{ref_prob.shape}/{ref_mask.shape}"
            )
        worst = max(worst, float(np.max(np.abs(prob.astype(np.float64) - ref_prob))))
        equal += int(np.count_nonzero(mask == ref_mask))
        total += mask.size
    agreement = equal / total if total else 0.0
    tolerance = PROB_TOLERANCE[precision]
    return Accuracy(
        samples=sum(len(b) for b in inputs),
        max_abs_prob_diff=worst,
        mask_agreement=agreement,
        prob_tolerance=tolerance,
        mask_agreement_required=MASK_AGREEMENT_REQUIRED,
        passed=total > 0 and worst <= tolerance and agreement >= MASK_AGREEMENT_REQUIRED,
    )


def describe(accuracy: Accuracy) -> str:
    verdict = "ok" if accuracy.passed else "FAILED"
    return (
        f"engine vs ONNX Runtime on {accuracy.samples} image(s): max |PROB diff| "
        f"{accuracy.max_abs_prob_diff:.3g} (tolerance {accuracy.prob_tolerance:g}), MASK "
        f"{accuracy.mask_agreement:.4%} equal "
        f"(need {accuracy.mask_agreement_required:.1%}): {verdict}"
    )

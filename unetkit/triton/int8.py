"""int8 for the CPU route: ONNX Runtime's static quantization, calibrated on sample images,
and the accuracy gate every faster engine (int8, bf16) must pass before it is served instead
of fp32 in ONNX Runtime, the reference.

Only the network's own layers are quantized (weights int8 per output channel, activations
uint8, as quantize/dequantize pairs around them); the pixel normalization at the input and
the threshold or argmax that makes MASK stay float, so IMAGE, PROB and MASK keep their
meaning. The gate compares MASK with the fp32 model on the calibration images and on images
held back from calibration, and the IoU against ground truth where the samples have some.
It takes engines (unetkit.triton.engines), so the same gate measures ONNX Runtime's and
OpenVINO's int8 and OpenVINO's bf16.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from unetkit.core import INPUT_IMAGE, OUTPUT_MASK, ModelInfo, Sample, UserError, iou
from unetkit.triton.engines import Engine

# Quantize these ops: the convolutions and what lies between them; nothing of the input's
# normalization (Cast, Sub, Div, Transpose) or of MASK (Squeeze, Greater, ArgMax, Cast).
QUANTIZED_OPS = ("Conv", "ConvTranspose", "Relu", "MaxPool", "AveragePool", "Concat", "Resize")
MASK_AGREEMENT_REQUIRED = 0.999
IOU_LOSS_ALLOWED = 0.005
HELD_BACK_EVERY = 4  # every 4th sample is held back from calibration


@dataclass(frozen=True)
class Gate:
    calibration_images: int
    held_back_images: int
    mask_agreement_calibration: float
    mask_agreement_held_back: float | None
    iou_fp32: float | None  # mean IoU against ground truth, over the samples that have it
    iou_candidate: float | None
    passed: bool

    def describe(self) -> str:
        parts = [f"MASK agreement with fp32 {self.mask_agreement_calibration:.4%} (calibration)"]
        if self.mask_agreement_held_back is not None:
            parts.append(f"{self.mask_agreement_held_back:.4%} (held back)")
        if self.iou_fp32 is not None and self.iou_candidate is not None:
            parts.append(f"IoU {self.iou_candidate:.4f} against fp32 {self.iou_fp32:.4f}")
        return ", ".join(parts)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def network_input(image: np.ndarray, info: ModelInfo) -> np.ndarray:
    """[1, H, W, C] of an 8-bit sample on the model's input scale, at a size the model
    takes, as the client sends it: mirror-padded up to the next valid size, or, for a model
    pinned to one size (attention blocks pin it), the top-left tile of that size."""
    image = info.from_8bit(image)
    height, width = image.shape[:2]
    if info.fixed_size is not None:
        image = image[: info.fixed_size[0], : info.fixed_size[1]]
        height, width = image.shape[:2]
        target = info.fixed_size
    else:
        target = (info.height.next_valid(height), info.width.next_valid(width))
    pad = ((0, target[0] - height), (0, target[1] - width))
    return np.pad(image, (*pad, (0, 0)), "symmetric")[None]


def split(samples: list[Sample]) -> tuple[list[Sample], list[Sample]]:
    """Calibration images and held-back images (every 4th, when there are at least 4)."""
    if len(samples) < HELD_BACK_EVERY:
        return samples, []
    held = [s for i, s in enumerate(samples) if i % HELD_BACK_EVERY == HELD_BACK_EVERY - 1]
    return [s for s in samples if s not in held], held


@dataclass(frozen=True)
class Scheme:
    """How ONNX Runtime quantizes: QDQ pairs or QOperator ops; one scale per output channel
    of each weight or one per tensor."""

    qdq: bool = True
    per_channel: bool = True

    def __str__(self) -> str:
        weights = "per-channel" if self.per_channel else "per-tensor"
        return f"{'QDQ' if self.qdq else 'QOperator'}, {weights}"


# Chosen by measurement (BENCHMARKS.md, `make bench-int8`).
DEFAULT_SCHEME = Scheme(qdq=True, per_channel=True)


def quantize(
    fp32: Path, int8: Path, calibration: list[np.ndarray], scheme: Scheme = DEFAULT_SCHEME
) -> None:
    """Write the int8 copy of `fp32` to `int8`."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Images(CalibrationDataReader):
        def __init__(self) -> None:
            self._feeds: Iterator[dict[str, np.ndarray]] = iter(
                {INPUT_IMAGE: image} for image in calibration
            )

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._feeds, None)

    graph = onnx.load(str(fp32), load_external_data=False).graph
    keep_float = [n.name for n in graph.node if n.op_type not in QUANTIZED_OPS]
    try:
        quantize_static(
            str(fp32),
            str(int8),
            Images(),
            quant_format=QuantFormat.QDQ if scheme.qdq else QuantFormat.QOperator,
            per_channel=scheme.per_channel,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=keep_float,
            calibrate_method=CalibrationMethod.MinMax,
        )
    except Exception as e:  # ONNX Runtime's quantizer raises plain exceptions of many types
        raise UserError(
            f"ONNX Runtime could not quantize the model ({e}): use --precision fp32"
        ) from e


def check_against_fp32(
    reference: Engine, candidate: Engine, info: ModelInfo, samples: list[Sample]
) -> Gate:
    """Compare `candidate` with the fp32 `reference` on `samples` (split into calibration
    and held back)."""
    calibration, held_back = split(samples)
    agreements: dict[bool, list[tuple[int, int]]] = {False: [], True: []}
    ious: list[tuple[float, float]] = []
    for held, group in ((False, calibration), (True, held_back)):
        for sample in group:
            feed = network_input(sample.image, info)
            (mask32,) = reference.run([OUTPUT_MASK], {INPUT_IMAGE: feed})
            (mask,) = candidate.run([OUTPUT_MASK], {INPUT_IMAGE: feed})
            agreements[held].append((int(np.count_nonzero(mask32 == mask)), mask32.size))
            if sample.truth is not None and info.output_geometry == (0, 0, 0, 0):
                # the sample's own pixels: a pinned model saw its top-left tile only
                h, w = np.minimum(sample.truth.shape, mask32.shape[1:])
                ious.append(
                    (
                        iou(mask32[0, :h, :w] != 0, sample.truth[:h, :w]),
                        iou(mask[0, :h, :w] != 0, sample.truth[:h, :w]),
                    )
                )

    def agreement(pairs: list[tuple[int, int]]) -> float | None:
        return sum(a for a, _ in pairs) / sum(n for _, n in pairs) if pairs else None

    on_calibration, on_held_back = agreement(agreements[False]), agreement(agreements[True])
    if on_calibration is None:
        raise UserError("no calibration image: pass --calibration DIR")
    iou32 = float(np.mean([a for a, _ in ious])) if ious else None
    iou_candidate = float(np.mean([b for _, b in ious])) if ious else None
    passed = (
        on_calibration >= MASK_AGREEMENT_REQUIRED
        and (on_held_back is None or on_held_back >= MASK_AGREEMENT_REQUIRED)
        and (iou32 is None or iou_candidate is None or iou_candidate >= iou32 - IOU_LOSS_ALLOWED)
    )
    return Gate(
        calibration_images=len(agreements[False]),
        held_back_images=len(agreements[True]),
        mask_agreement_calibration=on_calibration,
        mask_agreement_held_back=on_held_back,
        iou_fp32=iou32,
        iou_candidate=iou_candidate,
        passed=passed,
    )

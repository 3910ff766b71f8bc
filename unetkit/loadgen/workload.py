"""What the load test sends: sample images turned into request tensors once, before any
request, and the check of each answer against the samples' ground truth.

Decoding PNGs inside a Locust task would block the event loop and be timed with the
request; here it happens once per process at test start.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from unetkit.core import (
    INPUT_IMAGE,
    OUTPUT_MASK,
    Sample,
    SizeRule,
    UserError,
    iou,
    load_samples,
    rules_from_parameters,
)


class ValidationError(Exception):
    """The server answered, but its MASK is not the segmentation it should be."""


@dataclass(frozen=True)
class Batch:
    inputs: list[grpcclient.InferInput]
    samples: list[Sample]


@dataclass(frozen=True)
class Workload:
    batches: list[Batch]
    outputs: list[grpcclient.InferRequestedOutput]
    validate: bool


def pad_to_rules(image: np.ndarray, height: SizeRule, width: SizeRule) -> np.ndarray:
    """Mirror-pad [H, W, C] at the bottom and right up to the next size the model takes,
    as client/segment.py does; the model's MASK is then cropped back to [H, W]."""
    h, w = image.shape[:2]
    pad = ((0, height.next_valid(h) - h), (0, width.next_valid(w) - w), (0, 0))
    return np.pad(image, pad, "symmetric")


def request_batches(
    samples: list[Sample], batch_size: int, height: SizeRule, width: SizeRule
) -> list[tuple[np.ndarray, list[Sample]]]:
    """The IMAGE tensors a load test sends, in order: one starting at each sample, holding
    `batch_size` consecutive samples of one size, padded to a size the model takes."""
    batches = []
    for start in range(len(samples)):
        members = [samples[(start + k) % len(samples)] for k in range(batch_size)]
        if len({m.image.shape for m in members}) == 1:  # one request, one image size
            batches.append(
                (np.stack([pad_to_rules(m.image, height, width) for m in members]), members)
            )
    return batches


def _model_description(options: Any) -> tuple[int, tuple[SizeRule, SizeRule]]:
    """The model's channel count and size rules, from its metadata and config."""
    client = grpcclient.InferenceServerClient(url=options.triton_url)
    try:
        metadata = client.get_model_metadata(options.model_name, as_json=True)
        config = client.get_model_config(options.model_name, as_json=True)["config"]
    except InferenceServerException as e:
        raise UserError(
            f"cannot reach model {options.model_name!r} at {options.triton_url}: {e.message()} "
            "(start the server, or pass --triton-url / --model-name)"
        ) from e
    finally:
        client.close()
    image_input = next((i for i in metadata.get("inputs", []) if i["name"] == INPUT_IMAGE), None)
    if image_input is None:
        raise UserError(f"model {options.model_name!r} has no {INPUT_IMAGE} input")
    channels = int(image_input["shape"][-1])
    parameters = {k: v.get("string_value", "") for k, v in config.get("parameters", {}).items()}
    try:
        rules = rules_from_parameters(parameters)
    except ValueError as e:
        raise UserError(f"model {options.model_name!r}: {e}") from e
    return (channels if channels > 0 else 1), rules


def prepare_workload(options: Any) -> Workload:
    """Decode the images and build every request's input tensors, once per process."""
    if options.batch_size < 1:
        raise UserError(f"--batch-size {options.batch_size} must be at least 1")
    if not 0.0 <= options.validate_fraction <= 1.0:
        raise UserError(f"--validate-fraction {options.validate_fraction} must be in 0..1")
    channels, (height, width) = _model_description(options)
    samples = load_samples(Path(options.images), channels)
    output_names = [name.strip() for name in options.outputs.split(",") if name.strip()]
    validate = options.validate_fraction > 0
    if validate and OUTPUT_MASK not in output_names:
        raise UserError(f"--validate-fraction needs {OUTPUT_MASK} in --outputs (or set it to 0)")
    if validate and any(s.truth is None for s in samples):
        raise UserError(
            f"--validate-fraction needs a mask in {options.images}/gt/ for every image "
            "(or set it to 0)"
        )
    batches = []
    for pixels, members in request_batches(samples, options.batch_size, height, width):
        tensor = grpcclient.InferInput(INPUT_IMAGE, list(pixels.shape), "UINT8")
        tensor.set_data_from_numpy(pixels)
        batches.append(Batch([tensor], members))
    if not batches:
        raise UserError(f"no {options.batch_size} images of one size in {options.images}")
    outputs = [grpcclient.InferRequestedOutput(name) for name in output_names]
    return Workload(batches, outputs, validate)


def check_masks(result: grpcclient.InferResult, samples: list[Sample], min_iou: float) -> None:
    masks = result.as_numpy(OUTPUT_MASK)
    if masks is None or masks.shape[0] != len(samples):
        raise ValidationError(f"answer has no {OUTPUT_MASK} per image")
    for padded, sample in zip(masks, samples, strict=True):
        assert sample.truth is not None
        mask = padded[: sample.truth.shape[0], : sample.truth.shape[1]]
        if mask.shape != sample.truth.shape:
            raise ValidationError(
                f"{OUTPUT_MASK} of {sample.name} is {mask.shape}, its ground truth "
                f"is {sample.truth.shape}"
            )
        if iou(mask != 0, sample.truth) < min_iou:
            raise ValidationError(
                f"{OUTPUT_MASK} of {sample.name}: IoU with ground truth below {min_iou}"
            )

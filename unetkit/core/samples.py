"""Sample images and their ground-truth masks, decoded once: the one loader of the kit.

A sample set is a folder of images (`*.png`, `*.jpg`) with optional masks of the same file
name in its `gt/` subfolder (any nonzero pixel is foreground). The engine build checks
TensorRT against ONNX Runtime on them, int8 calibration reads them, and the load tests
send them and check the answers against the masks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from unetkit.core.errors import UserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
TRUTH_FOLDER = "gt"
_MODES = {1: "L", 3: "RGB", 4: "RGBA"}


@dataclass(frozen=True)
class Sample:
    path: Path
    image: np.ndarray  # uint8 [H, W, C]
    truth: np.ndarray | None  # bool [H, W], None when the set has no mask for it

    @property
    def name(self) -> str:
        return self.path.name


def _decode(path: Path, mode: str) -> np.ndarray:
    try:
        with Image.open(path) as picture:
            return np.asarray(picture.convert(mode), dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as e:
        raise UserError(f"cannot read image {path}: {e} (replace or remove the file)") from e


def load_samples(folder: Path, channels: int) -> list[Sample]:
    """Every image of `folder` as uint8 [H, W, channels] (1: grey, 3: RGB, 4: RGBA)."""
    mode = _MODES.get(channels)
    if mode is None:
        raise UserError(f"the model takes {channels} channels; sample sets hold 1, 3 or 4")
    if not folder.is_dir():
        raise UserError(f"sample folder {folder} does not exist")
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise UserError(f"no .png or .jpg images in {folder}")
    samples = []
    for path in paths:
        image = _decode(path, mode)
        image = image.reshape(image.shape[0], image.shape[1], channels)
        truth_path = folder / TRUTH_FOLDER / path.name
        truth = None
        if truth_path.exists():
            truth = _decode(truth_path, "L") != 0
            if truth.shape != image.shape[:2]:
                raise UserError(
                    f"mask {truth_path} is {truth.shape[1]}x{truth.shape[0]} but its image is "
                    f"{image.shape[1]}x{image.shape[0]}: masks must match their images"
                )
        samples.append(Sample(path, image, truth))
    return samples


def iou(predicted: np.ndarray, truth: np.ndarray) -> float:
    """Intersection over union of two boolean masks; 1.0 when both are empty."""
    union = np.logical_or(predicted, truth).sum()
    if union == 0:
        return 1.0
    return float(np.logical_and(predicted, truth).sum() / union)

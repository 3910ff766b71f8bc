"""Images and their ground-truth masks for load tests and benchmarks, decoded once.

A sample set is a folder of images (`*.png`, `*.jpg`) with optional masks of the same file
name in its `gt/` subfolder (any nonzero pixel is foreground).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from unetkit.errors import UserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
TRUTH_FOLDER = "gt"


@dataclass(frozen=True)
class Sample:
    name: str
    image: np.ndarray  # uint8 [H, W, C]
    truth: np.ndarray | None  # bool [H, W], None when the set has no mask for it


def _decode(path: Path, mode: str) -> np.ndarray:
    try:
        with Image.open(path) as picture:
            return np.asarray(picture.convert(mode), dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as e:
        raise UserError(f"cannot read image {path}: {e} (replace or remove the file)") from e


def load_samples(folder: Path, channels: int) -> list[Sample]:
    """Every image of `folder` as uint8 [H, W, channels] (1: grayscale, 3: RGB)."""
    if channels not in (1, 3):
        raise UserError(f"the model takes {channels} channels; sample sets hold 1 or 3")
    if not folder.is_dir():
        raise UserError(f"sample folder {folder} does not exist (pass another with --images)")
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise UserError(f"no .png or .jpg images in {folder} (pass another folder with --images)")
    samples = []
    for path in paths:
        image = _decode(path, "L" if channels == 1 else "RGB")
        if image.ndim == 2:
            image = image[..., None]
        truth_path = folder / TRUTH_FOLDER / path.name
        truth = None
        if truth_path.exists():
            truth = _decode(truth_path, "L") != 0
            if truth.shape != image.shape[:2]:
                raise UserError(
                    f"mask {truth_path} is {truth.shape[1]}x{truth.shape[0]} but its image is "
                    f"{image.shape[1]}x{image.shape[0]}: masks must match their images"
                )
        samples.append(Sample(path.name, image, truth))
    return samples


def iou(predicted: np.ndarray, truth: np.ndarray) -> float:
    """Intersection over union of two boolean masks; 1.0 when both are empty."""
    union = np.logical_or(predicted, truth).sum()
    if union == 0:
        return 1.0
    return float(np.logical_and(predicted, truth).sum() / union)


def pad_to_multiple(image: np.ndarray, multiple: int) -> np.ndarray:
    """Mirror-pad [H, W, C] at the bottom and right up to multiples of `multiple`, as
    client/segment.py does; the model's MASK is then cropped back to [H, W]."""
    height, width = image.shape[:2]
    return np.pad(image, ((0, -height % multiple), (0, -width % multiple), (0, 0)), "symmetric")

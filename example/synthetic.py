"""A seeded synthetic segmentation task: fluorescence-like "cells" on a dark background.

Each image holds irregular elliptical blobs of varied size and brightness, some touching or
overlapping, under uneven illumination, optical blur and sensor noise. The ground truth is
known exactly: a pixel is foreground when its centre lies inside any blob's outline.

Conventions (shared by the example model, `samples/` and the tests):
- images are uint8 [H, W], 0..255, single channel;
- masks are uint8 [H, W] with values 0 (background) and 1 (cell); PNG files of masks
  (`samples/gt/`) store 0 and 255 so they are visible in an image viewer.

Cells have the same size in pixels whatever the image size, and their number grows with the
image area, so images of any size come from one distribution. numpy only, deterministic:
the same seed and index give the same bytes.
"""

import numpy as np

# Disjoint sample sets: the example model trains on one, is validated on another, and
# `samples/` is drawn from a third that it never saw.
TRAIN_SEED = 1
VALIDATION_SEED = 2
SAMPLES_SEED = 3

CELLS_PER_MEGAPIXEL = 230.0
MIN_SEMI_AXIS = 8.0
MAX_SEMI_AXIS = 22.0
OUTLINE_HARMONICS = 3


def sample_rng(seed: int, index: int) -> np.random.Generator:
    """The generator for sample `index` of the set `seed`, independent of the set's size."""
    return np.random.default_rng([seed, index])


def make_sample(
    rng: np.random.Generator, height: int = 256, width: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    """One image and its exact mask, both uint8 [height, width] (mask values 0/1)."""
    if height < 1 or width < 1:
        raise ValueError(f"image size must be positive, got {height}x{width}")
    background = rng.uniform(25.0, 60.0)
    scene = np.full((height, width), background)
    mask = np.zeros((height, width), dtype=bool)

    for _ in range(_cell_count(rng, height, width)):
        _draw_cell(rng, scene, mask)

    scene *= _illumination(rng, height, width)
    scene = gaussian_blur(scene, sigma=rng.uniform(0.6, 1.3))
    scene += rng.normal(0.0, rng.uniform(3.0, 9.0), size=scene.shape)
    image = np.clip(np.rint(scene), 0, 255).astype(np.uint8)
    return image, mask.astype(np.uint8)


def make_batch(
    seed: int, count: int, height: int = 256, width: int = 256, start: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Samples `start` .. `start + count - 1` of the set `seed`: images and masks [count, H, W]."""
    images = np.zeros((count, height, width), dtype=np.uint8)
    masks = np.zeros((count, height, width), dtype=np.uint8)
    for i in range(count):
        images[i], masks[i] = make_sample(sample_rng(seed, start + i), height, width)
    return images, masks


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of a 2-D float array, edges reflected."""
    radius = max(1, int(np.ceil(3.0 * sigma)))
    taps = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-0.5 * (taps / sigma) ** 2)
    kernel /= kernel.sum()
    out = np.asarray(image, dtype=np.float64)
    for axis in (0, 1):
        pad = [(0, 0), (0, 0)]
        pad[axis] = (radius, radius)
        padded = np.pad(out, pad, mode="symmetric")
        length = out.shape[axis]
        out = sum(
            weight * np.take(padded, np.arange(offset, offset + length), axis=axis)
            for offset, weight in enumerate(kernel)
        )
    return out


def _cell_count(rng: np.random.Generator, height: int, width: int) -> int:
    expected = CELLS_PER_MEGAPIXEL * height * width / 1e6
    return int(rng.poisson(expected))


def _draw_cell(rng: np.random.Generator, scene: np.ndarray, mask: np.ndarray) -> None:
    """Paint one blob (an ellipse with a wavy outline) into `scene` and `mask` in place."""
    height, width = scene.shape
    centre_row = rng.uniform(-4.0, height + 4.0)
    centre_col = rng.uniform(-4.0, width + 4.0)
    semi_major = rng.uniform(MIN_SEMI_AXIS, MAX_SEMI_AXIS)
    semi_minor = semi_major * rng.uniform(0.55, 1.0)
    angle = rng.uniform(0.0, np.pi)
    wobble = rng.uniform(0.0, 0.08, size=OUTLINE_HARMONICS)
    phases = rng.uniform(0.0, 2.0 * np.pi, size=OUTLINE_HARMONICS)
    peak = rng.uniform(110.0, 220.0)
    rim_falloff = rng.uniform(0.0, 0.25)

    reach = semi_major * (1.0 + wobble.sum()) + 1.0
    top, bottom = max(0, int(centre_row - reach)), min(height, int(centre_row + reach) + 1)
    left, right = max(0, int(centre_col - reach)), min(width, int(centre_col + reach) + 1)
    if top >= bottom or left >= right:
        return
    rows, cols = np.mgrid[top:bottom, left:right].astype(np.float64)
    dy = rows - centre_row
    dx = cols - centre_col
    along = (dx * np.cos(angle) + dy * np.sin(angle)) / semi_major
    across = (-dx * np.sin(angle) + dy * np.cos(angle)) / semi_minor
    radius = np.hypot(along, across)
    theta = np.arctan2(across, along)
    outline = 1.0 + sum(
        amplitude * np.cos((k + 2) * theta + phase)
        for k, (amplitude, phase) in enumerate(zip(wobble, phases, strict=True))
    )
    inside = radius <= outline
    brightness = peak * (1.0 - rim_falloff * np.minimum(radius / outline, 1.0) ** 2)
    window = scene[top:bottom, left:right]
    window[inside] = np.maximum(window[inside], brightness[inside])
    mask[top:bottom, left:right] |= inside


def _illumination(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A smooth multiplicative field: a linear gradient plus one broad bright spot."""
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float64)
    direction = rng.uniform(0.0, 2.0 * np.pi)
    slope = rng.uniform(0.0, 0.35)
    u = (cols / max(width - 1, 1) - 0.5) * np.cos(direction)
    v = (rows / max(height - 1, 1) - 0.5) * np.sin(direction)
    gradient = 1.0 + slope * 2.0 * (u + v)
    spot_row = rng.uniform(0.0, height)
    spot_col = rng.uniform(0.0, width)
    spot_width = rng.uniform(0.3, 0.7) * max(height, width)
    spot = np.exp(-((rows - spot_row) ** 2 + (cols - spot_col) ** 2) / (2.0 * spot_width**2))
    return gradient * (0.85 + rng.uniform(0.0, 0.3) * spot)

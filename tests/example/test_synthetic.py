"""The synthetic cell task: determinism, shapes, masks that match the images, and samples/."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from example import synthetic
from tests.helpers import REPO_ROOT as REPO

SAMPLES = REPO / "samples"


def test_same_seed_and_index_give_identical_samples() -> None:
    first = synthetic.make_sample(synthetic.sample_rng(7, 3), 96, 128)
    again = synthetic.make_sample(synthetic.sample_rng(7, 3), 96, 128)
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])


def test_other_seed_or_index_gives_other_samples() -> None:
    image, _ = synthetic.make_sample(synthetic.sample_rng(7, 3))
    other_index, _ = synthetic.make_sample(synthetic.sample_rng(7, 4))
    other_seed, _ = synthetic.make_sample(synthetic.sample_rng(8, 3))
    assert not np.array_equal(image, other_index)
    assert not np.array_equal(image, other_seed)


def test_batch_is_the_samples_of_the_set_whatever_its_start() -> None:
    images, masks = synthetic.make_batch(seed=5, count=4, height=64, width=80)
    tail_images, tail_masks = synthetic.make_batch(seed=5, count=2, height=64, width=80, start=2)
    assert images.shape == masks.shape == (4, 64, 80)
    assert images.dtype == masks.dtype == np.uint8
    for i in range(4):
        image, mask = synthetic.make_sample(synthetic.sample_rng(5, i), 64, 80)
        np.testing.assert_array_equal(images[i], image)
        np.testing.assert_array_equal(masks[i], mask)
    np.testing.assert_array_equal(images[2:], tail_images)
    np.testing.assert_array_equal(masks[2:], tail_masks)


def test_training_validation_and_sample_sets_are_disjoint() -> None:
    seeds = {synthetic.TRAIN_SEED, synthetic.VALIDATION_SEED, synthetic.SAMPLES_SEED}
    assert len(seeds) == 3


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    index=st.integers(0, 10_000),
    height=st.integers(1, 300),
    width=st.integers(1, 300),
)
def test_any_size_gives_uint8_image_and_binary_mask(
    seed: int, index: int, height: int, width: int
) -> None:
    image, mask = synthetic.make_sample(synthetic.sample_rng(seed, index), height, width)
    assert image.shape == mask.shape == (height, width)
    assert image.dtype == mask.dtype == np.uint8
    assert set(np.unique(mask).tolist()) <= {0, 1}


@pytest.mark.parametrize(("height", "width"), [(0, 10), (10, 0), (-1, 5)])
def test_empty_or_negative_size_is_refused(height: int, width: int) -> None:
    with pytest.raises(ValueError, match="must be positive"):
        synthetic.make_sample(np.random.default_rng(0), height, width)


def test_cells_are_brighter_than_their_surroundings() -> None:
    images, masks = synthetic.make_batch(seed=11, count=12)
    for image, mask in zip(images, masks, strict=True):
        assert mask.any() and not mask.all()
        inside = image[mask == 1].astype(float).mean()
        outside = image[mask == 0].astype(float).mean()
        assert inside > 1.6 * outside


def test_mask_outlines_sit_where_the_image_changes_most() -> None:
    # Along each row, the brightness step across a left outline of the mask must be larger
    # than the step one pixel further in or out: the mask is aligned with the image, not
    # shifted or dilated against it.
    images, masks = synthetic.make_batch(seed=12, count=6)
    for image, mask in zip(images, masks, strict=True):
        steps = np.diff(image.astype(float), axis=1)  # steps[:, c] = pixel c+1 - pixel c
        entering = (mask[:, 1:] == 1) & (mask[:, :-1] == 0)  # pixel c+1 is the first inside
        entering[:, :2] = entering[:, -2:] = False
        assert entering.sum() > 20
        at_outline = steps[entering].mean()
        one_out = steps[np.roll(entering, -1, axis=1)].mean()
        one_in = steps[np.roll(entering, 1, axis=1)].mean()
        assert at_outline > 10
        assert at_outline > one_out and at_outline > one_in


def test_cell_density_does_not_depend_on_image_size() -> None:
    _, small = synthetic.make_batch(seed=13, count=16, height=128, width=128)
    _, large = synthetic.make_batch(seed=13, count=4, height=512, width=512)
    assert 0.05 < small.mean() < 0.2
    assert 0.05 < large.mean() < 0.2
    assert abs(small.mean() - large.mean()) < 0.04


def test_blur_keeps_a_constant_image_and_spreads_an_impulse_as_a_gaussian() -> None:
    flat = synthetic.gaussian_blur(np.full((20, 30), 42.0), sigma=1.5)
    np.testing.assert_allclose(flat, 42.0)

    impulse = np.zeros((31, 31))
    impulse[15, 15] = 1.0
    blurred = synthetic.gaussian_blur(impulse, sigma=2.0)
    taps = np.arange(-15, 16)
    expected = np.exp(-(taps[:, None] ** 2 + taps[None, :] ** 2) / (2 * 2.0**2))
    expected[np.abs(taps) > 6, :] = 0.0
    expected[:, np.abs(taps) > 6] = 0.0
    np.testing.assert_allclose(blurred, expected / expected.sum(), atol=1e-12)


def read_png(path: Path) -> np.ndarray:
    with Image.open(path) as png:
        assert png.mode == "L", f"{path} is {png.mode}, not 8-bit grayscale"
        return np.asarray(png)


def test_committed_samples_are_exactly_what_the_script_writes(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(REPO / "example" / "make_samples.py"), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    committed = sorted(p.relative_to(SAMPLES) for p in SAMPLES.rglob("*") if p.is_file())
    regenerated = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    committed = [p for p in committed if p.name != "README.md"]
    assert committed == regenerated
    for relative in regenerated:
        if relative.suffix == ".png":
            np.testing.assert_array_equal(
                read_png(SAMPLES / relative), read_png(tmp_path / relative), err_msg=str(relative)
            )
    assert json.loads((SAMPLES / "manifest.json").read_text()) == json.loads(
        (tmp_path / "manifest.json").read_text()
    )


def test_sample_masks_are_the_generator_masks_of_their_images() -> None:
    for entry in json.loads((SAMPLES / "manifest.json").read_text()):
        image, mask = synthetic.make_sample(
            synthetic.sample_rng(entry["seed"], entry["index"]), entry["height"], entry["width"]
        )
        np.testing.assert_array_equal(read_png(SAMPLES / entry["image"]), image)
        np.testing.assert_array_equal(read_png(SAMPLES / entry["mask"]), mask * 255)

"""How the client maps an image's intensities onto the model's input scale (client/intensity.py,
client/pictures.py), without a server: one mapping per image from whole-image statistics,
8-bit as is, integers by their effective bit depth, floats in [0, 1], the flags, and the
one-line warnings and refusals, each naming a flag. Every file is made by tifffile here."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from tests.helpers import REPO_ROOT
from tests.helpers.client import client_module

intensity = client_module("intensity")
pictures = client_module("pictures")

UINT8 = intensity.Scale.of("TYPE_UINT8")
FLOAT = intensity.Scale.of("TYPE_FP32")
GRAY = np.asarray(Image.open(REPO_ROOT / "samples" / "cells_01.png"))  # 15..228


def opened(path: Path, rule=None, scale=UINT8, channels: int = 1, channel: int | None = None):
    return pictures.open_picture(path, channels, rule, scale, channel)


def mapped(picture) -> np.ndarray:
    try:
        return picture.whole(0)[:, :, 0]
    finally:
        picture.close()


@pytest.mark.parametrize(
    ("name", "values", "why"),
    [
        ("8bit", GRAY, None),
        ("16bit_full", GRAY.astype(np.uint16) * 257, "16-bit, from the image's maximum 58596"),
        ("12bit", GRAY.astype(np.uint16) * 16, "12-bit, from the image's maximum 3648"),
        ("float01", GRAY.astype(np.float32) / 255, "float in [0, 1]"),
    ],
)
def test_every_pixel_type_without_flags_gives_the_8bit_image(tmp_path, name, values, why):
    tifffile.imwrite(tmp_path / f"{name}.tif", values)
    picture = opened(tmp_path / f"{name}.tif")
    assert picture.warnings == []
    assert (picture.notes == []) == (why is None)  # a line whenever it is not the identity
    if why:
        assert (
            why in picture.notes[0] and "mapped to the model's 0..255 (uint8)" in picture.notes[0]
        )
    image = mapped(picture)
    # 12-bit (x * 16 * 255 / 4095) is one grey level darker above 136; the others exact
    assert np.abs(image.astype(int) - GRAY).max() <= (1 if name == "12bit" else 0)


def test_16bit_full_range_is_what_dividing_by_257_gives():
    values = np.arange(0, 65536, 7, dtype=np.uint16)[None]
    mapping, _ = intensity.choose(values, intensity.Rule(), UINT8)
    expected = np.clip(np.round(values / 257.0), 0, 255)
    np.testing.assert_array_equal(mapping.apply(values), expected)


def test_a_declared_bit_depth_wins_over_the_images_maximum(tmp_path):
    dim = (GRAY.astype(np.uint16) * 4).astype(np.uint16)  # 12-bit camera, max 912
    tifffile.imwrite(tmp_path / "smax.tif", dim, extratags=[(340, "H", 1, 4095, True)])
    tifffile.imwrite(
        tmp_path / "ome.ome.tif", dim, ome=True, metadata={"axes": "YX", "SignificantBits": 12}
    )
    tifffile.imwrite(tmp_path / "plain.tif", dim)
    for name in ("smax.tif", "ome.ome.tif"):
        picture = opened(tmp_path / name)
        assert picture.mapping.high == 4095 and "as the file declares" in picture.notes[0]
        np.testing.assert_array_equal(mapped(picture), np.round(dim / 4095 * 255))
    picture = opened(tmp_path / "plain.tif")  # no tag: 10 bits hold 912
    assert picture.mapping.high == 1023
    picture.close()


def test_float_outside_0_1_warns_and_follows_csbdeeps_percentiles(tmp_path):
    counts = 100 + GRAY.astype(np.float32) * 10  # camera counts 250..2380
    tifffile.imwrite(tmp_path / "counts.tif", counts)
    picture = opened(tmp_path / "counts.tif")
    (warning,) = picture.warnings
    assert "outside [0, 1]" in warning and "--intensity-range LOW HIGH" in warning
    low, high = np.percentile(counts, [3, 99.8])  # csbdeep.utils.normalize's defaults
    assert (picture.mapping.low, picture.mapping.high) == pytest.approx((low, high))
    picture.close()
    ranged = opened(tmp_path / "counts.tif", intensity.Rule("range", 100, 2650))
    assert ranged.warnings == []
    np.testing.assert_array_equal(mapped(ranged), GRAY)


@pytest.mark.parametrize(
    ("rule", "statistic"),
    [
        (intensity.Rule("percentile", 1, 99.8), lambda v: np.percentile(v, [1, 99.8])),
        (intensity.Rule("minmax"), lambda v: (v.min(), v.max())),
    ],
)
def test_statistic_rules_map_the_whole_images_values(tmp_path, rule, statistic):
    values = GRAY.astype(np.uint16) * 16
    tifffile.imwrite(tmp_path / "image.tif", values)
    picture = opened(tmp_path / "image.tif", rule, FLOAT)
    low, high = statistic(values)
    # csbdeep: (x - p_low) / (p_high - p_low), not clipped on a float scale
    expected = ((values - low) / (high - low)).astype(np.float32)
    np.testing.assert_allclose(mapped(picture), expected, rtol=1e-6, atol=1e-7)


def test_the_mapping_is_the_whole_images_for_every_tile(tmp_path):
    """A dim half and a bright half: a tile of the dim half is mapped as the whole image
    is (per-tile statistics would stretch it and make a seam)."""
    values = np.concatenate([GRAY // 8, GRAY]).astype(np.uint16) * 16
    tifffile.imwrite(tmp_path / "halves.tif", values, tile=(64, 64), compression="zlib")
    for rule in (intensity.Rule(), intensity.Rule("minmax"), intensity.Rule("percentile", 1, 99)):
        picture = opened(tmp_path / "halves.tif", rule)
        whole = picture.whole(0)
        rows, cols = np.arange(32, 160), np.arange(0, 128)
        np.testing.assert_array_equal(picture.pixels(0, rows, cols), whole[32:160, :128])
        picture.close()


def test_large_images_feed_the_statistics_an_even_subsample():
    pages, rows = intensity.even_rows(20_000, 20_000, 1)
    assert pages == [0] and 20_000 * len(range(*rows.indices(20_000))) <= 1.1 * 2**24
    pages, rows = intensity.even_rows(2048, 2048, 100)  # 4 of 100 pages, every row
    assert pages == [12, 37, 62, 87] and rows.step == 1
    assert intensity.even_rows(256, 256, 3) == ([0, 1, 2], slice(0, 256, 1))


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        (np.full((32, 32), 5.0, np.float32), "every pixel is 5"),
        (np.full((32, 32), np.nan, np.float32), "no pixel has a finite value"),
        ((GRAY.astype(np.int16) - 100), "int16 pixels down to -85"),
    ],
)
def test_what_only_a_flag_can_decide_is_refused_in_one_line(tmp_path, values, reason):
    tifffile.imwrite(tmp_path / "image.tif", values)
    with pytest.raises(pictures.Unsupported) as refused:
        opened(tmp_path / "image.tif")
    message = str(refused.value)
    assert reason in message and "--intensity-range LOW HIGH" in message and "\n" not in message


def test_a_dim_image_is_mapped_as_it_is_with_a_warning(tmp_path):
    Image.fromarray((GRAY // 32).astype(np.uint8)).save(tmp_path / "dim.png")  # 0..7 of 255
    picture = opened(tmp_path / "dim.png")
    (warning,) = picture.warnings
    assert "fills only 0..7 of the model's 0..255" in warning and "--intensity" in warning
    assert picture.notes == []


def test_a_16bit_png_keeps_its_values_for_the_mapping(tmp_path):
    Image.fromarray(GRAY.astype(np.uint16) * 16).save(tmp_path / "twelve.png")
    picture = opened(tmp_path / "twelve.png")
    assert picture.mapping.high == 4095
    assert np.abs(mapped(picture).astype(int) - GRAY).max() <= 1


def test_colour_becomes_grey_alike_on_every_scale():
    """The numpy conversion of other scales matches Pillow's of 8-bit values."""
    rgb = np.random.default_rng(1).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    grey8 = pictures.to_channels(rgb, 1)
    grey16 = pictures.to_channels(rgb.astype(np.uint16) * 257, 1)
    assert np.abs(np.round(grey16 / 257).astype(int) - grey8).max() <= 1
    grey = pictures.to_channels(rgb.astype(np.float32) / 255, 1)
    assert grey.dtype == np.float32 and np.abs(grey * 255 - grey8).max() <= 0.51


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    intensity.add_arguments(parser)
    args = parser.parse_args(list(argv))
    args.rule = intensity.rule_from_arguments(parser, args)
    return args


@pytest.mark.parametrize(
    ("argv", "rule"),
    [
        ((), intensity.Rule()),
        (("--intensity-range", "100", "2650"), intensity.Rule("range", 100, 2650)),
        (("--intensity", "percentile", "1", "99.8"), intensity.Rule("percentile", 1, 99.8)),
        (("--intensity", "minmax"), intensity.Rule("minmax")),
    ],
)
def test_the_flags_become_one_rule(argv, rule):
    assert parse(*argv).rule == rule


@pytest.mark.parametrize(
    "argv",
    [
        ("--intensity-range", "5", "1"),
        ("--intensity", "percentile", "5"),
        ("--intensity", "percentile", "50", "101"),
        ("--intensity", "gamma"),
        ("--intensity", "minmax", "--intensity-range", "0", "1"),
        ("--channel", "-1"),
    ],
)
def test_flags_that_make_no_sense_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exited:
        parse(*argv)
    assert exited.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()[-1:]) == 1

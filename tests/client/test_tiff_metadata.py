"""Microscopy TIFFs as the client reads them (client/tiffpictures.py), without a server:
ImageJ hyperstacks and OME-TIFF through tifffile's metadata (channels, Z slices, time
points), --channel, and the pixel size carried into the mask TIFF (client/imagefiles.py).
Every file is made by tifffile here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from tests.helpers.client import client_module

pictures = client_module("pictures")
imagefiles = client_module("imagefiles")

RNG = np.random.default_rng(7)
# Z=3 slices x C=2 channels of 12-bit data, channel c of slice z filled with 100 * z + c
HYPERSTACK = np.stack(
    [np.stack([np.full((40, 60), 100 * z + c) for c in range(2)]) for z in range(3)]
).astype(np.uint16)


def hyperstack(folder: Path) -> Path:
    path = folder / "hyper.tif"
    tifffile.imwrite(
        path,
        HYPERSTACK,
        imagej=True,
        resolution=(1 / 0.65, 1 / 0.65),
        metadata={"axes": "ZCYX", "unit": "um", "spacing": 2.0},
    )
    return path


def ome(folder: Path, data: np.ndarray, axes: str, **metadata) -> Path:
    path = folder / "image.ome.tif"
    tifffile.imwrite(path, data, ome=True, metadata={"axes": axes, **metadata})
    return path


def test_a_multichannel_hyperstack_needs_channel_and_lists_the_channels(tmp_path):
    with pytest.raises(pictures.Unsupported) as refused:
        pictures.open_picture(hyperstack(tmp_path), 1)
    assert str(refused.value).endswith(
        "hyper.tif: 2 channels (0, 1) and the model takes 1: choose one with --channel N"
    )
    with pytest.raises(pictures.Unsupported, match="--channel 2, but the image has channels"):
        pictures.open_picture(hyperstack(tmp_path), 1, channel=2)


def test_channel_picks_one_channel_of_every_slice(tmp_path):
    picture = pictures.open_picture(hyperstack(tmp_path), 1, channel=1)
    try:
        assert (picture.pages, picture.height, picture.width) == (3, 40, 60)
        assert picture.mask_shape == (3,)  # the Z slices, page by page
        for z in range(3):
            raw = picture.raw(z, np.arange(40), np.arange(60))
            assert raw.shape == (40, 60, 1) and np.all(raw == 100 * z + 1)
    finally:
        picture.close()


def test_ome_channels_are_listed_by_name_and_as_many_as_the_model_takes_are_colour(tmp_path):
    data = RNG.integers(0, 256, (3, 32, 48), dtype=np.uint8)
    names = {"Channel": {"Name": ["DAPI", "GFP", "RFP"]}}
    path = ome(tmp_path, data, "CYX", **names)
    with pytest.raises(pictures.Unsupported, match=r"3 channels \(0 DAPI, 1 GFP, 2 RFP\)"):
        pictures.open_picture(path, 1)
    picture = pictures.open_picture(path, 3)  # an RGB model: the three channels, in order
    try:
        np.testing.assert_array_equal(picture.whole(0), np.moveaxis(data, 0, -1))
    finally:
        picture.close()


def write_mask(source: Path, out: Path, channel: int | None = None) -> Path:
    """The client's mask file for `source` (every pixel foreground), as it writes it."""
    picture = pictures.open_picture(source, 1, channel=channel)
    job = imagefiles.ImageJob(source, picture, out, classes=1)
    for page in range(picture.pages):
        job.sink.add(page, 0, np.ones((picture.height, picture.width), np.uint8))
    job.finish()
    return job.mask_path


def test_the_mask_of_a_hyperstack_keeps_its_pixel_size_unit_and_spacing(tmp_path):
    mask = write_mask(hyperstack(tmp_path), tmp_path, channel=0)
    with tifffile.TiffFile(mask) as tif:
        assert tif.is_imagej and tif.series[0].shape == (3, 40, 60)
        assert tif.imagej_metadata["unit"] == "um" and tif.imagej_metadata["spacing"] == 2.0
        assert tif.pages[0].get_resolution() == pytest.approx((1 / 0.65, 1 / 0.65))
        assert np.all(tif.asarray() == 255)


def test_the_mask_of_an_ome_tiff_keeps_its_physical_pixel_size(tmp_path):
    data = RNG.integers(0, 4096, (2, 32, 48), dtype=np.uint16)
    sizes = {"PhysicalSizeX": 0.65, "PhysicalSizeY": 0.7, "PhysicalSizeZ": 2.0}
    mask = write_mask(ome(tmp_path, data, "ZYX", **sizes), tmp_path)
    with tifffile.TiffFile(mask) as tif:
        pixels = tifffile.xml2dict(tif.ome_metadata)["OME"]["Image"]["Pixels"]
        assert {k: pixels[k] for k in sizes} == sizes and pixels["SizeZ"] == 2
        # and in the resolution tags, for readers of plain TIFF: pixels per centimetre
        page = tif.pages[0]
        assert page.resolutionunit == tifffile.RESUNIT.CENTIMETER
        assert page.get_resolution() == pytest.approx((1e4 / 0.65, 1e4 / 0.7))


def test_a_plain_tiffs_resolution_tags_are_copied(tmp_path):
    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, RNG.integers(0, 256, (32, 48), dtype=np.uint8), resolution=(300, 300))
    with tifffile.TiffFile(write_mask(path, tmp_path)) as tif:
        assert tif.pages[0].get_resolution() == (300, 300)
        assert tif.pages[0].resolutionunit == tifffile.RESUNIT.INCH

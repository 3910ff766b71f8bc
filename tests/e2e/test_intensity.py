"""Scientific images through client/segment.py and the real server: samples/cells_01.png
saved by tifffile as 8-bit, 16-bit, 12-bit and float TIFFs must all give its mask (IoU
against the ground truth), an ImageJ hyperstack is segmented channel by --channel, slice
by slice, and an OME-TIFF's pixel size survives into the mask."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from tests.helpers.serving import REPO_ROOT, run_client
from unetkit.core import iou
from unetkit.triton import TritonServer

SAMPLES = REPO_ROOT / "samples"
GRAY = np.asarray(Image.open(SAMPLES / "cells_01.png"))
EXIT_REFUSED = 4
# What a new user has: the sample saved as each pixel type microscopes and tools write.
TABLE = {
    "8bit": GRAY,
    "16bit_full_range": GRAY.astype(np.uint16) * 257,
    "12bit_in_16bit": GRAY.astype(np.uint16) * 16,
    "float_0_1": GRAY.astype(np.float32) / 255,
    "float_counts": 100 + GRAY.astype(np.float32) * 10,  # camera counts 100..2650
}


def truth(name: str) -> np.ndarray:
    return np.asarray(Image.open(SAMPLES / "gt" / name)) > 127


def mask(path: Path) -> np.ndarray:
    return tifffile.imread(path) > 0


@pytest.fixture(scope="module")
def table_runs(triton: TritonServer, tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("table")
    for name, values in TABLE.items():
        tifffile.imwrite(folder / f"{name}.tif", values)
    plain = run_client("-u", triton.grpc_url, "-o", folder / "out", *sorted(folder.glob("*.tif")))
    ranged = run_client(
        "-u", triton.grpc_url, "--intensity-range", "100", "2650", "-o", folder / "ranged",
        folder / "float_counts.tif",
    )  # fmt: skip
    ious = {
        name: iou(mask(folder / "out" / f"{name}.mask.tif"), truth("cells_01.png"))
        for name in TABLE
    }
    ious["float_counts --intensity-range 100 2650"] = iou(
        mask(folder / "ranged" / "float_counts.mask.tif"), truth("cells_01.png")
    )
    print(f"IoU against samples/gt/cells_01.png: {json.dumps(ious)}")  # pytest -s shows it
    return {"plain": plain, "ranged": ranged, "ious": ious}


def test_every_pixel_type_is_segmented_as_the_8bit_image(table_runs: dict) -> None:
    plain, ranged, ious = table_runs["plain"], table_runs["ranged"], table_runs["ious"]
    assert plain.returncode == 0 and ranged.returncode == 0, plain.stderr + ranged.stderr
    assert f"segmented {len(TABLE)}/{len(TABLE)} images" in plain.stdout
    for name in ("8bit", "16bit_full_range", "12bit_in_16bit", "float_0_1"):
        assert ious[name] >= 0.9, (name, ious)
    assert ious["float_counts --intensity-range 100 2650"] >= 0.9, ious


def test_the_mapping_is_said_in_one_line_and_doubt_in_one_warning(table_runs: dict) -> None:
    plain = table_runs["plain"]
    notes = [line for line in plain.stdout.splitlines() if "intensities" in line]
    assert len(notes) == len(TABLE) - 1  # every image but the 8-bit one
    assert any("12bit_in_16bit.tif: intensities 0..4095 (12-bit" in line for line in notes)
    # without a range, camera counts in a float TIFF are mapped by percentiles, with a warning
    (warning,) = plain.stderr.splitlines()
    assert warning.startswith("warning: ") and "float_counts.tif" in warning
    assert "--intensity-range LOW HIGH" in warning


def hyperstack(folder: Path) -> Path:
    """Two channels (noise, then 12-bit cells) x three Z slices (cells_01..03), 0.65 um."""
    noise = np.random.default_rng(3).integers(0, 4096, (256, 256), dtype=np.uint16)
    cells = [np.asarray(Image.open(SAMPLES / f"cells_0{i}.png")) for i in (1, 2, 3)]
    data = np.stack([np.stack([noise, c.astype(np.uint16) * 16]) for c in cells])
    path = folder / "hyperstack.tif"
    tifffile.imwrite(
        path,
        data,
        imagej=True,
        resolution=(1 / 0.65, 1 / 0.65),
        metadata={"axes": "ZCYX", "unit": "um", "spacing": 2.0},
    )
    return path


def ome_tiff(folder: Path) -> Path:
    path = folder / "cells.ome.tif"
    noise = np.random.default_rng(4).integers(0, 256, GRAY.shape, dtype=np.uint8)
    tifffile.imwrite(
        path,
        np.stack([noise, GRAY]),
        ome=True,
        metadata={
            "axes": "CYX",
            "PhysicalSizeX": 0.65,
            "PhysicalSizeY": 0.65,
            "Channel": {"Name": ["noise", "cells"]},
        },
    )
    return path


def test_multichannel_images_need_channel_and_keep_their_pixel_size(
    triton: TritonServer, tmp_path: Path
) -> None:
    files = [hyperstack(tmp_path), ome_tiff(tmp_path)]
    refused = run_client("-u", triton.grpc_url, "-o", tmp_path / "refused", *files)
    assert refused.returncode == EXIT_REFUSED
    assert refused.stderr.splitlines() == [
        f"error: {files[0]}: 2 channels (0, 1) and the model takes 1: choose one with --channel N",
        f"error: {files[1]}: 2 channels (0 noise, 1 cells) and the model takes 1: choose one "
        "with --channel N",
    ]
    run = run_client("-u", triton.grpc_url, "--channel", "1", "-o", tmp_path / "out", *files)
    assert run.returncode == 0, run.stderr
    with tifffile.TiffFile(tmp_path / "out" / "hyperstack.mask.tif") as tif:
        slices = tif.asarray() > 0
        assert tif.is_imagej and tif.imagej_metadata["unit"] == "um"
        assert tif.pages[0].get_resolution() == pytest.approx((1 / 0.65, 1 / 0.65))
    assert slices.shape == (3, 256, 256)  # one page per Z slice, channel 1 of each
    for z in range(3):
        assert iou(slices[z], truth(f"cells_0{z + 1}.png")) >= 0.9, z
    with tifffile.TiffFile(tmp_path / "out" / "cells.ome.mask.tif") as tif:
        pixels = tifffile.xml2dict(tif.ome_metadata)["OME"]["Image"]["Pixels"]
        assert (pixels["PhysicalSizeX"], pixels["PhysicalSizeY"]) == (0.65, 0.65)
        assert iou(tif.asarray() > 0, truth("cells_01.png")) >= 0.9

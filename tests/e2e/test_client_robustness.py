"""client/segment.py with awkward inputs, against the
real server.

Every readable variant of one sample image must give the mask of the plain 8-bit file;
broken files are refused one line each, with the documented exit code, while the
other images are still segmented.
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from tests.helpers.serving import REPO_ROOT, run_client
from unetkit.triton import TritonServer

SAMPLE = REPO_ROOT / "samples" / "cells_01.png"
EXIT_UNREADABLE, EXIT_REFUSED, EXIT_OUT_DIR, EXIT_MODEL_NOT_READY = 3, 4, 6, 7


def write_variants(folder: Path) -> dict[str, str]:
    """Equivalent encodings of SAMPLE; returns {file name: how it differs}."""
    gray = np.asarray(Image.open(SAMPLE))
    assert gray.dtype == np.uint8 and gray.ndim == 2
    Image.fromarray(gray).save(folder / "plain.png")
    Image.fromarray(gray.astype(np.uint16) * 257).save(folder / "gray16.png")
    palette = Image.fromarray(gray, mode="L").convert("P")
    palette.putpalette([v for i in range(256) for v in (i, i, i)])
    palette.putdata(gray.flatten().tolist())
    palette.save(folder / "palette.png")
    rgb = np.repeat(gray[:, :, None], 3, axis=2)
    Image.fromarray(rgb).save(folder / "rgb.png")
    opaque = np.concatenate([rgb, np.full((*gray.shape, 1), 255, np.uint8)], axis=2)
    Image.fromarray(opaque).save(folder / "rgba.png")
    # Stored rotated, with the EXIF tag (6: rotate 90 degrees clockwise) that turns it upright.
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.rot90(gray, k=1)).save(folder / "exif_rotated.png", exif=exif)
    # TIFFs (read by tifffile): memory-mapped, BigTIFF, planar colour, tiled and compressed
    tifffile.imwrite(folder / "gray16_tiff.tif", gray.astype(np.uint16) * 257)
    tifffile.imwrite(folder / "bigtiff.tif", gray, bigtiff=True)
    planar = np.moveaxis(rgb, 2, 0)
    tifffile.imwrite(folder / "rgb_planar.tif", planar, photometric="rgb", planarconfig="separate")
    tifffile.imwrite(folder / "tiled_deflate.tif", gray, tile=(64, 64), compression="zlib")
    return {
        "plain.png": "8-bit grey",
        "gray16.png": "16-bit grey",
        "palette.png": "palette",
        "rgb.png": "RGB",
        "rgba.png": "RGBA",
        "exif_rotated.png": "EXIF orientation 6",
        "gray16_tiff.tif": "16-bit grey TIFF",
        "bigtiff.tif": "BigTIFF",
        "rgb_planar.tif": "planar RGB TIFF",
        "tiled_deflate.tif": "tiled, deflate-compressed TIFF",
    }


def mask_name(name: str) -> str:
    """TIFF inputs get TIFF masks, the others PNG masks."""
    stem, suffix = name.rsplit(".", 1)
    return f"{stem}.mask.{'tif' if suffix == 'tif' else 'png'}"


def read_mask(path: Path) -> np.ndarray:
    return tifffile.imread(path) if path.suffix == ".tif" else np.asarray(Image.open(path))


def write_broken(folder: Path) -> dict[str, int]:
    """Files the client must refuse; returns {file name: exit code}."""
    encoded = io.BytesIO()
    Image.open(SAMPLE).save(encoded, format="PNG")
    (folder / "truncated.png").write_bytes(encoded.getvalue()[: len(encoded.getvalue()) // 2])
    (folder / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8)
    (folder / "not_an_image.png").write_text("a text file with a .png name\n")
    (folder / "notes.txt").write_text("not an image suffix: ignored in a folder\n")
    # signed values below zero: no intensity mapping can be chosen without a flag
    tifffile.imwrite(folder / "signed.tif", np.arange(-512, 512, dtype=np.int16).reshape(32, 32))
    return {
        "truncated.png": EXIT_UNREADABLE,
        "corrupt.jpg": EXIT_UNREADABLE,
        "not_an_image.png": EXIT_UNREADABLE,
        "signed.tif": EXIT_REFUSED,
    }


@pytest.fixture(scope="module")
def mixed_run(triton: TritonServer, tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("inputs")
    variants = write_variants(folder)
    broken = write_broken(folder)
    out = tmp_path_factory.mktemp("out")
    missing = folder / "missing.png"
    run = run_client("-u", triton.grpc_url, "-o", out, folder, missing)
    return run, out, variants, broken, missing


def test_the_worst_exit_code_wins_and_good_images_still_come_out(mixed_run) -> None:
    run, out, variants, _, _ = mixed_run
    assert run.returncode == EXIT_REFUSED, run.stderr
    for name in variants:
        assert (out / mask_name(name)).is_file(), name
        assert (out / f"{name.rsplit('.', 1)[0]}.overlay.png").is_file(), name
    assert f"segmented {len(variants)}/" in run.stdout
    assert not list(out.glob(".*.tmp")), "temporary files left behind"


def test_each_refused_file_gets_one_line_naming_it(mixed_run) -> None:
    run, out, _, broken, missing = mixed_run
    errors = run.stderr.splitlines()
    assert all(line.startswith("error: ") for line in errors), errors
    assert len(errors) == len(broken) + 1
    for name in [*broken, missing.name]:
        assert sum(name in line for line in errors) == 1, (name, errors)
        assert not (out / (Path(name).stem + ".mask.png")).exists()
        assert not (out / (Path(name).stem + ".mask.tif")).exists()
    assert "notes.txt" not in run.stderr
    assert any("truncated" in line and "truncated.png" in line for line in errors), errors
    assert any("signed.tif" in line and "--intensity-range" in line for line in errors), errors


def test_every_encoding_of_the_image_gives_the_same_mask(mixed_run) -> None:
    _, out, variants, _, _ = mixed_run
    reference = np.asarray(Image.open(out / "plain.mask.png"))
    assert reference.shape == (256, 256) and set(np.unique(reference)) <= {0, 255}
    assert reference.any(), "the sample has cells: an empty mask means a broken model"
    for name, how in variants.items():
        mask = read_mask(out / mask_name(name))
        assert np.array_equal(mask, reference), how


def test_overlay_is_the_image_with_the_mask_painted_red(mixed_run) -> None:
    _, out, _, _, _ = mixed_run
    gray = np.asarray(Image.open(SAMPLE))
    mask = np.asarray(Image.open(out / "plain.mask.png")) > 0
    overlay = np.asarray(Image.open(out / "plain.overlay.png"))
    assert overlay.shape == (*gray.shape, 3)
    assert np.array_equal(overlay[~mask], np.repeat(gray[~mask][:, None], 3, axis=1))
    assert np.all(overlay[mask][:, 0] >= overlay[mask][:, 1])


def test_unwritable_out_dir_is_refused_before_anything_is_sent(
    triton: TritonServer, tmp_path: Path
) -> None:
    not_a_folder = tmp_path / "taken"
    not_a_folder.write_text("a file where the output folder should be\n")
    run = run_client("-u", triton.grpc_url, "-o", not_a_folder / "masks", SAMPLE)
    assert run.returncode == EXIT_OUT_DIR
    assert len(run.stderr.splitlines()) == 1
    assert run.stderr.startswith(f"error: cannot write into {not_a_folder / 'masks'}")


def test_unknown_model_is_not_ready(triton: TritonServer, tmp_path: Path) -> None:
    run = run_client("-u", triton.grpc_url, "-m", "nope", "--retries", "0", "-o", tmp_path, SAMPLE)
    assert run.returncode == EXIT_MODEL_NOT_READY
    assert run.stderr.startswith("error: model 'nope' is not ready")


def test_padded_sizes_come_back_at_the_original_size(triton: TritonServer, tmp_path: Path) -> None:
    odd = tmp_path / "odd.png"
    gray = np.asarray(Image.open(SAMPLE))
    Image.fromarray(gray[:201, :99]).save(odd)
    shutil.copy(SAMPLE, tmp_path / "whole.png")
    run = run_client(
        "-u", triton.grpc_url, "-b", "2", "-o", tmp_path / "out", odd, tmp_path / "whole.png"
    )
    assert run.returncode == 0, run.stderr
    assert np.asarray(Image.open(tmp_path / "out" / "odd.mask.png")).shape == (201, 99)

"""client/segment.py on images the network cannot take in one piece, against
real Triton servers: a 'valid' U-Net whose output is smaller than its input, a large
image tiled with blended overlaps, TIFFs of several pages, and inputs that must be refused.

Every mask is compared with ONNX Runtime run in this process on the whole image."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import struct
import subprocess
import sys
import termios
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import tifffile
import tritonclient.grpc as grpcclient
from PIL import Image

from example import synthetic
from tests.helpers import GOLDEN, REPO_ROOT
from tests.helpers.client import client_module
from tests.helpers.serving import CLIENT, copy_model_directory, run_client
from unetkit.core import INPUT_IMAGE, MODEL_NAME, OUTPUT_PROB
from unetkit.pipelines import make_repository
from unetkit.triton import TritonServer, onnx_path

tiling = client_module("tiling")

# The golden Ronneberger U-Net: 4 levels of unpadded convolutions, Cropping2D skips.
VALID_UNET = GOLDEN / "models" / "ronneberger_tf.h5"
# Worked out by hand: valid sizes 188 + 16k; two 3x3 convolutions per level eat 4 pixels,
# 4 + 2*(4 + 2*(4 + 2*(4 + 2*4 + 4) + 4) + 4) + 4 = 184 in all, half on each side.
VALID_GEOMETRY = (184, 184, 92, 92)
EXIT_USAGE, EXIT_UNREADABLE = 2, 3
SEAM_BAND = 16  # pixels either side of a tile edge that count as "at a seam"


def session(repository: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(onnx_path(repository)), providers=["CPUExecutionProvider"])


def whole_image_prob(sess: ort.InferenceSession, image: np.ndarray, pad: tuple) -> np.ndarray:
    """PROB [H, W] of the model run once on the whole image, mirror-padded by `pad`
    ((top, bottom), (left, right)) and cropped back to the image."""
    padded = np.pad(image, pad, mode="symmetric")[None, :, :, None]
    (prob,) = sess.run([OUTPUT_PROB], {INPUT_IMAGE: padded})
    return prob[0, : image.shape[0], : image.shape[1], 0]


def read_mask(path: Path) -> np.ndarray:
    mask = tifffile.imread(path) if path.suffix == ".tif" else np.asarray(Image.open(path))
    assert set(np.unique(mask)) <= {0, 255}, path
    return mask > 0


def synthetic_image(index: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """An image of the seed the example model never saw, and its ground truth."""
    return synthetic.make_sample(synthetic.sample_rng(synthetic.SAMPLES_SEED, index), height, width)


# ---- a 'valid' U-Net: overlap-tile ---------------------------------------------------------


@pytest.fixture(scope="module")
def valid_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repository = copy_model_directory(tmp_path_factory.mktemp("valid_repository"))
    make_repository(VALID_UNET, repository)
    return repository


@pytest.fixture(scope="module")
def valid_server(
    valid_repository: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TritonServer]:
    log = tmp_path_factory.mktemp("valid_triton_log") / "triton.log"
    with TritonServer.on_free_ports(valid_repository, log_file=log) as server:
        yield server


def test_the_valid_unet_publishes_its_size_rule_and_border(valid_server: TritonServer) -> None:
    with grpcclient.InferenceServerClient(valid_server.grpc_url) as client:
        config = client.get_model_config(MODEL_NAME, as_json=True)["config"]
    parameters = {k: v["string_value"] for k, v in config["parameters"].items()}
    assert (parameters["size_multiple_h"], parameters["min_height"]) == ("16", "188")
    keys = ("output_shrink_h", "output_shrink_w", "output_offset_h", "output_offset_w")
    assert tuple(int(parameters[k]) for k in keys) == VALID_GEOMETRY


@pytest.mark.parametrize("tile", [None, 300], ids=["one-request", "tiles-of-300"])
def test_valid_unet_mask_is_full_size_and_equals_in_process_overlap_tile(
    valid_server: TritonServer, valid_repository: Path, tmp_path: Path, tile: int | None
) -> None:
    """The paper's overlap-tile: mirror the 92-pixel border, tile by outputs, crop. Sent
    whole or as tiles of 300 (116 output pixels each), the mask is the image's size and
    the network's result on the whole mirrored image."""
    image, _ = synthetic_image(7, 300, 260)
    Image.fromarray(image).save(tmp_path / "cells.png")
    flags = ["--tile", str(tile)] if tile else []
    run = run_client(
        "-u", valid_server.grpc_url, "-o", tmp_path / "out", *flags, tmp_path / "cells.png"
    )
    assert run.returncode == 0, run.stderr
    # the client's defaults for a model whose output shrinks: no overlap, no blending
    rule = (16, 188)
    plan = tiling.plan_image(300, 260, (rule, rule), (tile or 1020,) * 2, VALID_GEOMETRY, 0.0)
    # the per-image "N tiles of HxW", not the summary's rate ("11.1 tiles/s" holds "1 tiles")
    tiled = f" {plan.count} tiles of " in run.stdout
    assert tiled == (plan.count > 1), run.stdout
    mask = read_mask(tmp_path / "out" / "cells.mask.png")
    assert mask.shape == image.shape
    # 188 + 16k above 300 + 184 rows and 260 + 184 columns, the border on every side
    prob = whole_image_prob(session(valid_repository), image, ((92, 100), (92, 92)))
    expected = prob > 0.5
    assert 0.05 < expected.mean() < 0.95, "a mask to compare needs both classes"
    decided = np.abs(prob - 0.5) > 1e-4  # a tile's PROB may differ by float rounding
    assert decided.mean() > 0.99
    np.testing.assert_array_equal(mask[decided], expected[decided])


# ---- a large image: sliding window with blended overlaps -----------------------------------


@pytest.fixture(scope="module")
def large_run(
    triton: TritonServer, serving_repository: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict:
    """A 3000 x 2500 TIFF through the example model with the client's defaults (tiles of
    1024, overlap 0.25, Gaussian blending), and the same image in one in-process pass."""
    folder = tmp_path_factory.mktemp("large")
    image, truth = synthetic_image(1000, 3000, 2500)
    tifffile.imwrite(folder / "large.tif", image)
    run = run_client(
        "-u", triton.grpc_url, "--concurrency", "2", "-o", folder / "out", folder / "large.tif"
    )
    assert run.returncode == 0, run.stderr
    mask = read_mask(folder / "out" / "large.mask.tif")
    prob = whole_image_prob(session(serving_repository), image, ((0, 8), (0, 12)))
    plan = tiling.plan_image(3000, 2500, ((16, 16), (16, 16)), (1024, 1024))
    return {
        "run": run, "mask": mask, "prob": prob, "truth": truth > 0, "plan": plan, "image": image
    }  # fmt: skip


def seam_band(plan, shape: tuple[int, int]) -> np.ndarray:
    """Pixels within SEAM_BAND of an edge of a tile's output inside the image."""
    band = np.zeros(shape, bool)
    for axis, tiles in ((0, plan.rows), (1, plan.cols)):
        for start in tiles.starts:
            for edge in (start, start + tiles.out):
                if 0 < edge < tiles.length:
                    index = [slice(None), slice(None)]
                    index[axis] = slice(max(edge - SEAM_BAND, 0), edge + SEAM_BAND)
                    band[tuple(index)] = True
    return band


def near_borders(mask: np.ndarray, distance: int = 2) -> np.ndarray:
    """Pixels within `distance` of a boundary between the mask's classes."""
    near = np.zeros_like(mask)
    for dy in range(-distance, distance + 1):
        for dx in range(-distance, distance + 1):
            near |= np.roll(mask, (dy, dx), axis=(0, 1)) != mask
    return near


def test_large_image_comes_back_as_one_mask_of_its_size(large_run: dict) -> None:
    plan = large_run["plan"]
    assert plan.count == 12  # 4 x 3 tiles: seams to check
    assert f"{plan.count} tiles of 1024x1024" in large_run["run"].stdout
    assert large_run["mask"].shape == (3000, 2500)


def test_blended_tiles_agree_with_whole_image_inference_away_from_seams(
    large_run: dict, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """>= 99.5% of pixels agree with one whole-image pass; pixels at tile seams agree as
    often as the rest (no seam), and what disagrees lies on cell borders."""
    mask, prob, plan = large_run["mask"], large_run["prob"], large_run["plan"]
    expected = prob > 0.5
    agree = mask == expected
    band = seam_band(plan, mask.shape)
    seams = {
        "agreement": float(agree.mean()),
        "agreement_at_seams": float(agree[band].mean()),
        "agreement_away_from_seams": float(agree[~band].mean()),
        "seam_band_fraction": float(band.mean()),
        "disagreeing_pixels": int((~agree).sum()),
        "disagreeing_on_cell_borders": float(near_borders(expected)[~agree].mean())
        if (~agree).any()
        else None,
    }
    print(f"seam check: {json.dumps(seams)}")  # pytest -s shows it (BENCHMARKS.md quotes it)
    assert seams["agreement"] >= 0.995
    # A seam would show as disagreement concentrated along tile edges.
    assert 1 - seams["agreement_at_seams"] <= max(
        2 * (1 - seams["agreement_away_from_seams"]), 1e-4
    )
    if seams["disagreeing_pixels"] >= 20:
        assert seams["disagreeing_on_cell_borders"] >= 0.9


def test_large_image_mask_finds_the_cells(large_run: dict) -> None:
    mask, truth = large_run["mask"], large_run["truth"]
    assert np.logical_and(mask, truth).sum() / np.logical_or(mask, truth).sum() >= 0.9


def test_the_same_image_in_12_bits_is_tiled_into_the_same_mask(
    large_run: dict, triton: TritonServer, tmp_path: Path
) -> None:
    """12-bit camera data in a 16-bit BigTIFF is mapped once for the whole image (by its
    bit depth, 0..4095), never per tile: it agrees with the 8-bit image's mask as that one
    agrees with a whole-image pass."""
    twelve = large_run["image"].astype(np.uint16) * 16
    tifffile.imwrite(tmp_path / "large12.tif", twelve, bigtiff=True)
    run = run_client(
        "-u",
        triton.grpc_url,
        "--concurrency",
        "2",
        "-o",
        tmp_path / "out",
        tmp_path / "large12.tif",
    )
    assert run.returncode == 0, run.stderr
    assert "intensities 0..4095 (12-bit" in run.stdout
    assert f"{large_run['plan'].count} tiles of 1024x1024" in run.stdout
    mask, eight = read_mask(tmp_path / "out" / "large12.mask.tif"), large_run["mask"]
    agree = mask == eight
    borders = float(near_borders(eight)[~agree].mean()) if (~agree).any() else None
    print(f"12-bit vs 8-bit: agreement {agree.mean():.6f}, on cell borders {borders}")
    assert agree.mean() >= 0.995
    if (~agree).sum() >= 20:
        assert borders is not None and borders >= 0.9


# ---- formats and bad inputs ----------------------------------------------------------------


def test_multi_page_tiff_gives_a_mask_page_per_page(triton: TritonServer, tmp_path: Path) -> None:
    pages = [np.asarray(Image.open(REPO_ROOT / "samples" / f"cells_0{i}.png")) for i in (1, 2)]
    tifffile.imwrite(tmp_path / "stack.tif", np.stack(pages), compression="zlib")
    for i, page in enumerate(pages):
        Image.fromarray(page).save(tmp_path / f"page{i}.png")
    run = run_client(
        "-u", triton.grpc_url, "-b", "2", "-o", tmp_path / "out",
        tmp_path / "stack.tif", tmp_path / "page0.png", tmp_path / "page1.png",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    stack = read_mask(tmp_path / "out" / "stack.mask.tif")
    assert stack.shape == (2, 256, 256)
    for i in range(2):
        np.testing.assert_array_equal(stack[i], read_mask(tmp_path / "out" / f"page{i}.mask.png"))
    assert "no overlay (2 pages)" in run.stdout
    assert not (tmp_path / "out" / "stack.overlay.png").exists()


def test_bad_inputs_get_their_exit_code_and_a_strip_is_segmented(
    triton: TritonServer, serving_repository: Path, tmp_path: Path
) -> None:
    (tmp_path / "empty.tif").write_bytes(b"")
    image, _ = synthetic_image(3, 400, 300)
    tifffile.imwrite(tmp_path / "big.tif", image, bigtiff=True)
    data = (tmp_path / "big.tif").read_bytes()
    (tmp_path / "truncated.tif").write_bytes(data[: len(data) // 2])
    strip = synthetic_image(4, 32, 100_000)[0][16:17]  # one row of 100,000 pixels
    Image.fromarray(strip).save(tmp_path / "strip.png")
    out = tmp_path / "out"
    run = run_client(
        "-u", triton.grpc_url, "-b", "8", "-o", out,
        tmp_path / "empty.tif", tmp_path / "truncated.tif", tmp_path / "strip.png",
    )  # fmt: skip
    assert run.returncode == EXIT_UNREADABLE, run.stderr
    errors = run.stderr.splitlines()
    assert len(errors) == 2 and all(line.startswith("error: ") for line in errors), errors
    assert "empty.tif: empty file (0 bytes)" in errors[0]
    assert "truncated.tif: truncated TIFF" in errors[1]
    assert sorted(p.name for p in out.iterdir()) == ["strip.mask.png", "strip.overlay.png"]
    mask = read_mask(out / "strip.mask.png")
    assert mask.shape == (1, 100_000)
    # the one row mirrored up to the 16 rows the model takes, in one in-process pass
    prob = whole_image_prob(session(serving_repository), strip, ((0, 15), (0, 0)))
    assert np.mean(mask == (prob > 0.5)) >= 0.995


def test_a_tile_larger_than_the_server_takes_is_refused(
    triton: TritonServer, tmp_path: Path
) -> None:
    run = run_client(
        "-u",
        triton.grpc_url,
        "--tile",
        "4096",
        "-o",
        tmp_path,
        REPO_ROOT / "samples" / "cells_01.png",
    )
    assert run.returncode == EXIT_USAGE
    assert run.stderr.splitlines() == [
        "error: --tile 4096 is larger than the server takes (max_image_side 2048): "
        "choose at most 2048"
    ]


def test_progress_bar_shows_on_a_terminal(triton: TritonServer, tmp_path: Path) -> None:
    image, _ = synthetic_image(5, 40, 700)
    Image.fromarray(image).save(tmp_path / "wide.png")
    controller, terminal = pty.openpty()
    # a terminal of 24 x 100 characters (a new pseudo-terminal has none: tqdm would draw 0)
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    process = subprocess.Popen(
        [
            sys.executable,
            str(CLIENT),
            "-u",
            triton.grpc_url,
            "--tile",
            "256",
            "-o",
            str(tmp_path / "out"),
            str(tmp_path / "wide.png"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=terminal,
    )
    os.close(terminal)
    seen = b""
    while True:
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # the client closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    os.close(controller)
    assert process.wait(timeout=60) == 0
    text = seen.decode(errors="replace")
    assert "tile/s" in text and "/4" in text, text  # tiles done of 4, the rate

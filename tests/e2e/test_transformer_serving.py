"""A transformer U-Net end to end: `make serve MODEL=swin_unet.h5` converts keras-unet-collection's
Swin-UNet (window attention, shifted windows, patch merging and expanding), serves it from
Triton, and client/segment.py segments RGB images larger than the 64x64 the network takes, in
tiles of that size. Every mask is checked against ONNX Runtime run in this process on the
served ONNX file, tile by tile."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image

from tests.helpers import REPO_ROOT
from tests.helpers.serving import copy_model_directory, run_client, wait_until_serving
from tests.keras2onnx.zoo.specs import COMMITTED
from unetkit.core import INPUT_IMAGE, OUTPUT_PROB, read_model_info
from unetkit.triton import free_ports, onnx_path

SWIN_UNET = COMMITTED / "kuc_swin_unet_2d__tfkeras.h5"
SIDE = 64  # the size Swin-UNet was built for: its attention windows pin it
DECIDED = 1e-4  # PROB this far from 0.5 gives the same MASK whatever the engine's rounding


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """`make serve MODEL=... PRECISION=fp32` on free ports until the module's tests are done."""
    folder = tmp_path_factory.mktemp("transformer")
    repository = copy_model_directory(folder / "model_repository")
    model = shutil.copy(SWIN_UNET, folder / "swin_unet.h5")
    http, grpc, metrics = free_ports(3)
    server = subprocess.Popen(
        [
            *("make", "-s", "-C", str(REPO_ROOT), "serve", f"REPOSITORY={repository}"),
            *(f"MODEL={model}", "PRECISION=fp32"),
            *(f"GRPC_PORT={grpc}", f"HTTP_PORT={http}", f"METRICS_PORT={metrics}"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        wait_until_serving(server, "make serve")
        yield f"127.0.0.1:{grpc}", repository
        os.killpg(server.pid, signal.SIGINT)
        assert server.wait(timeout=90) in (0, 2, -signal.SIGINT)
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)


def rgb_image(seed: int, height: int, width: int) -> np.ndarray:
    """Smooth blobs on a gradient: structure at several scales, every channel different."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.stack([x / width, y / height, (x + y) / (width + height)], axis=-1) * 120
    for _ in range(12):
        cy, cx, r = rng.uniform(0, height), rng.uniform(0, width), rng.uniform(6, 24)
        image += rng.uniform(40, 120, 3) * (((y - cy) ** 2 + (x - cx) ** 2) < r * r)[..., None]
    return np.clip(image, 0, 255).astype(np.uint8)


def segment(url: str, image: np.ndarray, folder: Path, *flags: str) -> tuple[np.ndarray, str]:
    Image.fromarray(image).save(folder / "scene.png")
    run = run_client("-u", url, "-o", folder / "out", *flags, folder / "scene.png")
    assert run.returncode == 0, run.stderr
    mask = np.asarray(Image.open(folder / "out" / "scene.mask.png")) > 0
    return mask, run.stdout


def tile_prob(session: ort.InferenceSession, tile: np.ndarray) -> np.ndarray:
    (prob,) = session.run([OUTPUT_PROB], {INPUT_IMAGE: tile[None]})
    return prob[0, :, :, 0]


def test_the_served_swin_unet_takes_its_built_size_only(served: tuple[str, Path]) -> None:
    _, repository = served
    info = read_model_info(onnx_path(repository))
    assert info.fixed_size == (SIDE, SIDE) and info.channels == 3 and info.classes == 1
    assert "swin_unet.h5" in info.source


def test_tiles_of_its_size_without_overlap_give_each_tiles_own_mask(
    served: tuple[str, Path], tmp_path: Path
) -> None:
    """A 128x192 image as six 64x64 tiles side by side: the served mask is, tile by tile,
    what ONNX Runtime computes on that tile."""
    url, repository = served
    image = rgb_image(1, 2 * SIDE, 3 * SIDE)
    mask, stdout = segment(url, image, tmp_path, "--overlap", "0")
    assert mask.shape == image.shape[:2]
    assert f"6 tiles of {SIDE}x{SIDE}" in stdout, stdout
    session = ort.InferenceSession(str(onnx_path(repository)), providers=["CPUExecutionProvider"])
    rows, cols = range(0, 2 * SIDE, SIDE), range(0, 3 * SIDE, SIDE)
    prob = np.block(
        [[tile_prob(session, image[r : r + SIDE, c : c + SIDE]) for c in cols] for r in rows]
    )
    decided = np.abs(prob - 0.5) > DECIDED
    assert decided.mean() > 0.99 and 0.05 < (prob > 0.5).mean() < 0.95
    np.testing.assert_array_equal(mask[decided], (prob > 0.5)[decided])


def test_an_image_of_any_size_is_tiled_with_blended_overlaps(
    served: tuple[str, Path], tmp_path: Path
) -> None:
    """The client's defaults (overlap 0.25, Gaussian blending) on 150x201: one mask of the
    image's size; where a single tile covers the image (its corners), that tile's mask."""
    url, repository = served
    image = rgb_image(2, 150, 201)
    mask, stdout = segment(url, image, tmp_path)
    assert mask.shape == image.shape[:2]
    count = re.search(rf" (\d+) tiles of {SIDE}x{SIDE}", stdout)
    assert count is not None and int(count.group(1)) > 6, stdout
    session = ort.InferenceSession(str(onnx_path(repository)), providers=["CPUExecutionProvider"])
    half = SIDE // 2  # overlaps of at most a quarter leave each corner's half-tile to one tile
    corners = [
        (slice(0, SIDE), slice(0, SIDE)),
        (slice(150 - SIDE, 150), slice(201 - SIDE, 201)),
    ]
    for rows, cols in corners:
        prob = tile_prob(session, image[rows, cols])
        inner = (slice(0, half), slice(0, half)) if rows.start == 0 else (slice(half, None),) * 2
        expected, got = prob[inner] > 0.5, mask[rows, cols][inner]
        decided = np.abs(prob[inner] - 0.5) > DECIDED
        np.testing.assert_array_equal(got[decided], expected[decided])

"""The U-Net through the real Triton server: same numbers as its engine in this process (the
one the export chose), batching, samples."""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from PIL import Image
from tritonclient.utils import InferenceServerException

from tests.helpers.serving import (
    REPO_ROOT,
    image_input,
    infer,
    random_images,
    run_client,
    served_engine,
)
from unetkit.core import INPUT_IMAGE, MODEL_NAME, OUTPUT_MASK, OUTPUT_PROB
from unetkit.triton import CPU_INSTANCES, Engine, TritonServer


@pytest.fixture(scope="module")
def in_process(serving_repository: Path) -> Engine:
    """The served engine on the served file, with the server's threads (every core)."""
    return served_engine(serving_repository, threads=0)


@pytest.mark.parametrize("shape", [(1, 256, 256, 1), (2, 64, 96, 1)])
def test_prob_equals_the_served_engine_in_process(
    triton: TritonServer, in_process: Engine, shape: tuple[int, ...]
) -> None:
    images = random_images(1, shape)
    prob, mask = infer(triton.grpc_url, images)
    expected_prob, expected_mask = in_process.run([OUTPUT_PROB, OUTPUT_MASK], {INPUT_IMAGE: images})
    assert prob.shape == expected_prob.shape and mask.shape == expected_mask.shape
    np.testing.assert_allclose(prob, expected_prob, rtol=0, atol=1e-5)
    # MASK is computed from PROB: only pixels right at the threshold may flip.
    assert np.mean(mask != expected_mask) < 1e-4


def test_one_request_of_three_images_equals_three_requests(triton: TritonServer) -> None:
    images = random_images(2, (3, 48, 64, 1))
    batched_prob, batched_mask = infer(triton.grpc_url, images)
    for index in range(3):
        prob, mask = infer(triton.grpc_url, images[index : index + 1])
        np.testing.assert_allclose(batched_prob[index], prob[0], rtol=0, atol=1e-5)
        assert np.mean(batched_mask[index] != mask[0]) < 1e-3


def test_concurrent_requests_of_mixed_sizes_each_get_their_own_answer(
    triton: TritonServer, in_process: Engine
) -> None:
    """The dynamic batcher hands model.py several requests at once, of different sizes."""
    shapes = [(1, 32, 32, 1), (2, 32, 48, 1), (1, 32, 32, 1), (1, 64, 32, 1)] * 3
    inputs = [random_images(seed, shape) for seed, shape in enumerate(shapes)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda images: infer(triton.grpc_url, images), inputs))
    for images, (prob, _) in zip(inputs, results, strict=True):
        (expected,) = in_process.run([OUTPUT_PROB], {INPUT_IMAGE: images})
        np.testing.assert_allclose(prob, expected, rtol=0, atol=1e-5)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def test_client_segments_the_samples_with_iou_at_least_0_9(
    triton: TritonServer, tmp_path: Path
) -> None:
    samples = sorted((REPO_ROOT / "samples").glob("*.png"))
    assert samples, "samples/*.png are missing"
    run = run_client(
        "-u", triton.grpc_url, "-b", "4", "--concurrency", "2", "-o", tmp_path, *samples
    )
    assert run.returncode == 0, run.stderr
    scores = {}
    for sample in samples:
        truth = np.asarray(Image.open(REPO_ROOT / "samples" / "gt" / sample.name)) > 0
        mask = np.asarray(Image.open(tmp_path / f"{sample.stem}.mask.png")) > 0
        assert mask.shape == truth.shape, sample.name
        assert (tmp_path / f"{sample.stem}.overlay.png").is_file()
        scores[sample.name] = iou(mask, truth)
    assert min(scores.values()) >= 0.9, scores


def test_requests_whose_clients_gave_up_while_queued_are_not_run(triton: TritonServer) -> None:
    """Large images keep every instance busy for a second or more; small requests with a
    0.2 s deadline wait behind them, and their clients give up before an instance is free."""
    assert triton.log_file is not None
    log_start = triton.log_file.stat().st_size

    def send(image: np.ndarray, deadline_s: float | None) -> str:
        with grpcclient.InferenceServerClient(triton.grpc_url) as client:
            try:
                client.infer(
                    MODEL_NAME,
                    [image_input(image)],
                    outputs=[grpcclient.InferRequestedOutput(OUTPUT_MASK)],
                    client_timeout=deadline_s,
                )
            except InferenceServerException as e:
                return e.status() or "?"
            return "mask"

    large = random_images(7, (1, 2048, 2048, 1))
    with ThreadPoolExecutor(CPU_INSTANCES + 4) as pool:
        busy = [pool.submit(send, large, None) for _ in range(CPU_INSTANCES)]
        time.sleep(0.3)
        given_up = [pool.submit(send, random_images(i, (1, 256, 256, 1)), 0.2) for i in range(4)]
        assert [f.result() for f in given_up] == ["StatusCode.DEADLINE_EXCEEDED"] * 4
        assert [f.result() for f in busy] == ["mask"] * CPU_INSTANCES

    def skipped() -> list[int]:
        with triton.log_file.open() as log:
            log.seek(log_start)
            return [int(n) for n in re.findall(r"unetkit: skipped (\d+) request", log.read())]

    deadline = time.monotonic() + 10  # the skipped batch reaches an instance after the large
    while sum(skipped()) < 4 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert sum(skipped()) == 4, skipped()

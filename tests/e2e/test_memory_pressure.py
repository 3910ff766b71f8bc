"""A burst of large images against a server with a small memory budget: it stays up, under
its budget, answers every request with a mask or a capacity refusal, and serves correctly
right after. (The full-scale figure, 32 clients x 2048x2048 for 60 s, is in BENCHMARKS.md.)"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from tests.helpers.serving import copy_model_directory, infer, served_engine
from unetkit.core import INPUT_IMAGE, MEMORY_BUDGET_ENV, MODEL_NAME, OUTPUT_MASK
from unetkit.pipelines import EXAMPLE_MODEL, make_repository
from unetkit.triton import CPU_INSTANCES, CPU_MAX_QUEUE_SIZE, TritonServer

BUDGET_BYTES = 1 << 30
SIDE = 1024  # about 0.45 GiB of ONNX Runtime memory each: two at once would not fit
CLIENTS = CPU_MAX_QUEUE_SIZE + 8  # more than a bounded queue holds
BURST_S = 20.0
# What Triton (queue full, waited too long: with a queue policy) and model.py (batch full)
# answer at capacity.
CAPACITY = ("Exceeds maximum queue size", "Request timeout expired", "server at capacity")


@pytest.fixture(scope="module", params=[0, CPU_MAX_QUEUE_SIZE], ids=["default", "queue-policy"])
def small_server(
    request: pytest.FixtureRequest,
    serving_repository: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[TritonServer]:
    """The default config (no queue policy), and one with Triton's bounded queue."""
    repository = copy_model_directory(tmp_path_factory.mktemp("pressure"))
    make_repository(EXAMPLE_MODEL, repository, max_queue_size=request.param)
    server = TritonServer.on_free_ports(
        repository,
        extra_env={MEMORY_BUDGET_ENV: str(BUDGET_BYTES)},
        log_file=tmp_path_factory.mktemp("pressure_log") / "triton.log",
    )
    with server:
        yield server


def test_every_instance_plans_the_same_limits(small_server: TritonServer) -> None:
    assert small_server.log_file is not None
    plans = re.findall(r"unetkit: (memory budget [^\"]+)", small_server.log_file.read_text())
    assert len(plans) == CPU_INSTANCES, plans
    assert len(set(plans)) == 1, plans


def burst(url: str, outcomes: list[tuple[str, str]], deadline: float, seed: int) -> None:
    """One client sending SIDE x SIDE images back to back until the deadline."""
    image = np.random.default_rng(seed).integers(0, 256, (1, SIDE, SIDE, 1), np.uint8)
    tensor = grpcclient.InferInput(INPUT_IMAGE, list(image.shape), "UINT8")
    tensor.set_data_from_numpy(image)
    with grpcclient.InferenceServerClient(url) as client:
        while time.monotonic() < deadline:
            try:
                result = client.infer(
                    MODEL_NAME,
                    [tensor],
                    outputs=[grpcclient.InferRequestedOutput(OUTPUT_MASK)],
                    client_timeout=60,
                )
                assert result.as_numpy(OUTPUT_MASK).shape == (1, SIDE, SIDE)
                outcomes.append(("mask", ""))
            except InferenceServerException as e:
                outcomes.append((e.status() or "?", e.message() or ""))
                time.sleep(0.2)


def test_a_burst_stays_inside_the_budget_and_every_request_is_answered(
    small_server: TritonServer,
) -> None:
    stubs = small_server.stub_pids()
    peak_kib = 0
    stop = threading.Event()

    def watch() -> None:
        nonlocal peak_kib
        while not stop.wait(0.1):
            peak_kib = max(peak_kib, sum(m.rss_kib for m in small_server.members()))

    watcher = threading.Thread(target=watch)
    watcher.start()
    outcomes: list[tuple[str, str]] = []
    deadline = time.monotonic() + BURST_S
    clients = [
        threading.Thread(target=burst, args=(small_server.grpc_url, outcomes, deadline, i))
        for i in range(CLIENTS)
    ]
    for client in clients:
        client.start()
    for client in clients:
        client.join()
    stop.set()
    watcher.join()

    kinds = Counter(status for status, _ in outcomes)
    refused = [m for s, m in outcomes if s != "mask"]
    assert kinds["mask"] > 0, kinds
    assert refused, "the burst never reached the server's capacity: make it larger"
    assert set(kinds) <= {"mask", "StatusCode.UNAVAILABLE"}, kinds
    assert all(any(reason in m for reason in CAPACITY) for m in refused), set(refused)
    assert peak_kib * 1024 <= BUDGET_BYTES, f"peak {peak_kib / 2**20:.2f} GiB"
    assert small_server.stub_pids() == stubs  # no stub died (and none was restarted)


def test_right_after_the_burst_the_server_answers_correctly(small_server: TritonServer) -> None:
    image = np.random.default_rng(5).integers(0, 256, (1, 256, 256, 1), np.uint8)
    prob, mask = infer(small_server.grpc_url, image)
    engine = served_engine(small_server.model_repository)
    expected_prob, expected_mask = engine.run(["PROB", "MASK"], {INPUT_IMAGE: image})
    np.testing.assert_allclose(prob, expected_prob, atol=1e-5)
    np.testing.assert_array_equal(mask, expected_mask)


def test_an_image_over_the_budget_is_refused_in_one_line(small_server: TritonServer) -> None:
    with pytest.raises(InferenceServerException) as refused:
        infer(small_server.grpc_url, np.zeros((1, 2048, 2048, 1), np.uint8))
    assert refused.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert "larger than this server takes (memory budget 1.0 GiB" in refused.value.message()

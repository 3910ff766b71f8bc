"""Malformed requests get a clear INVALID_ARGUMENT, and nobody else notices.

Each case runs while a well-formed client keeps sending requests from another thread;
afterwards the server is still ready and that client saw no failure.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from tests.helpers.serving import image_input, infer, random_images
from unetkit.core import INPUT_IMAGE, MODEL_NAME, OUTPUT_MASK
from unetkit.triton import CPU_MAX_BATCH_SIZE, MAX_IMAGE_SIDE, TritonServer


class SteadyClient:
    """Sends one well-formed request after another until stopped; records every failure."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.successes = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        images = random_images(7, (1, 32, 32, 1))
        while not self._stop.is_set():
            try:
                prob, mask = infer(self.url, images)
                if prob.shape != (1, 32, 32, 1) or mask.shape != (1, 32, 32):
                    self.failures.append(f"wrong shapes {prob.shape} {mask.shape}")
                self.successes += 1
            except Exception as e:  # every kind of failure counts
                self.failures.append(repr(e))

    def __enter__(self) -> SteadyClient:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        # At least one request of the steady client overlaps the malformed one.
        while self.successes < 2 and not self.failures and self._thread.is_alive():
            self._stop.wait(0.05)
        self._stop.set()
        self._thread.join(60)


@pytest.fixture
def bystander(triton: TritonServer) -> Iterator[SteadyClient]:
    with SteadyClient(triton.grpc_url) as steady:
        yield steady
    assert steady.failures == []
    assert steady.successes >= 2
    with grpcclient.InferenceServerClient(triton.grpc_url) as client:
        assert client.is_server_ready()
        assert client.is_model_ready(MODEL_NAME)


def refused(url: str, inputs: list, outputs: list | None = None) -> str:
    with (
        grpcclient.InferenceServerClient(url) as client,
        pytest.raises(InferenceServerException) as caught,
    ):
        client.infer(MODEL_NAME, inputs, outputs=outputs)
    assert caught.value.status() == "StatusCode.INVALID_ARGUMENT", str(caught.value)
    return caught.value.message()


def uint8(shape: tuple[int, ...]) -> np.ndarray:
    return np.zeros(shape, dtype=np.uint8)


@pytest.mark.parametrize(
    ("inputs", "expected"),
    [
        pytest.param(
            lambda: [image_input(np.zeros((1, 32, 32, 1), np.float32), "FP32")],
            "data-type",
            id="wrong-dtype",
        ),
        pytest.param(lambda: [image_input(uint8((1, 32, 32)))], "shape", id="wrong-rank"),
        pytest.param(lambda: [image_input(uint8((1, 32, 32, 3)))], "shape", id="three-channels"),
        pytest.param(
            lambda: [image_input(uint8((1, 40, 30, 1)))], "multiple of 16", id="not-multiple"
        ),
        pytest.param(lambda: [image_input(uint8((1, 0, 32, 1)))], "empty", id="zero-sized"),
        pytest.param(lambda: [image_input(uint8((0, 32, 32, 1)))], "'IMAGE'", id="zero-batch"),
        pytest.param(
            lambda: [image_input(uint8((1, MAX_IMAGE_SIDE + 16, 16, 1)))],
            f"images up to {MAX_IMAGE_SIDE}x{MAX_IMAGE_SIDE}",
            id="over-max-side",
        ),
        pytest.param(
            lambda: [image_input(uint8((CPU_MAX_BATCH_SIZE + 1, 16, 16, 1)))],
            "batch",
            id="over-max-batch",
        ),
        pytest.param(lambda: [], "expected 1 inputs", id="no-input"),
    ],
)
def test_malformed_request_through_tritonclient(
    triton: TritonServer, bystander: SteadyClient, inputs, expected: str
) -> None:
    message = refused(triton.grpc_url, inputs())
    assert expected in message


def test_not_multiple_names_the_sizes_that_work(
    triton: TritonServer, bystander: SteadyClient
) -> None:
    message = refused(triton.grpc_url, [image_input(uint8((1, 40, 30, 1)))])
    assert "H must be a multiple of 16, got 40 (next valid: 48)" in message
    assert "W must be a multiple of 16, got 30 (next valid: 32)" in message


def test_unknown_output_name(triton: TritonServer, bystander: SteadyClient) -> None:
    message = refused(
        triton.grpc_url,
        [image_input(uint8((1, 32, 32, 1)))],
        [grpcclient.InferRequestedOutput("NOT_AN_OUTPUT")],
    )
    assert "NOT_AN_OUTPUT" in message


def test_only_the_requested_output_comes_back(triton: TritonServer) -> None:
    with grpcclient.InferenceServerClient(triton.grpc_url) as client:
        result = client.infer(
            MODEL_NAME,
            [image_input(random_images(3, (1, 32, 32, 1)))],
            outputs=[grpcclient.InferRequestedOutput(OUTPUT_MASK)],
        )
    outputs = [o.name for o in result.get_response().outputs]
    assert outputs == [OUTPUT_MASK]


# ---- raw gRPC messages built by hand -----------------------------------------------------


def raw_request(shape: list[int], datatype: str, payload: bytes) -> service_pb2.ModelInferRequest:
    request = service_pb2.ModelInferRequest(model_name=MODEL_NAME)
    tensor = request.inputs.add()
    tensor.name, tensor.datatype = INPUT_IMAGE, datatype
    tensor.shape.extend(shape)
    request.raw_input_contents.append(payload)
    return request


@pytest.fixture
def channel(triton: TritonServer) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(triton.grpc_url) as open_channel:
        yield open_channel


@pytest.mark.parametrize(
    ("request_factory", "expected"),
    [
        pytest.param(
            lambda: raw_request([1, 32, 32, 1], "UINT8", bytes(100)),
            "byte size mismatch",
            id="byte-size-mismatch",
        ),
        pytest.param(
            lambda: raw_request([1, 32, 32, 1], "FP32", bytes(32 * 32 * 4)),
            "data-type",
            id="wrong-dtype",
        ),
        pytest.param(
            lambda: raw_request([1, 32, 32, 2], "UINT8", bytes(32 * 32 * 2)),
            "shape",
            id="two-channels",
        ),
        pytest.param(
            lambda: raw_request([1, 36, 32, 1], "UINT8", bytes(36 * 32)),
            "multiple of 16",
            id="not-multiple",
        ),
        pytest.param(lambda: raw_request([1, 32, 0, 1], "UINT8", b""), "empty", id="zero-sized"),
        pytest.param(
            lambda: raw_request([1, 4096, 4096, 1], "UINT8", bytes(16)),
            "byte size mismatch",
            id="huge-shape-few-bytes",
        ),
        pytest.param(
            lambda: raw_request([1, -5, 32, 1], "UINT8", bytes(32)),
            "byte size mismatch",
            id="negative-dim",
        ),
    ],
)
def test_malformed_raw_grpc_message(
    channel: grpc.Channel, bystander: SteadyClient, request_factory, expected: str
) -> None:
    stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
    with pytest.raises(grpc.RpcError) as caught:
        stub.ModelInfer(request_factory(), timeout=60)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
    assert expected in caught.value.details()


def test_garbage_bytes_instead_of_a_message(channel: grpc.Channel, bystander: SteadyClient) -> None:
    garbage = np.random.default_rng(11).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    call = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
    with pytest.raises(grpc.RpcError) as caught:
        call(garbage, timeout=60)
    assert caught.value.code() == grpc.StatusCode.INTERNAL
    assert "parse" in caught.value.details()


def test_bad_requests_arriving_with_good_ones_fail_alone(triton: TritonServer) -> None:
    """Requests that arrive together reach model.py as one batch: only the bad ones fail."""
    good = random_images(5, (1, 32, 32, 1))
    bad = uint8((1, 40, 30, 1))
    (expected_prob, _) = infer(triton.grpc_url, good)

    def send(images: np.ndarray) -> np.ndarray | str:
        try:
            return infer(triton.grpc_url, images)[0]
        except InferenceServerException as e:
            return str(e.status())

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(send, [good, bad] * 8))
    for index, result in enumerate(results):
        if index % 2:
            assert result == "StatusCode.INVALID_ARGUMENT"
        else:
            assert isinstance(result, np.ndarray)
            np.testing.assert_allclose(result, expected_prob, rtol=0, atol=1e-5)

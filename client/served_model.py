"""The U-Net served by Triton, as client/segment.py sees it (copy the folder as a whole).

ServedModel waits until the model is ready, reads what it takes from its configuration
(ModelSpec: channels, classes, the size rule, where the output lies on the input, the MASK
threshold, the largest side, max_batch_size) and predicts: `predict(tiles, output)` sends
a batch of tiles over gRPC and returns the model's MASK or PROB for them, retrying with
exponential backoff while the server is UNAVAILABLE or at capacity. It is the predictor
that tiling.SlidingWindow calls, from several threads at once (tritonclient's gRPC client
is thread-safe for inference).

Every failure is a ModelError: a one-line reason and what kind of failure it is, so that
the caller can map it to its exit code.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import tritonclient.grpc as grpcclient
from tiling import SizeRule
from tritonclient.utils import InferenceServerException, np_to_triton_dtype

MASK = "MASK"
PROB = "PROB"
IMAGE = "IMAGE"

# The IMAGE data types the client sends: the model's input scale (intensity.py) follows it.
IMAGE_TYPES = {"TYPE_UINT8": "UINT8", "TYPE_UINT16": "UINT16", "TYPE_FP32": "FP32"}

# Kinds of failure (ModelError.kind).
UNREACHABLE = "unreachable"  # no server answers at the address, even after the retries
NOT_READY = "not ready"  # the server answers, but the model is missing, not ready or not ours
REFUSED = "refused"  # the server refused the request (INVALID_ARGUMENT)
FAILED = "failed"  # the server failed, timed out, or stayed at capacity through the retries

# What a busy server answers: UNAVAILABLE from Triton's bounded queue ("Exceeds maximum
# queue size", "Request timeout expired") and from the kit's CPU model ("server at
# capacity"), RESOURCE_EXHAUSTED from servers that say it that way. Both are retried.
RETRIED = ("StatusCode.UNAVAILABLE", "StatusCode.RESOURCE_EXHAUSTED")


class ModelError(Exception):
    """The model could not be reached, asked or run: a one-line reason and its kind."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


def is_unavailable(error: InferenceServerException) -> bool:
    return error.status() in RETRIED


def is_busy(error: InferenceServerException) -> bool:
    """The server answered, but is at capacity (not: nothing listens at the address)."""
    message = error.message() or ""
    return error.status() == "StatusCode.RESOURCE_EXHAUSTED" or any(
        reason in message
        for reason in ("maximum queue size", "Request timeout expired", "at capacity")
    )


def backoff_seconds(attempt: int) -> float:
    return min(0.5 * 2**attempt, 8.0)


# ---- what the model takes (copies of the kit's own; tests/client/test_parity.py) -------------


def rules_from_parameters(parameters: dict[str, str]) -> tuple[SizeRule, SizeRule]:
    """The (height, width) rules of the model's config parameters; configs of the kit's
    first release publish only `size_multiple`."""
    multiple = int(parameters.get("size_multiple") or 1)
    return (
        SizeRule(
            int(parameters.get("size_multiple_h") or multiple),
            int(parameters.get("min_height") or multiple),
        ),
        SizeRule(
            int(parameters.get("size_multiple_w") or multiple),
            int(parameters.get("min_width") or multiple),
        ),
    )


def geometry_from_parameters(parameters: dict[str, str]) -> tuple[int, int, int, int] | None:
    """(shrink_h, shrink_w, offset_h, offset_w) of the output on the input, or None when the
    config does not say (an output on another scale, or a config older than the field)."""
    keys = ("output_shrink_h", "output_shrink_w", "output_offset_h", "output_offset_w")
    if not all(parameters.get(key) for key in keys):
        return None
    shrink_h, shrink_w, offset_h, offset_w = (int(parameters[key]) for key in keys)
    return shrink_h, shrink_w, offset_h, offset_w


def threshold_from_parameters(parameters: dict[str, str]) -> float | None:
    """MASK's threshold on PROB (one-class models), None when the config does not say."""
    text = parameters.get("threshold")
    return float(text) if text else None


@dataclass(frozen=True)
class ModelSpec:
    """What the client learns from the server about the model."""

    channels: int
    classes: int
    max_batch_size: int
    fixed_size: tuple[int, int] | None
    height_rule: SizeRule
    width_rule: SizeRule
    max_side: int | None
    geometry: tuple[int, int, int, int] | None
    threshold: float | None
    input_type: str = "TYPE_UINT8"  # IMAGE's data type in the config

    @property
    def rules(self) -> tuple[SizeRule, SizeRule]:
        """The sizes the model takes; a model exported with a fixed size takes only that."""
        if self.fixed_size is not None:
            height, width = self.fixed_size
            return SizeRule(height, height), SizeRule(width, width)
        return self.height_rule, self.width_rule

    @property
    def shrinks(self) -> bool:
        """Whether the output is smaller than the input (a 'valid' U-Net)."""
        return self.geometry is not None and max(self.geometry[:2]) > 0


def spec_from_config(name: str, config: dict) -> ModelSpec:
    """The ModelSpec of a model configuration (as JSON); ModelError if it is not the kit's
    IMAGE -> MASK (and PROB) contract."""
    inputs = config.get("input", [])
    outputs = {o["name"]: o for o in config.get("output", [])}
    if len(inputs) != 1 or inputs[0].get("data_type") not in IMAGE_TYPES or MASK not in outputs:
        raise ModelError(
            f"model {name!r} does not take one UINT8, UINT16 or FP32 image and give a MASK: "
            "is it the kit's U-Net?",
            NOT_READY,
        )
    dims = [int(d) for d in inputs[0]["dims"]]
    if int(config.get("max_batch_size", 0)) < 1 or len(dims) != 3 or dims[2] < 1:
        raise ModelError(
            f"model {name!r} input dims {dims} are not [H, W, C] with batching", NOT_READY
        )
    parameters = {k: v.get("string_value", "") for k, v in config.get("parameters", {}).items()}
    prob_dims = [int(d) for d in outputs.get(PROB, {}).get("dims", [1])]
    height, width = dims[0], dims[1]
    try:
        height_rule, width_rule = rules_from_parameters(parameters)
        geometry = geometry_from_parameters(parameters)
        threshold = threshold_from_parameters(parameters)
        max_side = int(parameters["max_image_side"]) if parameters.get("max_image_side") else None
    except ValueError as e:
        raise ModelError(
            f"model {name!r} has config parameters that are not numbers ({e})", NOT_READY
        ) from e
    return ModelSpec(
        channels=dims[2],
        classes=max(prob_dims[-1], 1),
        max_batch_size=int(config["max_batch_size"]),
        fixed_size=(height, width) if height > 0 and width > 0 else None,
        height_rule=height_rule,
        width_rule=width_rule,
        max_side=max_side,
        geometry=geometry,
        threshold=threshold,
        input_type=inputs[0]["data_type"],
    )


class ServedModel:
    """One model on one Triton server, over gRPC: readiness, configuration, prediction."""

    def __init__(
        self, url: str, name: str, version: str = "", timeout: float = 60.0, retries: int = 3
    ) -> None:
        self.url, self.name, self.version = url, name, version
        self.timeout, self.retries = timeout, retries
        self.closed = threading.Event()  # ends the backoff waits of predictions in flight
        try:
            self.client = grpcclient.InferenceServerClient(url)
        except InferenceServerException as e:
            raise ModelError(f"cannot use --url {url}: {e}", UNREACHABLE) from e

    def __enter__(self) -> ServedModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.closed.set()
        self.client.close()

    def wait_until_ready(self) -> None:
        """Return once the model is ready, retrying while the server starts."""
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                self.client.is_server_live(client_timeout=self.timeout)
            except InferenceServerException as e:
                if last:
                    raise ModelError(
                        f"no Triton server answers at {self.url} ({e.status() or e}, tried "
                        f"{self.retries + 1} times): start one with `make serve`, or point "
                        "--url at yours",
                        UNREACHABLE,
                    ) from e
                self.closed.wait(backoff_seconds(attempt))
                continue
            try:
                if self.client.is_model_ready(self.name, self.version, client_timeout=self.timeout):
                    return
            except InferenceServerException as e:
                if last:
                    raise ModelError(f"cannot ask for model {self.name!r}: {e}", NOT_READY) from e
            if last:
                version = f" version {self.version}" if self.version else ""
                raise ModelError(
                    f"model {self.name!r}{version} is not ready on {self.url}: check the name "
                    "(-m, -x) and the server log (a model that failed to load)",
                    NOT_READY,
                )
            self.closed.wait(backoff_seconds(attempt))

    def read_spec(self) -> ModelSpec:
        """What the model takes, from its configuration on the server."""
        config = self.client.get_model_config(
            self.name, self.version, as_json=True, client_timeout=self.timeout
        )["config"]
        return spec_from_config(self.name, config)

    def predict(self, tiles: np.ndarray, output: str) -> np.ndarray:
        """The model's `output` (MASK or PROB) for a batch of tiles [n, h, w, C] of the
        model's IMAGE type. UNAVAILABLE answers are retried up to `retries` times, with
        exponential backoff."""
        image = grpcclient.InferInput(IMAGE, list(tiles.shape), np_to_triton_dtype(tiles.dtype))
        image.set_data_from_numpy(tiles)
        for attempt in range(self.retries + 1):
            try:
                result = self.client.infer(
                    self.name,
                    [image],
                    model_version=self.version,
                    outputs=[grpcclient.InferRequestedOutput(output)],
                    client_timeout=self.timeout,
                )
                return result.as_numpy(output)
            except InferenceServerException as error:
                if is_unavailable(error) and attempt < self.retries and not self.closed.is_set():
                    self.closed.wait(backoff_seconds(attempt))
                    continue
                raise ModelError(str(error), _kind(error)) from error
        raise AssertionError("unreachable: the last attempt returns or raises")


def _kind(error: InferenceServerException) -> str:
    if error.status() == "StatusCode.INVALID_ARGUMENT":
        return REFUSED
    if error.status() == "StatusCode.UNAVAILABLE" and not is_busy(error):
        return UNREACHABLE
    return FAILED

"""The load test's command-line flags, added to Locust's own (`locust --help` lists them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from unetkit.core import DEFAULT_GRPC_URL, MODEL_NAME, OUTPUT_MASK

DEFAULT_IMAGES = Path(__file__).resolve().parents[2] / "samples"


def add_arguments(parser: Any) -> None:
    """Register the flags on Locust's parser (each also as an UNETKIT_* variable)."""
    group = parser.add_argument_group("unetkit", "Triton model under test")
    _workload_arguments(group)
    _sending_arguments(group)
    _measurement_arguments(group)


def _workload_arguments(group: Any) -> None:
    """The server, the model, and what is sent to it and checked."""
    group.add_argument(
        "--model-name",
        default=MODEL_NAME,
        env_var="UNETKIT_MODEL",
        help="model name in Triton (default %(default)s)",
    )
    group.add_argument(
        "--triton-url",
        default=DEFAULT_GRPC_URL,
        env_var="UNETKIT_TRITON_URL",
        help="Triton gRPC address host:port (default %(default)s)",
    )
    group.add_argument(
        "--batch-size",
        type=int,
        default=1,
        env_var="UNETKIT_BATCH_SIZE",
        help="images per request (default %(default)s)",
    )
    group.add_argument(
        "--images",
        default=str(DEFAULT_IMAGES),
        env_var="UNETKIT_IMAGES",
        help="folder of images, masks in its gt/ subfolder (default samples/)",
    )
    group.add_argument(
        "--outputs",
        default=OUTPUT_MASK,
        env_var="UNETKIT_OUTPUTS",
        help="comma-separated outputs to request (default %(default)s)",
    )
    group.add_argument(
        "--validate-fraction",
        type=float,
        default=0.1,
        env_var="UNETKIT_VALIDATE_FRACTION",
        help="fraction of answers whose MASK is checked against the ground "
        "truth (default %(default)s; 0 turns checking off)",
    )
    group.add_argument(
        "--min-iou",
        type=float,
        default=0.8,
        env_var="UNETKIT_MIN_IOU",
        help="IoU with the ground truth below which an answer fails (default %(default)s)",
    )


def _sending_arguments(group: Any) -> None:
    """Timeouts, and the closed or open loop of each user."""
    group.add_argument(
        "--request-timeout",
        type=float,
        default=30.0,
        env_var="UNETKIT_REQUEST_TIMEOUT",
        help="seconds before a request counts as failed (default %(default)s)",
    )
    group.add_argument(
        "--failure-pause",
        type=float,
        default=0.1,
        env_var="UNETKIT_FAILURE_PAUSE",
        help="closed loop: seconds a user waits after a failed request, so a down server "
        "is not hammered in a busy loop (default %(default)s)",
    )
    group.add_argument(
        "--open-loop-rate",
        type=float,
        default=0.0,
        env_var="UNETKIT_OPEN_LOOP_RATE",
        help="requests/s per user sent whatever the answers (open loop); 0 = each "
        "user waits for its answer (closed loop, the default)",
    )
    group.add_argument(
        "--arrivals",
        choices=("poisson", "fixed"),
        default="poisson",
        env_var="UNETKIT_ARRIVALS",
        help="open loop: exponential gaps between requests (Poisson arrivals, the standard "
        "open-loop model; default) or a fixed interval",
    )
    group.add_argument(
        "--max-in-flight",
        type=int,
        default=64,
        env_var="UNETKIT_MAX_IN_FLIGHT",
        help="open loop: requests a user may have outstanding; beyond it a "
        "scheduled request fails as dropped (default %(default)s)",
    )


def _measurement_arguments(group: Any) -> None:
    """Step loads, measurement windows, and the reports."""
    group.add_argument(
        "--step-users",
        type=int,
        default=4,
        env_var="UNETKIT_STEP_USERS",
        help="step_shape.py: users added per step (default %(default)s)",
    )
    group.add_argument(
        "--step-seconds",
        type=float,
        default=30.0,
        env_var="UNETKIT_STEP_SECONDS",
        help="step_shape.py: seconds per step (default %(default)s)",
    )
    group.add_argument(
        "--step-count",
        type=int,
        default=5,
        env_var="UNETKIT_STEP_COUNT",
        help="step_shape.py: number of steps (default %(default)s)",
    )
    group.add_argument(
        "--window",
        type=float,
        default=0.0,
        env_var="UNETKIT_WINDOW",
        help="seconds per measurement window, reported with its own percentiles "
        "(0 = no windows; distributed: use >= 10, workers report every 3 s)",
    )
    group.add_argument(
        "--stop-when-stable",
        action="store_true",
        env_var="UNETKIT_STOP_WHEN_STABLE",
        help="stop once 3 windows agree within 10%% in throughput and p95 (needs --window)",
    )
    group.add_argument(
        "--server-stats",
        action="store_true",
        env_var="UNETKIT_SERVER_STATS",
        help="read Triton's statistics API at each window (needs --window)",
    )
    group.add_argument(
        "--latency-report",
        default="",
        env_var="UNETKIT_LATENCY_REPORT",
        help="JSON file for exact percentiles, windows and server split",
    )

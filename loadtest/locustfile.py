"""Locust load test of the kit's Triton model over gRPC.

    locust -f loadtest/locustfile.py --config loadtest/locust.conf          # headless, reports
    locust -f loadtest/locustfile.py,loadtest/step_shape.py --config ...    # step load

Images are decoded and turned into request tensors once per process, before any request;
only `infer()` is timed. Every successful request's latency also goes, unrounded, into an
HDR histogram (merged from workers in distributed mode) whose percentiles are printed at the
end and written to --latency-report. A fraction of the answers is checked against the
ground-truth masks (--validate-fraction, --min-iou), so a fast but wrong server fails.

--open-loop-rate R makes each user send R requests/s on a fixed schedule whatever the
latency (latency is measured from the scheduled time), so overload shows as latency instead
of as a quietly lower request rate. --window S reports every S-second window on its own;
with --stop-when-stable the run ends once three consecutive windows agree within 10% in
throughput and p95 (perf_analyzer's rule).
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gevent
import gevent.pool
import grpc.experimental.gevent as grpc_gevent
import numpy as np
from locust import User, constant, events, task
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

# gRPC must be switched to gevent (locust has monkey-patched by now) before any channel
# exists, or calls stall.
grpc_gevent.init_gevent()

import tritonclient.grpc as grpcclient  # noqa: E402
from tritonclient.utils import InferenceServerException  # noqa: E402

from unetkit import contract  # noqa: E402
from unetkit.atomic import write_text_atomic  # noqa: E402
from unetkit.errors import UserError  # noqa: E402
from unetkit.latency import LatencyHistogram  # noqa: E402
from unetkit.sample_set import Sample, iou, load_samples, pad_to_multiple  # noqa: E402
from unetkit.server_stats import StatsSnapshot, snapshot, split_ms  # noqa: E402
from unetkit.stability import STABLE_WINDOWS, Window, is_stable  # noqa: E402

logger = logging.getLogger("unetkit.loadtest")
DEFAULT_IMAGES = Path(__file__).resolve().parent.parent / "samples"
REPORT_MESSAGE_KEY = "unetkit_latency"
# tritonclient's own channel options, plus a short reconnect backoff: after a server restart
# gRPC's default backoff (growing to 120 s) would keep users failing long after it is back.
CHANNEL_ARGS = [
    ("grpc.max_send_message_length", grpcclient.MAX_GRPC_MESSAGE_SIZE),
    ("grpc.max_receive_message_length", grpcclient.MAX_GRPC_MESSAGE_SIZE),
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.min_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", 1000),
]


@events.init_command_line_parser.add_listener
def add_arguments(parser: Any) -> None:
    group = parser.add_argument_group("unetkit", "Triton model under test")
    group.add_argument(
        "--model-name",
        default=contract.MODEL_NAME,
        env_var="UNETKIT_MODEL",
        help="model name in Triton (default %(default)s)",
    )
    group.add_argument(
        "--triton-url",
        default="127.0.0.1:8001",
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
        default=contract.OUTPUT_MASK,
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
        help="requests/s per user on a fixed schedule (open loop); 0 = each "
        "user waits for its answer (closed loop, the default)",
    )
    group.add_argument(
        "--max-in-flight",
        type=int,
        default=64,
        env_var="UNETKIT_MAX_IN_FLIGHT",
        help="open loop: requests a user may have outstanding; beyond it a "
        "scheduled request fails as dropped (default %(default)s)",
    )
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


class ServerError(Exception):
    """A request the server refused or failed, with the server's status and message."""


class ValidationError(Exception):
    """The server answered, but its MASK is not the segmentation it should be."""


@dataclass(frozen=True)
class Batch:
    inputs: list[grpcclient.InferInput]
    samples: list[Sample]


@dataclass(frozen=True)
class Workload:
    batches: list[Batch]
    outputs: list[grpcclient.InferRequestedOutput]
    validate: bool


class LatencyBook:
    """Successful latencies and failure counts: the whole run, and the window being filled.

    Workers hand their window to the master with every stats report and start a new one.
    """

    def __init__(self) -> None:
        self.total = LatencyHistogram()
        self.window = LatencyHistogram()
        self.failures = 0
        self.window_failures = 0
        self.started = time.monotonic()
        self.stopped: float | None = None

    def record(self, seconds: float) -> None:
        self.total.record(seconds)
        self.window.record(seconds)

    def fail(self, count: int = 1) -> None:
        self.failures += count
        self.window_failures += count

    def absorb(self, encoded: bytes, failures: int) -> None:
        histogram = LatencyHistogram()
        histogram.add_encoded(encoded)
        self.total.add(histogram)
        self.window.add(histogram)
        self.fail(failures)

    def take_window(self) -> tuple[LatencyHistogram, int]:
        window, failures = self.window, self.window_failures
        self.window, self.window_failures = LatencyHistogram(), 0
        return window, failures


_book = LatencyBook()
_workload: Workload | None = None
_measurement: dict[str, Any] = {}


def prepare_workload(options: Any) -> Workload:
    """Decode the images and build every request's input tensors, once per process (at
    test start, so that no user blocks the event loop with it during the test)."""
    if options.batch_size < 1:
        raise UserError(f"--batch-size {options.batch_size} must be at least 1")
    if not 0.0 <= options.validate_fraction <= 1.0:
        raise UserError(f"--validate-fraction {options.validate_fraction} must be in 0..1")
    client = grpcclient.InferenceServerClient(url=options.triton_url)
    try:
        metadata = client.get_model_metadata(options.model_name, as_json=True)
    except InferenceServerException as e:
        raise UserError(
            f"cannot reach model {options.model_name!r} at {options.triton_url}: {e.message()} "
            "(start the server, or pass --triton-url / --model-name)"
        ) from e
    finally:
        client.close()
    image_input = next(
        (i for i in metadata.get("inputs", []) if i["name"] == contract.INPUT_IMAGE), None
    )
    if image_input is None:
        raise UserError(f"model {options.model_name!r} has no {contract.INPUT_IMAGE} input")
    declared_channels = int(image_input["shape"][-1])
    samples = load_samples(Path(options.images), declared_channels if declared_channels > 0 else 1)
    multiple = size_multiple(options)
    output_names = [name.strip() for name in options.outputs.split(",") if name.strip()]
    validate = options.validate_fraction > 0
    if validate and contract.OUTPUT_MASK not in output_names:
        raise UserError(
            f"--validate-fraction needs {contract.OUTPUT_MASK} in --outputs (or set it to 0)"
        )
    if validate and any(s.truth is None for s in samples):
        raise UserError(
            f"--validate-fraction needs a mask in {options.images}/gt/ for every image "
            "(or set it to 0)"
        )
    batches = []
    for start in range(len(samples)):
        members = [samples[(start + k) % len(samples)] for k in range(options.batch_size)]
        if len({m.image.shape for m in members}) != 1:
            continue  # one request carries images of one size
        pixels = [pad_to_multiple(m.image, multiple) for m in members]
        tensor = grpcclient.InferInput(
            contract.INPUT_IMAGE, [len(pixels), *pixels[0].shape], "UINT8"
        )
        tensor.set_data_from_numpy(np.stack(pixels))
        batches.append(Batch([tensor], members))
    if not batches:
        raise UserError(f"no {options.batch_size} images of one size in {options.images}")
    outputs = [grpcclient.InferRequestedOutput(name) for name in output_names]
    return Workload(batches, outputs, validate)


def size_multiple(options: Any) -> int:
    """The model's `size_multiple` config parameter (1 when it has none)."""
    client = grpcclient.InferenceServerClient(url=options.triton_url)
    try:
        config = client.get_model_config(options.model_name, as_json=True)["config"]
    finally:
        client.close()
    return int(config.get("parameters", {}).get("size_multiple", {}).get("string_value") or 1)


def check_masks(result: grpcclient.InferResult, samples: list[Sample], min_iou: float) -> None:
    masks = result.as_numpy(contract.OUTPUT_MASK)
    if masks is None or masks.shape[0] != len(samples):
        raise ValidationError(f"answer has no {contract.OUTPUT_MASK} per image")
    for padded, sample in zip(masks, samples, strict=True):
        assert sample.truth is not None
        mask = padded[: sample.truth.shape[0], : sample.truth.shape[1]]
        if mask.shape != sample.truth.shape:
            raise ValidationError(
                f"{contract.OUTPUT_MASK} of {sample.name} is {mask.shape}, its ground truth "
                f"is {sample.truth.shape}"
            )
        if iou(mask != 0, sample.truth) < min_iou:
            raise ValidationError(
                f"{contract.OUTPUT_MASK} of {sample.name}: IoU with ground truth below {min_iou}"
            )


class TritonUser(User):
    """One client connection sending requests back to back, or on a fixed schedule."""

    wait_time = constant(0)

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self.workload: Workload | None = None
        self.client: grpcclient.InferenceServerClient | None = None
        self.next_batch = 0
        self.in_flight = gevent.pool.Pool()
        self.rng = random.Random()

    def on_start(self) -> None:
        self.workload = _workload
        if self.workload is not None:  # None: preparation failed and the runner is quitting
            self.client = grpcclient.InferenceServerClient(
                self.environment.parsed_options.triton_url, channel_args=CHANNEL_ARGS
            )
            self.next_batch = random.randrange(len(self.workload.batches))

    def on_stop(self) -> None:
        self.in_flight.kill()
        # The client must be closed and freed while gevent still runs: its __del__ closes
        # the channel again, and at interpreter exit that hangs the process.
        if self.client is not None:
            self.client.close()
            self.client = None

    def _take_batch(self) -> Batch:
        batch = self.workload.batches[self.next_batch]
        self.next_batch = (self.next_batch + 1) % len(self.workload.batches)
        return batch

    def _send(self, batch: Batch, started: float) -> bool:
        options = self.environment.parsed_options
        exception: Exception | None = None
        response_length = 0
        try:
            result = self.client.infer(
                options.model_name,
                batch.inputs,
                outputs=self.workload.outputs,
                client_timeout=options.request_timeout,
            )
        except InferenceServerException as e:
            # Locust groups failures by repr(), which for this exception omits the message.
            result, exception = None, ServerError(str(e))
        elapsed = time.perf_counter() - started
        if result is not None:
            response_length = sum(len(c) for c in result.get_response().raw_output_contents)
            if self.workload.validate and self.rng.random() < options.validate_fraction:
                try:
                    check_masks(result, batch.samples, options.min_iou)
                except ValidationError as e:
                    exception = e
        self._report(elapsed, response_length, exception)
        return exception is None

    def _report(self, elapsed: float, length: int, exception: Exception | None) -> None:
        if exception is None:
            _book.record(elapsed)
        else:
            _book.fail()
        self.environment.events.request.fire(
            request_type="grpc",
            name=self.environment.parsed_options.model_name,
            response_time=elapsed * 1000.0,
            response_length=length,
            exception=exception,
            context={},
        )

    def _open_loop(self, rate: float) -> None:
        interval = 1.0 / rate
        limit = self.environment.parsed_options.max_in_flight
        scheduled = time.perf_counter() + self.rng.random() * interval
        while True:
            gevent.sleep(max(0.0, scheduled - time.perf_counter()))
            if len(self.in_flight) >= limit:
                self._report(0.0, 0, RuntimeError(f"dropped: {limit} requests in flight"))
            else:
                self.in_flight.spawn(self._send, self._take_batch(), scheduled)
            scheduled += interval

    @task
    def infer(self) -> None:
        if self.workload is None:
            gevent.sleep(1)
            return
        rate = self.environment.parsed_options.open_loop_rate
        if rate > 0:
            self._open_loop(rate)
        elif not self._send(self._take_batch(), time.perf_counter()):
            gevent.sleep(self.environment.parsed_options.failure_pause)


@events.report_to_master.add_listener
def send_window(client_id: str, data: dict[str, Any]) -> None:
    window, failures = _book.take_window()
    data[REPORT_MESSAGE_KEY] = {"histogram": window.encode(), "failures": failures}


@events.worker_report.add_listener
def receive_window(client_id: str, data: dict[str, Any]) -> None:
    report = data.get(REPORT_MESSAGE_KEY)
    if report:
        _book.absorb(report["histogram"], report["failures"])


@events.test_start.add_listener
def start_measuring(environment: Environment, **_: Any) -> None:
    global _book, _workload
    if _workload is None and not isinstance(environment.runner, MasterRunner):
        try:
            _workload = prepare_workload(environment.parsed_options)
        except UserError as e:
            logger.error("error: %s", e)
            environment.process_exit_code = 2
            gevent.spawn(environment.runner.quit)
    _book = LatencyBook()
    _measurement.clear()
    _measurement["users"] = 0
    options = environment.parsed_options
    if options.window > 0 and not isinstance(environment.runner, WorkerRunner):
        gevent.spawn(measure_windows, environment)


@events.spawning_complete.add_listener
def note_users(user_count: int, **_: Any) -> None:
    _measurement["users"] = max(_measurement.get("users", 0), user_count)


@events.test_stop.add_listener
def stop_measuring(environment: Environment, **_: Any) -> None:
    _book.stopped = time.monotonic()


def measure_windows(environment: Environment) -> None:
    """Close a window every --window seconds; with --stop-when-stable, quit once the last
    three agree. The steady state is the last three windows merged."""
    options = environment.parsed_options
    stats_client = None
    if options.server_stats:
        stats_client = grpcclient.InferenceServerClient(url=options.triton_url)
    try:
        windows: list[Window] = []
        histograms: list[LatencyHistogram] = []
        server: list[StatsSnapshot] = []
        if stats_client is not None:
            server.append(snapshot(stats_client, options.model_name))
        _book.take_window()
        while True:
            opened = time.monotonic()
            gevent.sleep(options.window)
            histogram, failures = _book.take_window()
            windows.append(
                Window(
                    time.monotonic() - opened,
                    histogram.count,
                    failures,
                    histogram.percentile_ms(95),
                )
            )
            histograms.append(histogram)
            if stats_client is not None:
                server.append(snapshot(stats_client, options.model_name))
            steady = windows[-STABLE_WINDOWS:]
            merged = LatencyHistogram()
            for h in histograms[-STABLE_WINDOWS:]:
                merged.add(h)
            seconds = sum(w.seconds for w in steady)
            _measurement["stable"] = is_stable(windows)
            _measurement["windows"] = [
                {
                    "seconds": round(w.seconds, 3),
                    "requests": w.requests,
                    "failures": w.failures,
                    "p95_ms": w.p95_ms,
                    "p99_ms": h.percentile_ms(99),
                }
                for w, h in zip(windows, histograms, strict=True)
            ]
            _measurement["steady"] = {
                "seconds": seconds,
                "requests": merged.count,
                "failures": sum(w.failures for w in steady),
                "requests_per_s": merged.count / seconds,
                "images_per_s": merged.count * options.batch_size / seconds,
                "latency_ms": merged.summary_ms(),
            }
            if stats_client is not None:
                _measurement["steady"]["server"] = split_ms(server[-len(steady) - 1], server[-1])
            if _measurement["stable"] and options.stop_when_stable:
                logger.info("stable after %d windows of %.0f s", len(windows), options.window)
                environment.runner.quit()
                return
    finally:
        if stats_client is not None:
            stats_client.close()


def latency_report(environment: Environment) -> dict[str, Any]:
    options = environment.parsed_options
    seconds = (_book.stopped or time.monotonic()) - _book.started
    return {
        "model": options.model_name,
        "url": options.triton_url,
        "batch_size": options.batch_size,
        "users": _measurement.get("users", 0),
        "open_loop_rate_per_user": options.open_loop_rate,
        "seconds": seconds,
        "requests": _book.total.count,
        "failures": _book.failures,
        "requests_per_s": _book.total.count / seconds if seconds > 0 else 0.0,
        "latency_ms": _book.total.summary_ms(),
        **{k: v for k, v in _measurement.items() if k != "users"},
    }


@events.quit.add_listener
def print_latency(exit_code: int, **_: Any) -> None:
    environment = _environment
    if environment is None or isinstance(environment.runner, WorkerRunner):
        return
    report = latency_report(environment)
    latency = report["latency_ms"]
    print(
        f"Exact latency of {report['requests']} successful requests (HDR, ms): "
        + "  ".join(f"{k} {latency[k]:.2f}" for k in ("p50", "p90", "p95", "p99", "max"))
        + f"  | failures {report['failures']}",
        flush=True,
    )
    if environment.parsed_options.latency_report:
        write_text_atomic(
            environment.parsed_options.latency_report, json.dumps(report, indent=2) + "\n"
        )


_environment: Environment | None = None


@events.init.add_listener
def remember_environment(environment: Environment, **_: Any) -> None:
    global _environment
    _environment = environment
    if isinstance(environment.runner, MasterRunner):
        logger.info("master: merging exact latencies from the workers' reports")

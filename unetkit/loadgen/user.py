"""A reusable Locust user for Triton over gRPC (tritonclient.grpc), closed or open loop.

Subclass it and give it a task that calls `self.send_next()` (see loadtest/locustfile.py).
Only `infer()` is timed; every answer goes to Locust's statistics and, when successful, to
the process's Recorder; a fraction of answers is checked against the ground truth.

Importing this module switches gRPC to gevent: Locust has monkey-patched the standard
library by then, and a gRPC channel created before `init_gevent()` stalls.
"""

from __future__ import annotations

import random
import time
from typing import ClassVar

import gevent
import gevent.pool
import grpc.experimental.gevent as grpc_gevent
from locust import User, constant
from locust.env import Environment

grpc_gevent.init_gevent()

import tritonclient.grpc as grpcclient  # noqa: E402
from tritonclient.utils import InferenceServerException  # noqa: E402

from unetkit.loadgen.measurement import Recorder  # noqa: E402
from unetkit.loadgen.workload import Batch, ValidationError, Workload, check_masks  # noqa: E402

# tritonclient's own channel options, plus a short reconnect backoff: after a server restart
# gRPC's default backoff (growing to 120 s) would keep users failing long after it is back.
CHANNEL_ARGS = [
    ("grpc.max_send_message_length", grpcclient.MAX_GRPC_MESSAGE_SIZE),
    ("grpc.max_receive_message_length", grpcclient.MAX_GRPC_MESSAGE_SIZE),
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.min_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", 1000),
]


class ServerError(Exception):
    """A request the server refused or failed, with the server's status and message."""


class TritonGrpcUser(User):
    """One client connection sending requests back to back, or on a fixed schedule."""

    abstract = True
    wait_time = constant(0)
    # Shared by every user of this process; set at test start (None: preparation failed).
    workload: ClassVar[Workload | None] = None
    recorder: ClassVar[Recorder] = Recorder()

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self.options = environment.parsed_options
        self.client: grpcclient.InferenceServerClient | None = None
        self.next_batch = 0
        self.in_flight = gevent.pool.Pool()
        self.rng = random.Random()

    def on_start(self) -> None:
        if self.workload is not None:
            self.client = grpcclient.InferenceServerClient(
                self.options.triton_url, channel_args=CHANNEL_ARGS
            )
            self.next_batch = random.randrange(len(self.workload.batches))

    def on_stop(self) -> None:
        self.in_flight.kill()
        # The client must be closed and freed while gevent still runs: its __del__ closes
        # the channel again, and at interpreter exit that hangs the process.
        if self.client is not None:
            self.client.close()
            self.client = None

    def send_next(self) -> None:
        """One step of the user: a request (closed loop) or the whole fixed-rate schedule."""
        if self.workload is None:
            gevent.sleep(1)
        elif self.options.open_loop_rate > 0:
            self._open_loop(self.options.open_loop_rate)
        elif not self._send(self._take_batch(), time.perf_counter()):
            gevent.sleep(self.options.failure_pause)

    def _take_batch(self) -> Batch:
        assert self.workload is not None
        batch = self.workload.batches[self.next_batch]
        self.next_batch = (self.next_batch + 1) % len(self.workload.batches)
        return batch

    def _send(self, batch: Batch, started: float) -> bool:
        assert self.workload is not None and self.client is not None
        exception: Exception | None = None
        response_length = 0
        try:
            result = self.client.infer(
                self.options.model_name,
                batch.inputs,
                outputs=self.workload.outputs,
                client_timeout=self.options.request_timeout,
            )
        except InferenceServerException as e:
            # Locust groups failures by repr(), which for this exception omits the message.
            result, exception = None, ServerError(str(e))
        elapsed = time.perf_counter() - started
        if result is not None:
            response_length = sum(len(c) for c in result.get_response().raw_output_contents)
            if self.workload.validate and self.rng.random() < self.options.validate_fraction:
                try:
                    check_masks(result, batch.samples, self.options.min_iou)
                except ValidationError as e:
                    exception = e
        self._report(elapsed, response_length, exception)
        return exception is None

    def _report(self, elapsed: float, length: int, exception: Exception | None) -> None:
        if exception is None:
            self.recorder.record(elapsed)
        else:
            self.recorder.fail()
        self.environment.events.request.fire(
            request_type="grpc",
            name=self.options.model_name,
            response_time=elapsed * 1000.0,
            response_length=length,
            exception=exception,
            context={},
        )

    def _open_loop(self, rate: float) -> None:
        """Send on a schedule whatever the latency, which counts from the scheduled time:
        overload shows as latency instead of as a quietly lower request rate. Poisson
        arrivals draw each gap from an exponential distribution of mean 1/rate."""
        poisson = self.options.arrivals == "poisson"
        limit = self.options.max_in_flight
        scheduled = time.perf_counter() + self.rng.random() / rate
        while True:
            gevent.sleep(max(0.0, scheduled - time.perf_counter()))
            if len(self.in_flight) >= limit:
                self._report(0.0, 0, RuntimeError(f"dropped: {limit} requests in flight"))
            else:
                self.in_flight.spawn(self._send, self._take_batch(), scheduled)
            scheduled += self.rng.expovariate(rate) if poisson else 1.0 / rate

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
throughput and p95 (perf_analyzer's rule). `locust -f loadtest/locustfile.py --help` lists
every flag.

The machinery lives in unetkit.loadgen: TritonGrpcUser (user.py), the flags (options.py),
the requests (workload.py), the measurement (measurement.py), and their wiring into
Locust's events (session.py).
"""

from locust import events, task

from unetkit.loadgen import TritonGrpcUser, install

install(events)


class UNetUser(TritonGrpcUser):
    """Sends the sample images to model `unet` (--model-name) at --triton-url."""

    @task
    def segment(self) -> None:
        self.send_next()

"""What the load test measures: every successful latency, unrounded, in HDR histograms that
merge across Locust workers; windows with perf_analyzer's stability rule; Triton's own
queue/compute split; and the report printed and written at the end.

One Recorder per process. Workers hand their current window to the master with every
stats report (`send_window` / `receive_window`); only the master (or a single process)
closes windows and writes the report.
"""

from __future__ import annotations

import json
import time
from typing import Any

import gevent
import tritonclient.grpc as grpcclient

from unetkit.core import write_text_atomic
from unetkit.loadgen.latency import LatencyHistogram
from unetkit.loadgen.server_stats import StatsSnapshot, snapshot, split_ms
from unetkit.loadgen.stability import STABLE_WINDOWS, Window, is_stable

REPORT_MESSAGE_KEY = "unetkit_latency"


class Recorder:
    """Successful latencies and failure counts: the whole run, and the window being filled."""

    def __init__(self) -> None:
        self.total = LatencyHistogram()
        self.window = LatencyHistogram()
        self.failures = 0
        self.window_failures = 0
        self.started = time.monotonic()
        self.stopped: float | None = None
        self.users = 0
        self.results: dict[str, Any] = {}  # windows, steady state, stability

    def record(self, seconds: float) -> None:
        self.total.record(seconds)
        self.window.record(seconds)

    def fail(self, count: int = 1) -> None:
        self.failures += count
        self.window_failures += count

    def take_window(self) -> tuple[LatencyHistogram, int]:
        window, failures = self.window, self.window_failures
        self.window, self.window_failures = LatencyHistogram(), 0
        return window, failures

    def send_window(self, data: dict[str, Any]) -> None:
        """Worker side: put the current window into a report for the master."""
        window, failures = self.take_window()
        data[REPORT_MESSAGE_KEY] = {"histogram": window.encode(), "failures": failures}

    def receive_window(self, data: dict[str, Any]) -> None:
        """Master side: merge a worker's window."""
        report = data.get(REPORT_MESSAGE_KEY)
        if report:
            histogram = LatencyHistogram()
            histogram.add_encoded(report["histogram"])
            self.total.add(histogram)
            self.window.add(histogram)
            self.fail(report["failures"])

    def measure_windows(self, options: Any, quit_runner: Any) -> None:
        """Close a window every --window seconds; with --stop-when-stable, call `quit_runner`
        once the last three agree. The steady state is the last three windows merged."""
        stats_client = None
        if options.server_stats:
            stats_client = grpcclient.InferenceServerClient(url=options.triton_url)
        try:
            windows: list[Window] = []
            histograms: list[LatencyHistogram] = []
            server: list[StatsSnapshot] = []
            if stats_client is not None:
                server.append(snapshot(stats_client, options.model_name))
            self.take_window()
            while True:
                opened = time.monotonic()
                gevent.sleep(options.window)
                histogram, failures = self.take_window()
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
                self._summarize(options, windows, histograms, server)
                if self.results["stable"] and options.stop_when_stable:
                    quit_runner()
                    return
        finally:
            if stats_client is not None:
                stats_client.close()

    def _summarize(
        self,
        options: Any,
        windows: list[Window],
        histograms: list[LatencyHistogram],
        server: list[StatsSnapshot],
    ) -> None:
        steady = windows[-STABLE_WINDOWS:]
        merged = LatencyHistogram()
        for h in histograms[-STABLE_WINDOWS:]:
            merged.add(h)
        seconds = sum(w.seconds for w in steady)
        self.results["stable"] = is_stable(windows)
        self.results["windows"] = [
            {
                "seconds": round(w.seconds, 3),
                "requests": w.requests,
                "failures": w.failures,
                "p95_ms": w.p95_ms,
                "p99_ms": h.percentile_ms(99),
            }
            for w, h in zip(windows, histograms, strict=True)
        ]
        self.results["steady"] = {
            "seconds": seconds,
            "requests": merged.count,
            "failures": sum(w.failures for w in steady),
            "requests_per_s": merged.count / seconds,
            "images_per_s": merged.count * options.batch_size / seconds,
            "latency_ms": merged.summary_ms(),
        }
        if server:
            self.results["steady"]["server"] = split_ms(server[-len(steady) - 1], server[-1])

    def report(self, options: Any) -> dict[str, Any]:
        seconds = (self.stopped or time.monotonic()) - self.started
        return {
            "model": options.model_name,
            "url": options.triton_url,
            "batch_size": options.batch_size,
            "users": self.users,
            "open_loop_rate_per_user": options.open_loop_rate,
            "seconds": seconds,
            "requests": self.total.count,
            "failures": self.failures,
            "requests_per_s": self.total.count / seconds if seconds > 0 else 0.0,
            "latency_ms": self.total.summary_ms(),
            **self.results,
        }

    def print_and_write(self, options: Any) -> None:
        """The exact percentiles on stdout, and the whole report to --latency-report."""
        report = self.report(options)
        latency = report["latency_ms"]
        print(
            f"Exact latency of {report['requests']} successful requests (HDR, ms): "
            + "  ".join(f"{k} {latency[k]:.2f}" for k in ("p50", "p90", "p95", "p99", "max"))
            + f"  | failures {report['failures']}",
            flush=True,
        )
        if options.latency_report:
            write_text_atomic(options.latency_report, json.dumps(report, indent=2) + "\n")

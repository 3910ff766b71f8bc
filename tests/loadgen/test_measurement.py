"""Exact latency histograms and the stability rule, on known numbers."""

from __future__ import annotations

import numpy as np
import pytest

from unetkit.loadgen import LatencyHistogram, Window, is_stable


def test_percentiles_are_exact_to_three_significant_digits() -> None:
    histogram = LatencyHistogram()
    for ms in range(1, 1001):  # 1 ms .. 1000 ms, one each
        histogram.record(ms / 1000)
    summary = histogram.summary_ms()
    for name, expected in (("p50", 500), ("p90", 900), ("p95", 950), ("p99", 990)):
        assert summary[name] == pytest.approx(expected, rel=1e-3)
    assert summary["max"] == pytest.approx(1000, rel=1e-3)
    # Locust would store 990 ms as 990 but 1234 ms as 1200; the histogram keeps 1234.
    histogram.record(1.234)
    assert histogram.summary_ms()["max"] == pytest.approx(1234, rel=1e-3)


def test_histograms_merged_through_their_encoding_equal_one_histogram() -> None:
    rng = np.random.default_rng(5)
    samples = rng.lognormal(mean=-3.0, sigma=0.7, size=3000)
    whole, merged = LatencyHistogram(), LatencyHistogram()
    for part in np.array_split(samples, 3):  # three workers
        worker = LatencyHistogram()
        for seconds in part:
            whole.record(float(seconds))
            worker.record(float(seconds))
        merged.add_encoded(worker.encode())
    assert merged.count == whole.count == 3000
    assert merged.summary_ms() == whole.summary_ms()


def window(requests: int, p95_ms: float) -> Window:
    return Window(seconds=1.0, requests=requests, failures=0, p95_ms=p95_ms)


@pytest.mark.parametrize(
    ("windows", "stable"),
    [
        ([window(100, 10), window(105, 10.5)], False),  # fewer than three windows
        ([window(100, 10), window(105, 10.5), window(109, 10.9)], True),
        ([window(100, 10), window(105, 10.5), window(111, 10.9)], False),  # throughput 11%
        ([window(100, 10), window(105, 10.5), window(109, 11.1)], False),  # p95 11%
        ([window(50, 99), window(100, 10), window(105, 10.5), window(109, 10.9)], True),
        ([window(0, 0), window(0, 0), window(0, 0)], False),  # nothing served
    ],
)
def test_three_windows_within_ten_percent_are_stable(windows: list[Window], stable: bool) -> None:
    assert is_stable(windows) is stable

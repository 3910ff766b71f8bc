"""Exact latency percentiles: an HDR histogram of microseconds, mergeable across processes.

Locust rounds the response times it stores (to 10 ms above 100 ms, 100 ms above 1 s); these
histograms keep 3 significant digits from 1 us to 1 hour.
"""

from __future__ import annotations

from hdrh.histogram import HdrHistogram

LOWEST_US = 1
HIGHEST_US = 3_600_000_000
SIGNIFICANT_DIGITS = 3
PERCENTILES = (50.0, 90.0, 95.0, 99.0)


class LatencyHistogram:
    def __init__(self) -> None:
        self._histogram = HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)

    def record(self, seconds: float) -> None:
        microseconds = round(seconds * 1e6)
        self._histogram.record_value(min(max(microseconds, LOWEST_US), HIGHEST_US))

    @property
    def count(self) -> int:
        return self._histogram.get_total_count()

    def add(self, other: LatencyHistogram) -> None:
        self._histogram.add(other._histogram)

    def encode(self) -> bytes:
        return self._histogram.encode()

    def add_encoded(self, encoded: bytes) -> None:
        self._histogram.decode_and_add(encoded)

    def percentile_ms(self, percentile: float) -> float:
        return self._histogram.get_value_at_percentile(percentile) / 1000.0

    def summary_ms(self) -> dict[str, float]:
        """p50/p90/p95/p99/max and mean in milliseconds (zeros when nothing was recorded)."""
        if self.count == 0:
            return {"p50": 0.0, "p90": 0.0, "p95": 0.0, "p99": 0.0, "max": 0.0, "mean": 0.0}
        summary = {f"p{p:g}": self.percentile_ms(p) for p in PERCENTILES}
        summary["max"] = self._histogram.get_max_value() / 1000.0
        summary["mean"] = self._histogram.get_mean_value() / 1000.0
        return summary

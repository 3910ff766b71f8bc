"""perf_analyzer's stability rule: a load step is stable when its last windows agree.

A step is measured in fixed windows; it is stable once the last `count` windows have
throughput and p95 latency whose max/min ratio stays within `tolerance` (0.10 = 10%).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

STABLE_WINDOWS = 3
STABLE_TOLERANCE = 0.10


@dataclass(frozen=True)
class Window:
    seconds: float
    requests: int
    failures: int
    p95_ms: float

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0


def _within(values: Sequence[float], tolerance: float) -> bool:
    low, high = min(values), max(values)
    return low > 0 and high / low <= 1.0 + tolerance


def is_stable(
    windows: Sequence[Window], count: int = STABLE_WINDOWS, tolerance: float = STABLE_TOLERANCE
) -> bool:
    if len(windows) < count:
        return False
    last = windows[-count:]
    return _within([w.throughput for w in last], tolerance) and _within(
        [w.p95_ms for w in last], tolerance
    )

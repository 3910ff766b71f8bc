"""Load generation against a Triton server: a reusable Locust gRPC user and its measurement
(exact HDR latencies, stability windows, Triton's own statistics), and runners for the
benchmarks' two generators: headless Locust processes and NVIDIA's perf_analyzer.

`TritonGrpcUser` and `install` import Locust, which patches the standard library through
gevent: only a locustfile should ask for them.
"""

from typing import TYPE_CHECKING

from unetkit.core import lazy_exports

__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "latency": ["LatencyHistogram"],
        "locust_runner": ["LOCUSTFILE", "LocustRun", "locust_command", "run_locust"],
        "perf_analyzer": [
            "PERF_ANALYZER_ENV",
            "PerfStep",
            "find_perf_analyzer",
            "run_perf_analyzer",
            "write_input_data",
        ],
        "server_stats": ["StatsSnapshot", "snapshot", "split_ms"],
        "session": ["install"],
        "stability": ["STABLE_TOLERANCE", "STABLE_WINDOWS", "Window", "is_stable"],
        "user": ["TritonGrpcUser"],
        "workload": ["pad_to_rules", "request_batches"],
    },
)

if TYPE_CHECKING:  # what editors and type checkers follow; the names load on first use
    from unetkit.loadgen.latency import (
        LatencyHistogram,
    )
    from unetkit.loadgen.locust_runner import (
        LOCUSTFILE,
        LocustRun,
        locust_command,
        run_locust,
    )
    from unetkit.loadgen.perf_analyzer import (
        PERF_ANALYZER_ENV,
        PerfStep,
        find_perf_analyzer,
        run_perf_analyzer,
        write_input_data,
    )
    from unetkit.loadgen.server_stats import (
        StatsSnapshot,
        snapshot,
        split_ms,
    )
    from unetkit.loadgen.session import (
        install,
    )
    from unetkit.loadgen.stability import (
        STABLE_TOLERANCE,
        STABLE_WINDOWS,
        Window,
        is_stable,
    )
    from unetkit.loadgen.user import (
        TritonGrpcUser,
    )
    from unetkit.loadgen.workload import (
        pad_to_rules,
        request_batches,
    )

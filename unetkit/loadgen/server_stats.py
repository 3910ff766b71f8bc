"""Triton's own view of a load step: its statistics API read before and after, as deltas.

Per successful request: time in the queue and in the three compute phases; per execution:
how many requests dynamic batching put together (inference_count / execution_count).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

PHASES = ("success", "fail", "queue", "compute_input", "compute_infer", "compute_output")


@dataclass(frozen=True)
class StatsSnapshot:
    inference_count: int
    execution_count: int
    counts: dict[str, int]
    nanoseconds: dict[str, int]


def snapshot(client: Any, model_name: str) -> StatsSnapshot:
    """Read the cumulative statistics of every version of `model_name`.

    `client` is a tritonclient.grpc.InferenceServerClient (sync, or gevent-patched).
    """
    stats = client.get_inference_statistics(model_name=model_name, as_json=True)
    counts = dict.fromkeys(PHASES, 0)
    nanoseconds = dict.fromkeys(PHASES, 0)
    inference_count = execution_count = 0
    for model in stats.get("model_stats", []):
        inference_count += int(model.get("inference_count", 0))
        execution_count += int(model.get("execution_count", 0))
        for phase in PHASES:
            duration = model.get("inference_stats", {}).get(phase, {})
            counts[phase] += int(duration.get("count", 0))
            nanoseconds[phase] += int(duration.get("ns", 0))
    return StatsSnapshot(inference_count, execution_count, counts, nanoseconds)


def split_ms(before: StatsSnapshot, after: StatsSnapshot) -> dict[str, float]:
    """Average ms per request of each phase between two snapshots, and the average batch."""
    requests = after.counts["success"] - before.counts["success"]
    executions = after.execution_count - before.execution_count
    inferences = after.inference_count - before.inference_count
    result: dict[str, float] = {
        "requests": float(requests),
        "failed": float(after.counts["fail"] - before.counts["fail"]),
        "avg_batch": inferences / executions if executions else 0.0,
    }
    for phase in ("queue", "compute_input", "compute_infer", "compute_output"):
        spent = after.nanoseconds[phase] - before.nanoseconds[phase]
        result[f"{phase}_ms"] = spent / requests / 1e6 if requests else 0.0
    return result

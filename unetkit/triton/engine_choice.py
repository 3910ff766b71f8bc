"""Which engine serves the exported model on this machine, decided by measurement at export.

Every runtime (ONNX Runtime, OpenVINO) runs every precision the export allows: the fp32
file, the int8 QDQ file, and the fp32 file in bf16 where OpenVINO computes bf16 natively.
Each candidate faster than fp32 must pass the accuracy gate against ONNX Runtime fp32 (the
reference). The candidates are timed side by side on the calibration images, in short
slices taking turns (this kind of machine drifts by up to 20% from one minute to the next),
and the fastest is served. The candidates, their speed and accuracy, and one line saying
what was chosen and why go into the report beside the model (runtime.json).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from unetkit.core import INPUT_IMAGE, OUTPUT_MASK, ModelInfo, Sample, UserError
from unetkit.triton.engines import (
    BF16,
    FP32,
    INT8,
    ONNXRUNTIME,
    OPENVINO,
    RUNTIMES,
    Engine,
    EngineSpec,
    check_runtime,
    native_bf16,
    open_engine,
    openvino_problem,
)
from unetkit.triton.int8 import Gate, check_against_fp32, network_input

AUTO = "auto"
# What --precision allows: the fastest precision that passes its gate (auto), one named
# precision if it passes (fp32 otherwise), or fp32 alone.
PRECISIONS = (AUTO, INT8, BF16, FP32)
REFERENCE = EngineSpec(ONNXRUNTIME, FP32)
# Timing: this many rounds, each giving every candidate a slice of this many seconds.
TIMING_ROUNDS = 3
TIMING_SLICE_S = 0.6


@dataclass
class Candidate:
    spec: EngineSpec
    images_per_s: float = 0.0
    gate: Gate | None = None  # None for fp32, which needs none
    skipped: str = ""  # why it was not timed

    @property
    def eligible(self) -> bool:
        return not self.skipped and (self.gate is None or self.gate.passed)

    def as_dict(self) -> dict[str, Any]:
        return {
            "runtime": self.spec.runtime,
            "precision": self.spec.precision,
            "images_per_s": round(self.images_per_s, 2),
            "gate": None if self.gate is None else self.gate.as_dict(),
            "eligible": self.eligible,
            "skipped": self.skipped or None,
        }


@dataclass
class EngineChoice:
    served: EngineSpec
    reason: str
    candidates: list[Candidate] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "served": {"runtime": self.served.runtime, "precision": self.served.precision},
            "reason": self.reason,
            "candidates": [c.as_dict() for c in self.candidates],
        }


def candidate_specs(precision: str, runtime: str, has_int8: bool) -> list[Candidate]:
    """The reference first, then every runtime x precision that `precision` and `runtime`
    allow; those that cannot run here are listed with the reason."""
    if precision not in PRECISIONS:
        raise UserError(f"precision {precision!r}: use {', '.join(PRECISIONS)}")
    check_runtime(runtime)
    runtimes = RUNTIMES if runtime == AUTO else (runtime,)
    precisions = [FP32]
    if precision in (AUTO, INT8) and has_int8:
        precisions.append(INT8)
    if precision in (AUTO, BF16):
        precisions.append(BF16)
    candidates = [Candidate(REFERENCE)]
    openvino_missing = openvino_problem()
    bf16_native = openvino_missing is None and native_bf16()
    for name in runtimes:
        for p in precisions:
            spec = EngineSpec(name, p)
            if spec == REFERENCE or (p == BF16 and name != OPENVINO):
                continue  # the reference is listed first; bf16 is OpenVINO's alone
            candidate = Candidate(spec)
            if name == OPENVINO and openvino_missing is not None:
                candidate.skipped = f"OpenVINO cannot run here: {openvino_missing}"
            elif p == BF16 and not bf16_native:
                candidate.skipped = "this CPU has no native bf16 (OpenVINO would emulate it)"
            candidates.append(candidate)
    return candidates


def timing_inputs(info: ModelInfo, samples: list[Sample]) -> list[np.ndarray]:
    """The images the candidates are timed on: the samples as the client sends them."""
    return [network_input(s.image, info) for s in samples]


def images_per_s(engines: dict[EngineSpec, Engine], inputs: list[np.ndarray]) -> dict:
    """Each engine's images/s at batch 1, in slices taking turns."""
    done = {spec: 0 for spec in engines}
    spent = {spec: 0.0 for spec in engines}
    for _ in range(TIMING_ROUNDS):
        for spec, engine in engines.items():
            started = time.perf_counter()
            while time.perf_counter() - started < TIMING_SLICE_S:
                engine.run([OUTPUT_MASK], {INPUT_IMAGE: inputs[done[spec] % len(inputs)]})
                done[spec] += 1
            spent[spec] += time.perf_counter() - started
    return {spec: done[spec] / spent[spec] for spec in engines}


def choose_engine(
    files: dict[str, Path],
    info: ModelInfo,
    samples: list[Sample],
    precision: str = AUTO,
    runtime: str = AUTO,
    threads: int = 0,
) -> EngineChoice:
    """Gate and time every candidate on `samples`; the fastest eligible one serves.
    `files` maps "fp32" (and "int8" where quantized) to the exported ONNX files."""
    candidates = candidate_specs(precision, runtime, INT8 in files)
    engines: dict[EngineSpec, Engine] = {}
    for candidate in candidates:
        if not candidate.skipped:
            engines[candidate.spec] = open_engine(
                candidate.spec, files[candidate.spec.onnx_file], threads
            )
    reference = engines[REFERENCE]
    for candidate in candidates:
        if not candidate.skipped and candidate.spec.precision != FP32:
            candidate.gate = check_against_fp32(reference, engines[candidate.spec], info, samples)
    timed = {c.spec: engines[c.spec] for c in candidates if c.eligible}
    speeds = images_per_s(timed, timing_inputs(info, samples))
    for candidate in candidates:
        candidate.images_per_s = speeds.get(candidate.spec, 0.0)
    allowed = [
        c for c in candidates if c.eligible and (runtime == AUTO or c.spec.runtime == runtime)
    ]
    # A precision asked for by name serves if it passed its gate; fp32 otherwise.
    wanted = [c for c in allowed if c.spec.precision == precision]
    if precision != AUTO:
        allowed = wanted or [c for c in allowed if c.spec.precision == FP32]
    best = max(allowed, key=lambda c: c.images_per_s)
    return EngineChoice(best.spec, explain(best, candidates), candidates)


def explain(best: Candidate, candidates: list[Candidate]) -> str:
    """One line: what serves, how fast against the reference and the runner-up, and why
    the faster precisions that lost were left out."""
    reference = next(c for c in candidates if c.spec == REFERENCE)
    line = f"serving {best.spec}: {best.images_per_s:.1f} images/s"
    if best.spec != REFERENCE and reference.images_per_s:
        line += f", {best.images_per_s / reference.images_per_s:.2f}x {REFERENCE} (reference)"
    others = sorted(
        (c for c in candidates if c.eligible and c is not best and c.spec != REFERENCE),
        key=lambda c: -c.images_per_s,
    )
    if others:
        line += f", {best.images_per_s / others[0].images_per_s:.2f}x {others[0].spec}"
    if best.gate is not None:
        line += f"; {best.gate.describe()}"
    failed = [str(c.spec) for c in candidates if c.gate is not None and not c.gate.passed]
    if failed:
        line += f"; failed the accuracy gate: {', '.join(failed)}"
    return line

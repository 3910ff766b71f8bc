"""The CPU route's inference engines: ONNX Runtime or OpenVINO, opened on the same exported
ONNX file (fp32, or the int8 QDQ copy), with one `run(names, feeds)` for model.py, the
export's measurements and the benchmarks.

OpenVINO runs the kit's QDQ file as it is (it folds the quantize/dequantize pairs into int8
kernels) and the fp32 file in bf16 where the CPU computes bf16 natively
(`INFERENCE_PRECISION_HINT`). Which engine serves is decided by measurement at export
(unetkit.triton.engine_choice); ONNX Runtime stays the reference every gate measures
against, and the fallback.

Memory: ONNX Runtime (arena and pattern off) gives a run's activations back when the run
ends. OpenVINO keeps them, at the largest run's size, until the compiled model is dropped
(measured: int8 at 1536x1536 left 361 MiB resident after a 256x256 run; recompiling from the
model already read takes 0.1-0.3 s and gives it back). `keeps_activations` tells model.py's
memory plan, and `release()` drops them.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from unetkit.core import UserError

if TYPE_CHECKING:
    import numpy as np

ONNXRUNTIME = "onnxruntime"
OPENVINO = "openvino"
RUNTIMES = (OPENVINO, ONNXRUNTIME)
# Precisions of the CPU route: the int8 file, the fp32 file computed in fp32, or the fp32
# file computed in bf16 (OpenVINO, CPUs with native bf16 only).
FP32, INT8, BF16 = "fp32", "int8", "bf16"


def create_session(onnx_path: Path, threads: int) -> Any:
    """An ONNX Runtime CPU session as the CPU route runs it (imported here only).

    Without ONNX Runtime's CPU memory arena and memory pattern: with both (the defaults), the
    second run of a shape asks the arena for one block holding every activation, which it
    cannot fit into what it already holds (2048x2048 took 1.15 GiB on its first run and
    2.48 GiB on its second), and the arena never gives memory back. Without them, a run
    peaks at the graph's largest set of live activations and returns its memory.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.enable_cpu_mem_arena = False
    # The memory pattern (one block for all activations, planned from the first run of a
    # shape) raised the peak from 255 to 328 bytes per pixel: off.
    options.enable_mem_pattern = False
    # Threads that spin between runs take the cores from the other model instance: two
    # instances with spinning ran int8 at 39 images/s, without it at 60-63 (BENCHMARKS.md).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])


class Engine(Protocol):
    """What model.py needs of an engine."""

    keeps_activations: bool

    def run(self, names: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]: ...

    def release(self) -> None: ...


@dataclass(frozen=True)
class EngineSpec:
    """One way to serve the exported model: a runtime and a precision."""

    runtime: str
    precision: str

    def __str__(self) -> str:
        return f"{self.runtime} {self.precision}"

    @property
    def onnx_file(self) -> str:
        """Which exported file it runs: the int8 copy, or the fp32 model (bf16 included)."""
        return INT8 if self.precision == INT8 else FP32


class OnnxRuntimeEngine:
    """ONNX Runtime with the CPU route's session settings (create_session)."""

    keeps_activations = False

    def __init__(self, onnx_path: Path, threads: int) -> None:
        self.session = create_session(onnx_path, threads)

    def run(self, names: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.session.run(names, feeds)

    def release(self) -> None:
        """Nothing to give back: the session frees each run's memory when it ends."""


def openvino_config(threads: int, precision: str) -> dict[str, Any]:
    """One stream on `threads` threads, latency first, unpinned: each model instance is a
    process of its own, and one client's request should get every core."""
    return {
        "INFERENCE_NUM_THREADS": threads,
        "NUM_STREAMS": 1,
        "PERFORMANCE_HINT": "LATENCY",
        "ENABLE_CPU_PINNING": False,
        "INFERENCE_PRECISION_HINT": "bf16" if precision == BF16 else "f32",
    }


class OpenVinoEngine:
    """OpenVINO's CPU plugin on the exported file; one infer request (model.py runs one
    call at a time per instance, and may release from its idle thread: one lock)."""

    keeps_activations = True

    def __init__(self, onnx_path: Path, threads: int, precision: str) -> None:
        import openvino as ov

        self._core = ov.Core()
        self._model = self._core.read_model(str(onnx_path))
        self._config = openvino_config(threads, precision)
        self._lock = threading.Lock()
        self._compile()

    def _compile(self) -> None:
        self._compiled = self._core.compile_model(self._model, "CPU", self._config)
        self._request = self._compiled.create_infer_request()

    def run(self, names: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        with self._lock:
            results = self._request.infer(feeds)
            return [results[self._compiled.output(name)] for name in names]

    def release(self) -> None:
        """Give the activations of the largest run so far back (recompile: 0.1-0.3 s)."""
        with self._lock:
            del self._request, self._compiled
            self._compile()


def open_engine(spec: EngineSpec, onnx_path: Path, threads: int = 0) -> Engine:
    """`spec` on `onnx_path`, with `threads` threads (0: one per CPU this process may use)."""
    threads = threads or len(os.sched_getaffinity(0))
    if spec.runtime == ONNXRUNTIME:
        return OnnxRuntimeEngine(onnx_path, threads)
    if spec.runtime == OPENVINO:
        return OpenVinoEngine(onnx_path, threads, spec.precision)
    raise UserError(f"runtime {spec.runtime!r}: use {' or '.join(RUNTIMES)}")


def openvino_problem() -> str | None:
    """Why OpenVINO cannot run on this machine, or None."""
    try:
        import openvino as ov

        devices = ov.Core().available_devices
    except Exception as e:  # an import or plugin failure has many exception types
        return f"{type(e).__name__}: {e}".splitlines()[0]
    return None if "CPU" in devices else f"no CPU device (devices: {devices})"


def native_bf16() -> bool:
    """Whether OpenVINO computes bf16 natively on this CPU (AVX-512 BF16 or AMX): without
    it, a bf16 hint is emulated and only slower."""
    if openvino_problem() is not None:
        return False
    import openvino as ov

    return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def check_runtime(runtime: str) -> None:
    """A one-line refusal for a runtime that is unknown or cannot run here."""
    if runtime not in (*RUNTIMES, "auto"):
        raise UserError(f"runtime {runtime!r}: use auto, {', '.join(RUNTIMES)}")
    if runtime == OPENVINO and (problem := openvino_problem()) is not None:
        raise UserError(f"OpenVINO cannot run on this machine ({problem}): use RUNTIME=onnxruntime")

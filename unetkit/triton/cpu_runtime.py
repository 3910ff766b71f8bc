"""The CPU route's memory: what one run of the served engine costs, and how a memory budget
becomes the limits the server enforces.

Peak memory grows linearly with the pixels of one run (N x H x W): the served engine
(unetkit.triton.engines) is measured at export (`measure_memory`, in fresh processes) and
the two numbers go into the model's config, where model.py turns the server's budget into
the largest image side it accepts and the pixels one engine call may take. ONNX Runtime
gives a run's memory back when it ends; OpenVINO keeps the activations of its largest run
until it is recompiled, so the plan also bounds what an idle instance may keep.
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import math
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from unetkit.core import SizeRule, UserError, write_text_atomic
from unetkit.triton.engines import EngineSpec, open_engine

# A budget left to the default takes this share of the memory available at start-up.
DEFAULT_BUDGET_SHARE = 0.5
# The request and response tensors of one run (uint8 image, float32 PROB and its copies in
# shared memory and gRPC buffers) cost a few bytes per pixel on top of ONNX Runtime's peak.
IO_BYTES_PER_PIXEL = 32
# Sizes measured at export, near these sides: small enough to take seconds, large enough
# for the activations to dominate the fixed cost.
MEASURED_SIDES = (384, 768)


@dataclass(frozen=True)
class MemoryModel:
    """Resident memory of the model's process: base_bytes with the session open, plus
    bytes_per_pixel for each input pixel of the run in progress."""

    base_bytes: int
    bytes_per_pixel: int

    def peak(self, pixels: int) -> int:
        return self.base_bytes + self.bytes_per_pixel * pixels


@dataclass(frozen=True)
class Limits:
    budget_bytes: int
    max_run_pixels: int  # pixels one engine call may take, running alone
    shared_run_pixels: int  # pixels a call may take while every other instance runs too
    max_side: int  # the largest height or width accepted
    # An engine that keeps its activations (OpenVINO) gives them back after a larger call.
    kept_run_pixels: int = 0

    def describe(self) -> str:
        return (
            f"memory budget {self.budget_bytes / 2**30:.1f} GiB: images up to "
            f"{self.max_side}x{self.max_side}, {self.max_run_pixels / 1e6:.1f} Mpixel per run "
            f"alone, {self.shared_run_pixels / 1e6:.1f} beside the other instances' runs"
        )

    def needs_exclusive(self, pixels: int) -> bool:
        return pixels > self.shared_run_pixels

    def needs_release(self, pixels: int) -> bool:
        """Whether an engine that keeps activations must give them back after this call."""
        return pixels > self.kept_run_pixels


def plan_limits(
    model: MemoryModel,
    budget_bytes: int,
    reserved_bytes: int,
    side_cap: int,
    instances: int = 1,
    keeps_activations: bool = False,
) -> Limits:
    """What one engine call may take, alone and beside the calls of the other instances,
    once `reserved_bytes` (the server's own processes, the queue) and every instance's
    session are set aside; UserError when not even the smallest image fits.

    An engine that keeps its activations after a call (OpenVINO) keeps at most
    `kept_run_pixels` worth, and gives back what a larger call took: the call that runs
    alone must then fit beside what the idle instances keep. Half of the spare memory is
    shared between the kept activations, the rest goes to the call running alone."""
    per_pixel = model.bytes_per_pixel + IO_BYTES_PER_PIXEL
    spare = max(budget_bytes - reserved_bytes - instances * model.base_bytes, 0) // per_pixel
    kept = spare // (2 * instances) if keeps_activations and instances > 1 else spare
    max_run_pixels = spare - (instances - 1) * kept if keeps_activations else spare
    max_side = min(math.isqrt(max_run_pixels), side_cap)
    if max_side < 1:
        needed = reserved_bytes + instances * model.base_bytes
        raise UserError(
            f"a memory budget of {budget_bytes / 2**20:.0f} MiB leaves nothing for images: "
            f"the server needs {needed / 2**20:.0f} MiB before the first pixel (set a larger "
            "budget: make serve MEMORY=...)"
        )
    return Limits(budget_bytes, max_run_pixels, spare // instances, max_side, kept)


@dataclass(frozen=True)
class ServerMemory:
    """What the server holds while one of its instances plans, that instance's session open."""

    stub_bytes: int  # this instance's stub (every instance's is as large)
    server_bytes: int  # the tritonserver process
    available_bytes: int  # what the system can still give

    @classmethod
    def now(cls) -> ServerMemory:
        """Measured from inside a python backend stub, whose parent is tritonserver."""
        return cls(resident_bytes(), resident_bytes(os.getppid()), available_bytes())


def plan_server_limits(
    model: MemoryModel,
    budget_text: str,
    held: ServerMemory,
    queued_bytes: int,
    side_cap: int,
    instances: int,
    keeps_activations: bool = False,
) -> Limits:
    """One instance's limits: the budget ("auto": what the server holds now and half of what
    is available) less tritonserver, the queued inputs and every instance's stub. A stub
    with its session open is what the export measured as the model's base (a process with
    the session open), so each stub counts once, at the larger of the two."""
    stub = MemoryModel(max(held.stub_bytes, model.base_bytes), model.bytes_per_pixel)
    if budget_text.strip().lower() == "auto":
        budget = (
            held.server_bytes
            + instances * stub.base_bytes
            + int(held.available_bytes * DEFAULT_BUDGET_SHARE)
        )
    else:
        budget = parse_bytes(budget_text)
    return plan_limits(
        stub, budget, held.server_bytes + queued_bytes, side_cap, instances, keeps_activations
    )


class RunLock:
    """Keeps the model's instances (separate stub processes) within one memory budget: a
    call small enough to run beside the others' takes a shared lock, a larger one an
    exclusive lock, so it runs alone. An flock on a file every instance opens (the model
    file), which the kernel releases if a stub dies."""

    def __init__(self, path: Path) -> None:
        self._file = open(path, "rb")  # noqa: SIM115 (held for the life of the instance)

    @contextmanager
    def hold(self, exclusive: bool) -> Iterator[None]:
        fcntl.flock(self._file, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(self._file, fcntl.LOCK_UN)


def shared_limits(plan: Callable[[], Limits], plan_file: Path | None, lock: RunLock) -> Limits:
    """One server's instances answer alike: the first to start plans and writes `plan_file`,
    the others read it. Each planning from the memory it saw at its own start, two instances
    of one server accepted sides up to 1086 and 1090 pixels: a 1088-pixel image was served or
    refused by chance. Without a file (no launcher's server directory), each plans alone."""
    if plan_file is None:
        return plan()
    with lock.hold(exclusive=True):
        if plan_file.is_file():
            return Limits(**json.loads(plan_file.read_text()))
        limits = plan()
        write_text_atomic(plan_file, json.dumps(asdict(limits)))
        return limits


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?\s*$", re.IGNORECASE)


def parse_bytes(text: str) -> int:
    """'4G', '4GiB', '512M', '1.5g' or plain bytes; powers of 1024."""
    match = _SIZE.match(text)
    if not match:
        raise UserError(f"memory size {text!r}: write bytes or a number with K, M, G or T")
    number, unit = float(match.group(1)), match.group(2).lower()
    return int(number * 1024 ** " kmgt".index(unit or " "))


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def available_bytes() -> int:
    """Memory this process may still use: MemAvailable, lowered by a cgroup limit."""
    meminfo = Path("/proc/meminfo").read_text()
    available = int(re.search(r"^MemAvailable:\s+(\d+) kB", meminfo, re.M).group(1)) * 1024
    for limit_file, usage_file in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),  # cgroup v2
        (
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "/sys/fs/cgroup/memory/memory.usage_in_bytes",
        ),
    ):
        limit, usage = _read_int(Path(limit_file)), _read_int(Path(usage_file))
        if limit is not None and usage is not None:
            available = min(available, limit - usage)
    return available


class IdleTrim(threading.Thread):
    """Gives memory back to the operating system once the model has had no work for
    `idle_s`: first what the engine keeps (`on_idle`: OpenVINO's activations), then what
    glibc keeps. glibc keeps freed blocks below its mmap threshold (up to 32 MiB) in the
    heap; trimming after every call instead made the next call fault its pages in again and
    cost 25% of fp32 and 40% of int8 throughput at 256x256 (ONNX Runtime)."""

    def __init__(self, idle_s: float, on_idle: Callable[[], None] | None = None) -> None:
        super().__init__(name="unetkit-idle-trim", daemon=True)
        self.idle_s = idle_s
        self.on_idle = on_idle
        self._last_work = time.monotonic()
        self._busy = False
        self._freed = threading.Event()
        self._libc = ctypes.CDLL("libc.so.6")

    def started(self) -> None:
        """Call when an execution starts: nothing is given back while it runs."""
        self._busy = True

    def worked(self) -> None:
        """Call after each execution."""
        self._last_work = time.monotonic()
        self._busy = False
        self._freed.set()

    def run(self) -> None:
        while True:
            self._freed.wait()
            idle = time.monotonic() - self._last_work
            if self._busy or idle < self.idle_s:
                time.sleep(max(self.idle_s - idle, 0.05))
                continue
            self._freed.clear()
            if self.on_idle is not None:
                self.on_idle()
            self._libc.malloc_trim(0)  # ctypes releases the GIL: executions go on meanwhile


def resident_bytes(pid: int | str = "self") -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^VmRSS:\s+(\d+) kB", status, re.M).group(1)) * 1024


def measure_memory(
    onnx_path: Path,
    engine: EngineSpec,
    channels: int,
    height: SizeRule,
    width: SizeRule,
    threads: int,
    fixed_size: tuple[int, int] | None = None,
) -> MemoryModel:
    """Fit base + bytes_per_pixel to the peaks of two runs each at two sizes of `engine`,
    every size in a fresh interpreter (a process's peak cannot be reset portably). A model
    pinned to one size (`fixed_size`) is measured at that size."""
    points = []
    for side in MEASURED_SIDES:
        h, w = fixed_size or (height.next_valid(side), width.next_valid(side))
        result = subprocess.run(
            [sys.executable, "-m", "unetkit.triton.cpu_runtime", str(onnx_path), engine.runtime,
             engine.precision, str(h), str(w), str(channels), str(threads)],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        if result.returncode != 0:
            raise UserError(
                f"could not measure the model's memory with {engine}: "
                f"{(result.stderr.strip().splitlines() or ['?'])[-1]}"
            )
        points.append(json.loads(result.stdout))
    (p1, b1, open1), (p2, b2, open2) = ((p["pixels"], p["peak"], p["open"]) for p in points)
    base = max(open1, open2)
    # The slope, or the growth at either size over its pixels, whichever is largest: a run
    # must never need more than the model says. A model pinned to one size has no slope.
    slope = (b2 - b1) / (p2 - p1) if p2 != p1 else 0.0
    per_pixel = max((b2 - base) / p2, (b1 - base) / p1, slope)
    return MemoryModel(base_bytes=int(base), bytes_per_pixel=math.ceil(per_pixel))


def _probe(
    onnx_path: str, engine: EngineSpec, height: int, width: int, channels: int, threads: int
) -> None:
    """Child process of measure_memory: resident memory with the engine open, and the peak
    over two runs at one size."""
    import numpy as np

    from unetkit.core import INPUT_IMAGE, OUTPUT_MASK, OUTPUT_PROB, read_model_info

    opened_engine = open_engine(engine, Path(onnx_path), threads)
    opened = resident_bytes()
    image = np.random.default_rng(0).integers(0, 256, (1, height, width, channels), np.uint8)
    image = read_model_info(onnx_path).from_8bit(image)  # IMAGE's own type
    for _ in range(2):
        opened_engine.run([OUTPUT_PROB, OUTPUT_MASK], {INPUT_IMAGE: image})
    status = Path("/proc/self/status").read_text()
    peak = int(re.search(r"^VmHWM:\s+(\d+) kB", status, re.M).group(1)) * 1024
    print(json.dumps({"pixels": height * width, "open": opened, "peak": peak}))


if __name__ == "__main__":
    path, runtime, precision, h, w, c, t = sys.argv[1:8]
    _probe(path, EngineSpec(runtime, precision), int(h), int(w), int(c), int(t))

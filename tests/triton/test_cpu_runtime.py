"""The CPU route's memory arithmetic: sizes, what a budget allows, how the model's instances
share it, the session's settings, and when freed memory goes back to the operating system."""

from __future__ import annotations

import fcntl
import re
import time
from pathlib import Path

import pytest

from unetkit.core import UserError
from unetkit.triton import (
    IdleTrim,
    Limits,
    MemoryModel,
    RunLock,
    ServerMemory,
    available_bytes,
    create_session,
    onnx_path,
    parse_bytes,
    plan_limits,
    plan_server_limits,
    shared_limits,
)
from unetkit.triton.cpu_runtime import IO_BYTES_PER_PIXEL


@pytest.mark.parametrize(
    ("text", "expected"),
    [("4G", 4 << 30), ("4GiB", 4 << 30), ("512m", 512 << 20), ("1.5G", 3 << 29), ("1000", 1000)],
)
def test_memory_sizes(text: str, expected: int) -> None:
    assert parse_bytes(text) == expected


@pytest.mark.parametrize("text", ["four gigs", "-1G", "4X", ""])
def test_bad_memory_sizes_are_one_line(text: str) -> None:
    with pytest.raises(UserError, match="write bytes or a number with K, M, G or T"):
        parse_bytes(text)


def test_the_budget_becomes_pixels_per_run_and_a_largest_side() -> None:
    model = MemoryModel(base_bytes=100 << 20, bytes_per_pixel=400 - IO_BYTES_PER_PIXEL)
    limits = plan_limits(model, budget_bytes=1 << 30, reserved_bytes=300 << 20, side_cap=2048)
    spare = (1 << 30) - (300 << 20) - (100 << 20)
    assert limits.max_run_pixels == spare // 400
    assert limits.max_side == 1278  # floor(sqrt(1635778))
    assert plan_limits(model, 64 << 30, 300 << 20, 2048).max_side == 2048  # the config's cap


def test_instances_share_what_the_reserve_and_their_sessions_leave() -> None:
    model = MemoryModel(base_bytes=100 << 20, bytes_per_pixel=400 - IO_BYTES_PER_PIXEL)
    limits = plan_limits(model, 1 << 30, 300 << 20, 2048, instances=2)
    spare = (1 << 30) - (300 << 20) - 2 * (100 << 20)
    assert limits.max_run_pixels == spare // 400
    assert limits.shared_run_pixels == limits.max_run_pixels // 2
    assert not limits.needs_exclusive(limits.shared_run_pixels)
    assert limits.needs_exclusive(limits.shared_run_pixels + 1)
    # one call alone at its largest, or both instances at their shared size, fit the budget
    sessions = (300 << 20) + 2 * (100 << 20)
    assert sessions + 400 * limits.max_run_pixels <= 1 << 30
    assert sessions + 2 * 400 * limits.shared_run_pixels <= 1 << 30


def test_an_engine_that_keeps_activations_fits_its_largest_call_beside_what_idle_ones_keep() -> (
    None
):
    """OpenVINO keeps a call's activations: the plan bounds what an idle instance keeps and
    leaves room for the call that runs alone beside what the other instances keep."""
    model = MemoryModel(base_bytes=100 << 20, bytes_per_pixel=400 - IO_BYTES_PER_PIXEL)
    sessions = (300 << 20) + 2 * (100 << 20)
    limits = plan_limits(model, 1 << 30, 300 << 20, 2048, instances=2, keeps_activations=True)
    spare = ((1 << 30) - sessions) // 400
    assert limits.kept_run_pixels == spare // 4
    assert not limits.needs_release(limits.kept_run_pixels)
    assert limits.needs_release(limits.kept_run_pixels + 1)
    # the call alone beside what the other instance keeps, or both at their shared size
    assert sessions + 400 * (limits.max_run_pixels + limits.kept_run_pixels) <= 1 << 30
    assert sessions + 2 * 400 * limits.shared_run_pixels <= 1 << 30
    # an engine that gives everything back keeps the whole spare for the call alone
    frees = plan_limits(model, 1 << 30, 300 << 20, 2048, instances=2)
    assert frees.max_run_pixels == spare > limits.max_run_pixels
    assert not frees.needs_release(frees.max_run_pixels)


def test_each_stub_counts_once_at_its_session_or_the_measured_base() -> None:
    model = MemoryModel(base_bytes=100 << 20, bytes_per_pixel=400 - IO_BYTES_PER_PIXEL)
    triton, queued = 200 << 20, 64 << 20
    for stub, counted in ((150 << 20, 150 << 20), (80 << 20, 100 << 20)):
        held = ServerMemory(stub_bytes=stub, server_bytes=triton, available_bytes=8 << 30)
        limits = plan_server_limits(model, "1G", held, queued, 2048, instances=2)
        assert limits.max_run_pixels == ((1 << 30) - triton - queued - 2 * counted) // 400


def test_an_auto_budget_is_what_the_server_holds_and_half_of_what_is_available() -> None:
    model = MemoryModel(base_bytes=100 << 20, bytes_per_pixel=400 - IO_BYTES_PER_PIXEL)
    held = ServerMemory(stub_bytes=150 << 20, server_bytes=200 << 20, available_bytes=2 << 30)
    limits = plan_server_limits(model, " Auto ", held, 0, 2048, instances=2)
    assert limits.budget_bytes == (200 << 20) + 2 * (150 << 20) + (1 << 30)
    assert limits.max_run_pixels == (1 << 30) // 400  # all of the half that was available


def test_a_large_call_waits_for_the_others_and_holds_them_off(tmp_path: Path) -> None:
    model_file = tmp_path / "model.onnx"
    model_file.write_bytes(b"onnx")
    instance, other = RunLock(model_file), open(model_file, "rb")  # noqa: SIM115
    try:
        with instance.hold(exclusive=False):  # small calls run side by side
            fcntl.flock(other, fcntl.LOCK_SH | fcntl.LOCK_NB)
            fcntl.flock(other, fcntl.LOCK_UN)
            with pytest.raises(BlockingIOError):  # a large one waits for them
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        # a large call holds off the small ones
        with instance.hold(exclusive=True), pytest.raises(BlockingIOError):
            fcntl.flock(other, fcntl.LOCK_SH | fcntl.LOCK_NB)
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released after each call
    finally:
        other.close()


def test_the_first_instance_plans_for_all_and_the_others_read_its_plan(tmp_path: Path) -> None:
    model_file = tmp_path / "model.onnx"
    model_file.write_bytes(b"onnx")
    plan_file = tmp_path / "server" / "unet-1.limits.json"
    plan_file.parent.mkdir()
    first = Limits(1 << 30, 1_200_000, 600_000, 1086)
    second = Limits(1 << 30, 1_210_000, 605_000, 1090)  # what another instance would plan
    assert shared_limits(lambda: first, plan_file, RunLock(model_file)) == first
    assert shared_limits(lambda: second, plan_file, RunLock(model_file)) == first
    assert [p.name for p in plan_file.parent.iterdir()] == [plan_file.name]  # no temporaries
    # no server directory (tritonserver started by hand): each instance plans alone
    assert shared_limits(lambda: second, None, RunLock(model_file)) == second


def test_a_budget_too_small_for_any_image_says_how_much_is_needed() -> None:
    model = MemoryModel(base_bytes=100 << 20, bytes_per_pixel=400)
    with pytest.raises(UserError, match=r"256 MiB leaves nothing .* needs 400 MiB .* MEMORY="):
        plan_limits(model, 256 << 20, 300 << 20, 2048)
    with pytest.raises(UserError, match=r"needs 500 MiB"):
        plan_limits(model, 256 << 20, 300 << 20, 2048, instances=2)


def test_available_memory_is_what_the_kernel_says_at_most() -> None:
    total = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
    assert 0 < available_bytes() <= total * 1024


def test_the_session_runs_without_the_memory_arena_and_spinning(serving_repository: Path) -> None:
    options = create_session(onnx_path(serving_repository), threads=1).get_session_options()
    assert options.enable_cpu_mem_arena is False
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"


class CountingLibc:
    """Stands in for libc so that the test sees when the trim happens, not its effect."""

    def __init__(self) -> None:
        self.trims = 0

    def malloc_trim(self, pad: int) -> int:
        assert pad == 0
        self.trims += 1
        return 1


def test_memory_is_trimmed_once_after_the_work_stops_not_during_it() -> None:
    trim = IdleTrim(idle_s=0.5)
    libc = CountingLibc()
    trim._libc = libc
    trim.start()
    time.sleep(0.3)
    assert libc.trims == 0  # no work yet: nothing freed
    for _ in range(6):  # executions 0.05 s apart: never idle for 0.5 s
        trim.worked()
        time.sleep(0.05)
    assert libc.trims == 0
    time.sleep(1.2)
    assert libc.trims == 1
    time.sleep(1.0)
    assert libc.trims == 1  # idle, but nothing freed since


def test_what_the_engine_keeps_goes_back_once_idle_never_during_an_execution() -> None:
    released: list[float] = []
    trim = IdleTrim(idle_s=0.3, on_idle=lambda: released.append(time.monotonic()))
    trim._libc = CountingLibc()
    trim.start()
    trim.worked()
    trim.started()  # a long execution: idle by the clock, busy in fact
    time.sleep(0.8)
    assert released == []
    trim.worked()
    time.sleep(0.8)
    assert len(released) == 1 and trim._libc.trims == 1

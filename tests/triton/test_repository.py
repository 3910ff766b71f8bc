"""build/make_repository.py: writes the model and its CPU config, or nothing at all."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.serving import REPO_ROOT, copy_model_directory
from unetkit.core import PARAM_MEMORY_BASE_BYTES, PARAM_MEMORY_BYTES_PER_PIXEL, read_model_info
from unetkit.triton import MemoryModel, cpu_config_path, onnx_path, render_cpu_config

MAKE_REPOSITORY = REPO_ROOT / "build" / "make_repository.py"


def make_repository(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(MAKE_REPOSITORY), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO_ROOT,
    )


def memory_parameters(config: str) -> MemoryModel:
    values = {
        key: int(re.search(f'key: "{key}" value: {{ string_value: "([0-9]+)"', config).group(1))
        for key in (PARAM_MEMORY_BASE_BYTES, PARAM_MEMORY_BYTES_PER_PIXEL)
    }
    return MemoryModel(values[PARAM_MEMORY_BASE_BYTES], values[PARAM_MEMORY_BYTES_PER_PIXEL])


def test_committed_cpu_config_is_the_rendering_for_the_example_model(
    serving_repository: Path,
) -> None:
    """Equal but for the memory figures, which are measured at each export: those must be
    within a factor of two of this session's measurement."""
    committed = cpu_config_path(REPO_ROOT / "model_repository").read_text()
    fresh = cpu_config_path(serving_repository).read_text()
    theirs, ours = memory_parameters(committed), memory_parameters(fresh)
    info = read_model_info(onnx_path(serving_repository))
    assert committed == render_cpu_config(info, theirs), (
        "model_repository/unet/configs/cpu.pbtxt is stale: run `make repository`"
    )
    assert 0.5 < theirs.bytes_per_pixel / ours.bytes_per_pixel < 2
    assert 0.5 < theirs.base_bytes / ours.base_bytes < 2


def test_writes_model_and_config(tmp_path: Path) -> None:
    repository = copy_model_directory(tmp_path)
    run = make_repository("--repository", repository)
    assert run.returncode == 0, run.stderr
    assert onnx_path(repository).stat().st_size > 0
    assert 'backend: "python"' in cpu_config_path(repository).read_text()
    assert not list(repository.rglob(".*.tmp"))


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "model"),
        (b"\x89HDF\r\n\x1a\n" + bytes(200), "model"),
        (b"not a keras model at all\n" * 10, "model"),
    ],
    ids=["empty", "truncated-hdf5", "text"],
)
def test_bad_model_file_writes_nothing(tmp_path: Path, content: bytes, expected: str) -> None:
    repository = copy_model_directory(tmp_path)
    config_before = cpu_config_path(repository).read_bytes()
    bad = tmp_path / "bad.h5"
    bad.write_bytes(content)
    run = make_repository("--model", bad, "--repository", repository)
    assert run.returncode == 2
    (line,) = run.stderr.splitlines()
    assert line.startswith("error: ") and expected in line
    assert not onnx_path(repository).exists()
    assert cpu_config_path(repository).read_bytes() == config_before
    assert not list(repository.rglob(".*.tmp"))


def test_missing_model_file(tmp_path: Path) -> None:
    repository = copy_model_directory(tmp_path)
    run = make_repository("--model", tmp_path / "nope.h5", "--repository", repository)
    assert run.returncode == 2
    assert len(run.stderr.splitlines()) == 1 and "nope.h5" in run.stderr
    assert not onnx_path(repository).exists()

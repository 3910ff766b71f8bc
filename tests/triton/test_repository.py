"""build/make_repository.py: writes the model and its CPU config, or nothing at all."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.serving import REPO_ROOT, copy_model_directory
from unetkit.core import (
    PARAM_MEMORY_BASE_BYTES,
    PARAM_MEMORY_BYTES_PER_PIXEL,
    PARAM_PRECISION,
    PARAM_RUNTIME,
    read_model_info,
)
from unetkit.triton import (
    EngineSpec,
    MemoryModel,
    cpu_config_path,
    onnx_path,
    render_cpu_config,
    runtime_report_path,
)

MAKE_REPOSITORY = REPO_ROOT / "build" / "make_repository.py"


def make_repository(
    *args: str | Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(MAKE_REPOSITORY), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO_ROOT,
        env=None if env is None else {**os.environ, **env},
    )


def broken_openvino(tmp_path: Path) -> dict[str, str]:
    """An environment whose openvino package fails to import, as one whose shared library
    is missing or built for another CPU does."""
    package = tmp_path / "site" / "openvino"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(
        'raise ImportError("libopenvino.so.2026.4.1: cannot open shared object file")\n'
    )
    return {"PYTHONPATH": str(package.parent)}


def memory_parameters(config: str) -> MemoryModel:
    values = {
        key: int(re.search(f'key: "{key}" value: {{ string_value: "([0-9]+)"', config).group(1))
        for key in (PARAM_MEMORY_BASE_BYTES, PARAM_MEMORY_BYTES_PER_PIXEL)
    }
    return MemoryModel(values[PARAM_MEMORY_BASE_BYTES], values[PARAM_MEMORY_BYTES_PER_PIXEL])


def text_parameter(config: str, key: str) -> str:
    return re.search(f'key: "{key}" value: {{ string_value: "([^"]*)"', config).group(1)


def test_committed_cpu_config_is_the_rendering_for_the_example_model(
    serving_repository: Path,
) -> None:
    """Equal but for what is measured at each export: the engine (the fastest on the
    machine that exported) and the memory figures. Those of the same engine must be within a
    factor of two of this session's measurement."""
    committed = cpu_config_path(REPO_ROOT / "model_repository").read_text()
    fresh = cpu_config_path(serving_repository).read_text()
    theirs, ours = memory_parameters(committed), memory_parameters(fresh)
    engine = EngineSpec(
        text_parameter(committed, PARAM_RUNTIME), text_parameter(committed, PARAM_PRECISION)
    )
    info = read_model_info(onnx_path(serving_repository))
    assert committed == render_cpu_config(info, theirs, engine), (
        "model_repository/unet/configs/cpu.pbtxt is stale: run `make repository`"
    )
    if engine == EngineSpec(
        text_parameter(fresh, PARAM_RUNTIME), text_parameter(fresh, PARAM_PRECISION)
    ):
        assert 0.5 < theirs.bytes_per_pixel / ours.bytes_per_pixel < 2
        assert 0.5 < theirs.base_bytes / ours.base_bytes < 2


def test_the_config_serves_what_the_report_chose_and_says_why(serving_repository: Path) -> None:
    """The fastest eligible candidate serves; every candidate faster than fp32 that was
    eligible passed its accuracy gate against ONNX Runtime fp32; one line says why."""
    report = json.loads(runtime_report_path(serving_repository).read_text())
    config = cpu_config_path(serving_repository).read_text()
    served = report["served"]
    assert text_parameter(config, PARAM_RUNTIME) == served["runtime"]
    assert text_parameter(config, PARAM_PRECISION) == served["precision"]
    timed = [c for c in report["candidates"] if c["eligible"]]
    fastest = max(timed, key=lambda c: c["images_per_s"])
    assert (fastest["runtime"], fastest["precision"]) == (served["runtime"], served["precision"])
    assert {(c["runtime"], c["precision"]) for c in report["candidates"]} >= {
        ("onnxruntime", "fp32"),
        ("onnxruntime", "int8"),
        ("openvino", "fp32"),
        ("openvino", "int8"),
        ("openvino", "bf16"),
    }
    for candidate in timed:
        assert candidate["images_per_s"] > 0
        if candidate["precision"] != "fp32":
            assert candidate["gate"]["passed"]
    assert "\n" not in report["reason"]
    assert report["reason"].startswith(f"serving {served['runtime']} {served['precision']}: ")


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


@pytest.mark.parametrize("runtime", ["tensorflow", "OpenVINO"])
def test_an_unknown_runtime_is_one_line_and_writes_nothing(tmp_path: Path, runtime: str) -> None:
    repository = copy_model_directory(tmp_path)
    run = make_repository("--repository", repository, "--runtime", runtime)
    assert run.returncode == 2
    assert run.stderr.splitlines() == [
        f"error: runtime {runtime!r}: use auto, openvino, onnxruntime"
    ]
    assert not onnx_path(repository).exists()


def test_openvino_that_cannot_load_is_refused_when_asked_for_and_skipped_otherwise(
    tmp_path: Path,
) -> None:
    repository = copy_model_directory(tmp_path / "repository")
    env = broken_openvino(tmp_path)
    run = make_repository("--repository", repository, "--runtime", "openvino", env=env)
    assert run.returncode == 2
    assert run.stderr.splitlines() == [
        "error: OpenVINO cannot run on this machine (ImportError: libopenvino.so.2026.4.1: "
        "cannot open shared object file): use RUNTIME=onnxruntime"
    ]
    assert not onnx_path(repository).exists()
    assert not list(repository.rglob("*.json"))

    run = make_repository("--repository", repository, "--precision", "fp32", env=env)
    assert run.returncode == 0, run.stderr
    report = json.loads(runtime_report_path(repository).read_text())
    assert report["served"] == {"runtime": "onnxruntime", "precision": "fp32"}
    (openvino,) = (c for c in report["candidates"] if c["runtime"] == "openvino")
    assert openvino["skipped"].startswith("OpenVINO cannot run here: ImportError")
    assert text_parameter(cpu_config_path(repository).read_text(), PARAM_RUNTIME) == "onnxruntime"

"""build/build_engine.py up to the point where TensorRT is needed (none in CI).

`--dry-run` runs every check the real build runs before TensorRT; bad input gets one line
and exit 2 with nothing written; without TensorRT the tool says so in one line.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO_ROOT
from tests.helpers.engine import save, tiny_unet

TOOL = REPO_ROOT / "build" / "build_engine.py"


def build_engine(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(TOOL), *args], capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A model directory with the ONNX and a config.pbtxt promising max_batch_size 8."""
    version = tmp_path / "unet" / "1"
    version.mkdir(parents=True)
    save(tiny_unet(), version / "model.onnx")
    (tmp_path / "unet" / "config.pbtxt").write_text('name: "unet"\nmax_batch_size: 8\n')
    return tmp_path


def files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_help_works_without_tensorrt():
    result = build_engine("--help")
    assert result.returncode == 0
    for flag in ("--min", "--opt", "--max", "--precision", "--upsample", "--plugin-lib"):
        assert flag in result.stdout


def test_dry_run_checks_profile_and_rewrite_and_writes_nothing(repo, tmp_path):
    plugin = tmp_path / "libunetkit_plugins.so"
    plugin.write_bytes(b"\x7fELF")
    before = files(repo)
    result = build_engine(
        str(repo / "unet/1/model.onnx"),
        "-o",
        str(repo / "unet/1/model.plan"),
        "--min",
        "1x2x2",
        "--opt",
        "4x64x64",
        "--max",
        "8x128x128",
        "--upsample",
        "plugin",
        "--plugin-lib",
        str(plugin),
        "--keep-config",
        "--dry-run",
    )
    assert result.returncode == 0, result.stderr
    assert "profile: min 1x2x2, opt 4x64x64, max 8x128x128" in result.stdout
    assert "1 Resize node(s) -> UnetkitUpsampleNearest" in result.stdout
    assert files(repo) == before


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--upsample", "plugin"], "--upsample plugin needs --plugin-lib"),
        (["--plugin-lib", "/nonexistent/lib.so"], "no such plugin library"),
        (["--max", "32x512x512", "--keep-config"], "config.pbtxt says max_batch_size: 8"),
        (["--opt", "4x63x64"], "--opt 4x63x64: H must be a multiple of 2"),
        (["--min", "2x2x2"], "must start at batch 1"),
        (["--max", "8x128"], "--max '8x128': write batch x height x width"),
    ],
)
def test_bad_flags_get_one_line_and_exit_2(repo, extra, message):
    before = files(repo)
    result = build_engine(
        str(repo / "unet/1/model.onnx"), "-o", str(repo / "unet/1/model.plan"), *extra
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert files(repo) == before


def test_refused_resize_is_reported_before_tensorrt(repo, tmp_path):
    attrs = {"mode": "nearest", "coordinate_transformation_mode": "tf_half_pixel_for_nn"}
    save(tiny_unet(resize_attrs=attrs), repo / "unet/1/model.onnx")
    plugin = tmp_path / "lib.so"
    plugin.write_bytes(b"\x7fELF")
    result = build_engine(
        str(repo / "unet/1/model.onnx"),
        "-o",
        str(repo / "unet/1/model.plan"),
        "--upsample",
        "plugin",
        "--plugin-lib",
        str(plugin),
    )
    assert result.returncode == 2
    assert "tf_half_pixel_for_nn" in result.stderr and "--upsample native" in result.stderr


def test_not_a_contract_onnx_is_refused(repo):
    model = tiny_unet()
    model.graph.output[0].name = "probabilities"
    save(model, repo / "unet/1/model.onnx")
    result = build_engine(str(repo / "unet/1/model.onnx"), "-o", str(repo / "unet/1/model.plan"))
    assert result.returncode == 2
    assert "no tensor 'PROB'" in result.stderr

    (repo / "unet/1/model.onnx").write_bytes(b"not a protobuf at all")
    result = build_engine(str(repo / "unet/1/model.onnx"), "-o", str(repo / "unet/1/model.plan"))
    assert result.returncode == 2 and "not a readable ONNX file" in result.stderr


@pytest.mark.skipif(
    importlib.util.find_spec("tensorrt") is not None, reason="TensorRT is installed here"
)
def test_without_tensorrt_the_build_says_so_in_one_line(repo):
    result = build_engine(str(repo / "unet/1/model.onnx"), "-o", str(repo / "unet/1/model.plan"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: TensorRT is not installed in this Python: run the build in NVIDIA's TensorRT "
        "container: `docker compose run --rm build`"
    ]
    assert not (repo / "unet/1/model.plan").exists()

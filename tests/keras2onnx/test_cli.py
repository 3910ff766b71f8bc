"""build/export_onnx.py on good and bad input: one-line errors, exit 2, nothing written."""

from __future__ import annotations

import json
import runpy
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import h5py
import numpy as np
import onnx
import onnxruntime as ort
import pytest

from tests.helpers import GOLDEN
from tests.helpers import REPO_ROOT as ROOT
from unetkit.core import INPUT_IMAGE, OUTPUT_MASK, OUTPUT_PROB, UserError, read_model_info

CLI = ROOT / "build" / "export_onnx.py"
MODELS = GOLDEN / "models"
H5_MODEL = MODELS / "sequential_tf.h5"
KERAS_MODEL = MODELS / "sequential_k3.keras"


def run_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(CLI), *map(str, args)], capture_output=True, text=True, timeout=120
    )


def run_in_process(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str]:
    """The real CLI entry point, without the cost of a new interpreter."""
    argv = sys.argv
    sys.argv = [str(CLI), *map(str, args)]
    try:
        with pytest.raises(SystemExit) as exited:
            runpy.run_path(str(CLI), run_name="__main__")
    finally:
        sys.argv = argv
    return exited.value.code, capsys.readouterr().err


def assert_one_line_error(code: int, stderr: str, *needles: str) -> None:
    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ")
    for needle in needles:
        assert needle in lines[0]


def assert_nothing_written(directory: Path, keep: set[str] = frozenset()) -> None:
    assert {p.name for p in directory.iterdir()} == set(keep)


def test_cli_exports_a_model_that_onnx_runtime_runs(tmp_path: Path) -> None:
    out = tmp_path / "model.onnx"
    result = run_cli(KERAS_MODEL, "-o", out)
    assert result.returncode == 0, result.stderr
    assert "IMAGE uint8 [N,H,W,1]" in result.stdout
    model = onnx.load(str(out))
    onnx.checker.check_model(model)
    info = read_model_info(out)
    assert info.channels == 1 and info.classes == 1
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    image = np.zeros((1, 16, 16, 1), np.uint8)
    prob, mask = sess.run([OUTPUT_PROB, OUTPUT_MASK], {INPUT_IMAGE: image})
    assert prob.shape == (1, 16, 16, 1) and mask.shape == (1, 16, 16)


def test_unsupported_layer_is_named_in_one_line(tmp_path: Path) -> None:
    out = tmp_path / "model.onnx"
    result = run_cli(MODELS / "unsupported_groupnorm.keras", "-o", out)
    assert_one_line_error(
        result.returncode,
        result.stderr,
        "group_normalization",
        "GroupNormalization",
        "not supported: register a converter",
        "DepthwiseConv2D",
    )
    assert "Traceback" not in result.stderr
    assert_nothing_written(tmp_path)


def test_debug_flag_shows_the_traceback(tmp_path: Path) -> None:
    result = run_cli(MODELS / "unsupported_groupnorm.keras", "-o", tmp_path / "m.onnx", "--debug")
    assert result.returncode != 0
    assert "Traceback" in result.stderr and "UserError" in result.stderr


def test_input_size_pins_the_export_and_notes_say_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "model.onnx"
    code, _ = run_in_process(
        capsys, MODELS / "zhixuhao_k3.keras", "-o", out, "--input-size", "48x32"
    )
    assert code == 0
    assert read_model_info(out).fixed_size == (48, 32)
    result = run_cli(MODELS / "tf_resize_tf.h5", "-o", tmp_path / "pinned.onnx")
    assert result.returncode == 0 and "sizes: 12x12 only" in result.stdout
    assert "\nnote: the network takes only 12x12 images" in result.stdout


def test_an_input_size_the_network_cannot_take_is_one_line(tmp_path: Path) -> None:
    result = run_cli(
        MODELS / "zhixuhao_k3.keras", "-o", tmp_path / "m.onnx", "--input-size", "20x32"
    )
    assert_one_line_error(
        result.returncode, result.stderr, "--input-size 20x32: the network cannot run at that size"
    )
    assert_nothing_written(tmp_path)


def test_flags_reach_the_graph(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "model.onnx"
    code, _ = run_in_process(
        capsys,
        H5_MODEL,
        "-o",
        out,
        "--mean",
        "10",
        "--std",
        "20",
        "--threshold",
        "0.25",
        "--fixed-shape",
        "--opset",
        "18",
    )
    assert code == 0
    model = onnx.load(str(out))
    assert model.opset_import[0].version == 18
    info = read_model_info(model)
    assert (info.mean, info.std, info.threshold, info.fixed_size) == (
        (10.0,),
        (20.0,),
        0.25,
        (32, 32),
    )


def make_weights_only_h5(path: Path) -> None:
    with h5py.File(path, "w") as f:
        f.create_dataset("conv2d/conv2d/kernel:0", data=np.zeros((3, 3, 1, 2), np.float32))


def make_truncated(path: Path, source: Path) -> None:
    path.write_bytes(source.read_bytes()[: source.stat().st_size // 2])


def make_bad_config_keras(path: Path) -> None:
    with zipfile.ZipFile(KERAS_MODEL) as src, zipfile.ZipFile(path, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            dst.writestr(
                item,
                b'{"class_name": "Sequential", "config": '
                if item.filename == "config.json"
                else data,
            )


def make_model_without_weights(path: Path) -> None:
    with zipfile.ZipFile(KERAS_MODEL) as src, zipfile.ZipFile(path, "w") as dst:
        dst.writestr("config.json", src.read("config.json"))


def make_dense_h5(path: Path) -> None:
    shutil.copy(H5_MODEL, path)
    with h5py.File(path, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        config["config"]["layers"][2]["class_name"] = "Dense"
        f.attrs["model_config"] = json.dumps(config)


BAD_MODELS = {
    "truncated_h5": (lambda p: make_truncated(p, H5_MODEL), ".h5", "damaged"),
    "truncated_keras": (lambda p: make_truncated(p, KERAS_MODEL), ".keras", "damaged"),
    "text_file": (lambda p: p.write_text("not a model\n"), ".h5", "not a Keras model file"),
    "empty_file": (lambda p: p.write_bytes(b""), ".keras", "not a Keras model file"),
    "weights_only_h5": (make_weights_only_h5, ".h5", "save_weights"),
    "bad_json_keras": (make_bad_config_keras, ".keras", "config.json is not valid JSON"),
    "no_weights_keras": (make_model_without_weights, ".keras", "model.weights.h5"),
    "plain_zip": (
        lambda p: zipfile.ZipFile(p, "w").writestr("a.txt", "x"),
        ".keras",
        "config.json",
    ),
    "dense_layer": (make_dense_h5, ".h5", "Dense"),
}


@pytest.mark.parametrize("kind", BAD_MODELS)
def test_bad_model_file_fails_in_one_line_and_keeps_the_old_output(
    kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make, suffix, needle = BAD_MODELS[kind]
    model = tmp_path / f"model{suffix}"
    make(model)
    out = tmp_path / "out.onnx"
    out.write_bytes(b"previous export")
    code, stderr = run_in_process(capsys, model, "-o", out)
    assert_one_line_error(code, stderr, needle)
    assert out.read_bytes() == b"previous export"
    assert_nothing_written(tmp_path, {model.name, out.name})


def test_missing_model_and_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, stderr = run_in_process(capsys, tmp_path / "nope.h5", "-o", tmp_path / "o.onnx")
    assert_one_line_error(code, stderr, "no such file")
    code, stderr = run_in_process(capsys, tmp_path, "-o", tmp_path / "o.onnx")
    assert_one_line_error(code, stderr, "is a directory", "SavedModel")
    assert_nothing_written(tmp_path)


def test_unwritable_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, stderr = run_in_process(capsys, H5_MODEL, "-o", blocker / "model.onnx")
    assert_one_line_error(code, stderr, "cannot write")
    code, stderr = run_in_process(capsys, H5_MODEL, "-o", tmp_path)
    assert_one_line_error(code, stderr, "is a directory")
    assert_nothing_written(tmp_path, {"file"})


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (["--mean", "1", "2"], "--mean takes 1 value for this 1-channel model, got 2"),
        (["--std", "0"], "--std values must be positive"),
        (["--std", "nan"], "finite"),
        (["--threshold", "inf"], "--threshold"),
        (["--opset", "9"], "--opset 9 is not supported"),
    ],
)
def test_bad_flags(
    flags: list[str], needle: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, stderr = run_in_process(capsys, H5_MODEL, "-o", tmp_path / "o.onnx", *flags)
    assert_one_line_error(code, stderr, needle)
    assert_nothing_written(tmp_path)


def test_fixed_shape_needs_a_fixed_keras_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, stderr = run_in_process(
        capsys, MODELS / "extras_tf.h5", "-o", tmp_path / "o.onnx", "--fixed-shape"
    )
    assert_one_line_error(code, stderr, "--fixed-shape")


def test_read_model_info_refuses_foreign_onnx(tmp_path: Path) -> None:
    graph = onnx.helper.make_graph([], "g", [], [])
    foreign = tmp_path / "foreign.onnx"
    onnx.save_model(onnx.helper.make_model(graph), str(foreign))
    with pytest.raises(UserError, match="lacks unetkit metadata"):
        read_model_info(foreign)
    foreign.write_bytes(b"\xff" * 10)
    with pytest.raises(UserError, match="not a readable ONNX"):
        read_model_info(foreign)

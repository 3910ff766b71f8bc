"""Killing the converter mid-write never leaves a partial model where Triton looks."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import onnx

from tests.helpers import REPO_ROOT as ROOT

CLI = ROOT / "build" / "export_onnx.py"
LAYERS = 12
WIDTH = 384  # 12 convolutions of 384x384x3x3: about 64 MB of weights


def write_large_h5(path: Path) -> None:
    """A legacy-format Sequential model big enough that writing its ONNX takes a while."""
    layers = [
        {
            "class_name": "InputLayer",
            "config": {"name": "input", "batch_input_shape": [None, 32, 32, WIDTH]},
        }
    ]
    for i in range(LAYERS):
        layers.append(
            {
                "class_name": "Conv2D",
                "config": {
                    "name": f"conv{i}",
                    "filters": WIDTH,
                    "kernel_size": [3, 3],
                    "padding": "same",
                    "activation": "relu",
                },
            }
        )
    head = {"name": "head", "filters": 1, "kernel_size": [1, 1], "activation": "sigmoid"}
    layers.append({"class_name": "Conv2D", "config": head})
    config = {"class_name": "Sequential", "config": {"name": "big", "layers": layers}}
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = json.dumps(config)
        weights = f.create_group("model_weights")
        for i in range(LAYERS):
            group = weights.create_group(f"conv{i}")
            group.attrs["weight_names"] = [f"conv{i}/kernel:0", f"conv{i}/bias:0"]
            group[f"conv{i}/kernel:0"] = np.full((3, 3, WIDTH, WIDTH), 0.01, np.float32)
            group[f"conv{i}/bias:0"] = np.zeros(WIDTH, np.float32)
        group = weights.create_group("head")
        group.attrs["weight_names"] = ["head/kernel:0", "head/bias:0"]
        group["head/kernel:0"] = np.full((1, 1, WIDTH, 1), 0.01, np.float32)
        group["head/bias:0"] = np.zeros(1, np.float32)


def test_killed_export_keeps_the_previous_model(tmp_path: Path) -> None:
    model = tmp_path / "big.h5"
    write_large_h5(model)
    out_dir = tmp_path / "repo"
    out_dir.mkdir()
    out = out_dir / "model.onnx"
    previous = onnx.helper.make_model(onnx.helper.make_graph([], "previous", [], []))
    onnx.save_model(previous, str(out))
    process = subprocess.Popen([sys.executable, str(CLI), str(model), "-o", str(out)])
    deadline = time.monotonic() + 60
    while not list(out_dir.glob(".model.onnx.*.tmp")) and process.poll() is None:
        assert time.monotonic() < deadline, "the export never started writing"
        time.sleep(0.002)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the export finished before it could be killed"
    assert onnx.load(str(out)).graph.name == "previous"
    # what the killed writer left is hidden from Triton's repository scan (a dot name)
    assert all(p.name.startswith(".") for p in out_dir.iterdir() if p != out)

    finished = subprocess.run(
        [sys.executable, str(CLI), str(model), "-o", str(out)], capture_output=True, timeout=300
    )
    assert finished.returncode == 0, finished.stderr
    assert onnx.load(str(out), load_external_data=False).graph.name == "unet"

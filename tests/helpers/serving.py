"""Shared by the serving and client tests: paths, free ports, one inference, the client CLI."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from tests.helpers import REPO_ROOT
from unetkit.core import INPUT_IMAGE, MODEL_NAME, OUTPUT_MASK, OUTPUT_PROB
from unetkit.triton import Engine, onnx_path, open_engine, read_served_engine

CLIENT = REPO_ROOT / "client" / "segment.py"


def copy_model_directory(target: Path) -> Path:
    """The committed files of model_repository/unet (code and configs), no model files."""
    shutil.copytree(
        REPO_ROOT / "model_repository" / "unet",
        target / "unet",
        ignore=shutil.ignore_patterns("model.onnx", "model.plan", "*.json", "__pycache__"),
    )
    return target


def served_engine(repository: Path, threads: int = 1) -> Engine:
    """That engine, opened in this process on the repository's model file."""
    return open_engine(read_served_engine(repository), onnx_path(repository), threads)


def image_input(images: np.ndarray, datatype: str = "UINT8") -> grpcclient.InferInput:
    tensor = grpcclient.InferInput(INPUT_IMAGE, list(images.shape), datatype)
    tensor.set_data_from_numpy(images)
    return tensor


def infer(url: str, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with grpcclient.InferenceServerClient(url) as client:
        result = client.infer(MODEL_NAME, [image_input(images)])
        return result.as_numpy(OUTPUT_PROB), result.as_numpy(OUTPUT_MASK)


def random_images(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def run_client(*args: str | Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(CLIENT), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def wait_until_serving(launcher: subprocess.Popen[str], name: str) -> None:
    """Read the launcher's stdout up to its banner's last line; fail if it ends first."""
    assert launcher.stdout is not None
    for line in launcher.stdout:
        if line.startswith("Ctrl-C stops the server"):
            return
    pytest.fail(f"{name} ended with {launcher.wait()} before serving")

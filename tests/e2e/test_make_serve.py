"""The README's words for serving your own model: `make serve MODEL=my_unet.keras`, then a
later plain `make serve` serves it again; the export is redone only when the file or the
flags change."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import numpy as np

from tests.helpers import GOLDEN, REPO_ROOT
from tests.helpers.serving import copy_model_directory, infer, wait_until_serving
from unetkit.triton import free_ports, onnx_path, read_export_record

# An RGB model with 3 classes: nothing like the example (grey, 1 class).
USER_MODEL = GOLDEN / "models" / "transpose_bn_k3.keras"


def make(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "-s", "-C", str(REPO_ROOT), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def processes_serving(repository: Path) -> list[int]:
    """Processes whose command line names `repository` (tritonserver, its stubs)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if str(repository).encode() in cmdline.read_bytes():
                found.append(int(cmdline.parent.name))
        except OSError:
            continue
    return found


def serve_and_segment(repository: Path, *make_args: str) -> np.ndarray:
    """`make serve ...` until the server announces itself, one RGB image, then Ctrl-C."""
    http, grpc, metrics = free_ports(3)
    server = subprocess.Popen(
        [
            *("make", "-s", "-C", str(REPO_ROOT), "serve", f"REPOSITORY={repository}"),
            *(f"GRPC_PORT={grpc}", f"HTTP_PORT={http}", f"METRICS_PORT={metrics}", *make_args),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,  # its own group, like a terminal's foreground job
    )
    try:
        wait_until_serving(server, "make serve")
        prob, mask = infer(f"127.0.0.1:{grpc}", np.zeros((1, 48, 80, 3), np.uint8))
        os.killpg(server.pid, signal.SIGINT)
        # Ctrl-C ends make itself too (killed by SIGINT, or 2 for an interrupted recipe).
        assert server.wait(timeout=90) in (0, 2, -signal.SIGINT)
        assert not processes_serving(repository)
        assert mask.shape == (1, 48, 80)
        return prob
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)


def test_make_serve_model_serves_the_users_model_and_keeps_it(tmp_path: Path) -> None:
    repository = copy_model_directory(tmp_path / "model_repository")
    model = shutil.copy(USER_MODEL, tmp_path / "my_unet.keras")

    prob = serve_and_segment(repository, f"MODEL={model}")
    assert prob.shape == (1, 48, 80, 3)
    first = read_export_record(repository)
    assert first is not None and first.keras_model == str(Path(model).resolve())

    # A plain `make serve` later: the same model, not re-exported, not the example.
    written = onnx_path(repository).stat().st_mtime_ns
    assert serve_and_segment(repository).shape == (1, 48, 80, 3)
    assert onnx_path(repository).stat().st_mtime_ns == written

    # Other flags: exported again, with them.
    result = make("repository", f"REPOSITORY={repository}", "EXPORT_ARGS=--threshold 0.7")
    assert result.returncode == 0, result.stderr
    assert "wrote" in result.stdout and "my_unet.keras" in result.stdout
    record = read_export_record(repository)
    assert record is not None and record.options["threshold"] == 0.7

    # An unchanged file and flags: nothing is written.
    result = make("repository", f"REPOSITORY={repository}", "EXPORT_ARGS=--threshold 0.7")
    assert result.returncode == 0 and "is up to date" in result.stdout, result.stdout


def test_a_bad_model_file_is_one_line_and_leaves_the_served_model(tmp_path: Path) -> None:
    repository = copy_model_directory(tmp_path / "model_repository")
    good = shutil.copy(USER_MODEL, tmp_path / "my_unet.keras")
    assert make("repository", f"REPOSITORY={repository}", f"MODEL={good}").returncode == 0
    before = onnx_path(repository).read_bytes()
    broken = tmp_path / "broken.h5"
    broken.write_bytes(b"not a model")
    result = make("repository", f"REPOSITORY={repository}", f"MODEL={broken}")
    assert result.returncode != 0
    assert [line for line in result.stderr.splitlines() if line.startswith("error:")] == [
        f"error: {broken} is not a Keras model file: expected HDF5 (.h5, from "
        "model.save('x.h5')) or a Keras 3 zip (.keras)"
    ]
    assert onnx_path(repository).read_bytes() == before

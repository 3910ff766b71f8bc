"""`python -m unetkit.serve` (what `make serve` runs): start, announce, stop cleanly, refuse."""

from __future__ import annotations

import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from tests.helpers.serving import REPO_ROOT, infer, run_client, wait_until_serving
from unetkit.triton import CPU_INSTANCES, child_pids, free_ports, stub_pids

SERVE = [sys.executable, "-m", "unetkit.serve"]


def processes_mentioning(text: str) -> dict[int, str]:
    """Command lines, by pid, of running processes that contain `text` (Triton, its stubs)."""
    found = {}
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        if cmdline.parent.name == str(os.getpid()):
            continue
        try:
            args = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in args:
            found[int(cmdline.parent.name)] = args
    return found


def processes_left(repository: Path, wait_s: float = 10.0) -> dict[int, str]:
    """The processes still serving `repository` once they had `wait_s` to go."""
    deadline = time.monotonic() + wait_s
    while processes_mentioning(str(repository)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return processes_mentioning(str(repository))


def launched_stubs(launcher: subprocess.Popen[str]) -> list[int]:
    """The python backend stubs of the tritonserver that `unetkit.serve` started."""
    return [pid for server in child_pids(launcher.pid) for pid in stub_pids(server)]


def start_serve(
    serving_repository: Path, tmp_path: Path, **popen: Any
) -> tuple[Path, int, subprocess.Popen[str]]:
    """`unetkit.serve` on a private copy of the repository (its path tells this server's
    processes apart from the session's) and free ports: the copy, the gRPC port, the process."""
    repository = shutil.copytree(serving_repository, tmp_path / "repository")
    http_port, grpc_port, metrics_port = free_ports(3)
    ports = ["--grpc-port", grpc_port, "--http-port", http_port, "--metrics-port", metrics_port]
    popen.setdefault("stderr", subprocess.DEVNULL)
    server = subprocess.Popen(
        [*SERVE, "--model-repository", str(repository), *map(str, ports)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
        **popen,
    )
    return repository, grpc_port, server


def serve(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SERVE, *map(str, args)], capture_output=True, text=True, timeout=120, cwd=REPO_ROOT
    )


def test_serve_answers_a_waiting_client_and_stops_on_sigterm_leaving_no_stub(
    serving_repository: Path, tmp_path: Path
) -> None:
    repository, grpc_port, server = start_serve(serving_repository, tmp_path)
    # The client starts while nothing listens yet (Triton takes seconds to load the model)
    # and retries with backoff.
    client = subprocess.Popen(
        [
            *(sys.executable, str(REPO_ROOT / "client" / "segment.py"), "--retries", "8"),
            *("-u", f"127.0.0.1:{grpc_port}", "-o", str(tmp_path / "out")),
            str(REPO_ROOT / "samples" / "cells_01.png"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        banner = [server.stdout.readline() for _ in range(7)]
        assert f"gRPC     127.0.0.1:{grpc_port}" in "".join(banner), banner
        assert f"segment.py -u 127.0.0.1:{grpc_port}" in "".join(banner), banner
        _, client_err = client.communicate(timeout=120)
        assert client.returncode == 0, client_err
        assert (tmp_path / "out" / "cells_01.mask.png").is_file()
        assert launched_stubs(server)

        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=90) == 0
    finally:
        client.kill()
        server.kill()
    assert processes_left(repository) == {}


def test_serve_stops_on_sigint_though_started_with_sigint_ignored(
    serving_repository: Path, tmp_path: Path
) -> None:
    """As a background job of a script is: bash starts it with SIGINT ignored."""
    repository, _, server = start_serve(
        serving_repository,
        tmp_path,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    try:
        wait_until_serving(server, "serve")
        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=90) == 0
    finally:
        server.kill()
    assert processes_left(repository) == {}


def test_serve_restarts_triton_when_a_stub_dies(serving_repository: Path, tmp_path: Path) -> None:
    # Triton's log and the launcher's lines, in order
    _, grpc_port, server = start_serve(serving_repository, tmp_path, stderr=subprocess.STDOUT)
    lines: queue.Queue[str] = queue.Queue()
    assert server.stdout is not None
    threading.Thread(
        target=lambda: [lines.put(line) for line in server.stdout], daemon=True
    ).start()

    def wait_for_line(start: str, timeout_s: float = 90) -> None:
        deadline = time.monotonic() + timeout_s
        while not lines.get(timeout=max(0.0, deadline - time.monotonic())).startswith(start):
            pass

    url = f"127.0.0.1:{grpc_port}"
    image = np.zeros((1, 32, 32, 1), np.uint8)
    try:
        wait_for_line("Ctrl-C stops the server")
        infer(url, image)
        stubs = launched_stubs(server)
        assert len(stubs) == CPU_INSTANCES
        os.kill(stubs[0], signal.SIGKILL)  # one of the instances
        wait_for_line("warning: a python backend stub died")
        wait_for_line("Triton is serving again")
        _, mask = infer(url, image)
        assert mask.shape == (1, 32, 32)
        assert launched_stubs(server) not in ([], stubs)
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=90) == 0
    finally:
        server.kill()


def test_port_in_use_is_one_line_and_exit_2(serving_repository: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        http_port, metrics_port = free_ports(2)
        run = serve(
            "--model-repository", serving_repository, "--grpc-port", port,
            "--http-port", http_port, "--metrics-port", metrics_port,
        )  # fmt: skip
    assert run.returncode == 2
    assert run.stderr.splitlines() == [
        f"error: port {port} on 127.0.0.1 is in use (another server?): "
        "stop it or pick another with --grpc-port"
    ]


def test_no_model_says_run_make_repository(tmp_path: Path) -> None:
    shutil.copytree(
        REPO_ROOT / "model_repository" / "unet",
        tmp_path / "unet",
        ignore=shutil.ignore_patterns("model.onnx", "model.plan"),
    )
    run = serve("--model-repository", tmp_path)
    assert run.returncode == 2
    assert len(run.stderr.splitlines()) == 1
    assert "run `make repository`" in run.stderr


def test_any_address_warns(tmp_path: Path) -> None:
    run = serve("--host", "0.0.0.0", "--model-repository", tmp_path)
    assert run.returncode == 2
    warning, error = run.stderr.splitlines()
    assert warning.startswith("warning: listening on 0.0.0.0")
    assert error.startswith("error: ")


def test_client_gives_up_on_an_unreachable_server_with_exit_8(tmp_path: Path) -> None:
    (port,) = free_ports(1)
    run = run_client(
        "-u", f"127.0.0.1:{port}", "--retries", "1", "-o", tmp_path,
        REPO_ROOT / "samples" / "cells_01.png",
    )  # fmt: skip
    assert run.returncode == 8
    assert run.stderr.startswith(f"error: no Triton server answers at 127.0.0.1:{port}")
    assert not (tmp_path / "cells_01.mask.png").exists()


def test_client_times_out_on_a_server_that_never_answers(tmp_path: Path) -> None:
    """A listener that accepts connections and says nothing: --timeout, then bounded retries."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        run = run_client(
            "-u", f"127.0.0.1:{port}", "--timeout", "0.5", "--retries", "1", "-o", tmp_path,
            REPO_ROOT / "samples" / "cells_01.png",
        )  # fmt: skip
    assert run.returncode == 8
    assert "DEADLINE_EXCEEDED" in run.stderr and "tried 2 times" in run.stderr
    assert len(run.stderr.splitlines()) == 1

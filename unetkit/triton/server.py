"""Start and stop the real Triton Inference Server that ships in the nvidia-pytriton wheel.

The wheel carries `tritonserver`, the python backend and one backend stub per Python
version. Triton finds a backend as `<backend-directory>/python/libtriton_python.so` and
the stub beside it, so each server gets a private backend folder holding the library and
the stub built for the running interpreter. The stub embeds libpython: the interpreter's
LIBDIR goes on LD_LIBRARY_PATH and this environment's `bin/` first on PATH, so the stub
imports from this environment (where numpy stays < 2: the stub is built against numpy 1.x).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unetkit.core import (
    DEFAULT_GRPC_PORT,
    DEFAULT_HOST,
    DEFAULT_HTTP_PORT,
    DEFAULT_METRICS_PORT,
    MODEL_NAME,
    SERVER_DIR_ENV,
    UserError,
)
from unetkit.triton.access import access_flags, admin_key
from unetkit.triton.processes import Member, group_members, stub_pids

# At shutdown Triton waits this long for the requests in flight (its default, 30 s, would
# hold a Ctrl-C that long behind a queue of large images), then exits; the launcher kills
# what is left of the group a few seconds later.
EXIT_TIMEOUT_S = 5


def pytriton_server_dir() -> Path:
    try:
        import pytriton
    except ImportError as e:
        raise UserError(
            "nvidia-pytriton is not installed: run `make venv` (it ships tritonserver)"
        ) from e
    return Path(pytriton.__file__).parent / "tritonserver"


def prepare_backend_directory(target: Path) -> Path:
    """Lay out `target/python/` with the python backend and the stub for this interpreter."""
    server_dir = pytriton_server_dir()
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = server_dir / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.exists():
        raise UserError(f"nvidia-pytriton ships no python backend stub for Python {version}")
    python_backend = target / "python"
    shutil.copytree(server_dir / "backends" / "python", python_backend, dirs_exist_ok=True)
    shutil.copy2(stub, python_backend / stub.name)
    return target


def server_environment() -> dict[str, str]:
    env = dict(os.environ)
    # The copied stub loses its relative rpath to the libraries bundled with the wheel.
    wheel_libs = pytriton_server_dir().parent.parent / "nvidia_pytriton.libs"
    python_libdir = sysconfig.get_config_var("LIBDIR") or ""
    env["LD_LIBRARY_PATH"] = os.pathsep.join(
        p for p in (str(wheel_libs), python_libdir, env.get("LD_LIBRARY_PATH", "")) if p
    )
    env["PATH"] = os.pathsep.join((str(Path(sys.executable).parent), env.get("PATH", "")))
    # glibc gives threads that allocate their own heap arenas, each keeping freed memory.
    # With two: each stub settled at ~250 MiB within 100 s of steady load; without, the
    # stubs climbed to that level for the whole 10 minutes of make soak (BENCHMARKS.md).
    env.setdefault("MALLOC_ARENA_MAX", "2")
    return env


def free_ports(count: int, host: str = DEFAULT_HOST) -> list[int]:
    """`count` distinct ports that were free a moment ago (all probed at once)."""
    with contextlib.ExitStack() as stack:
        probes = [stack.enter_context(socket.socket()) for _ in range(count)]
        for probe in probes:
            probe.bind((host, 0))
        return [probe.getsockname()[1] for probe in probes]


PR_SET_PDEATHSIG = 1  # from <sys/prctl.h>


def _stop_with_parent() -> None:
    """Runs in the child before exec: Linux sends it SIGTERM when the thread that started
    it dies, so a launcher killed with SIGKILL (or a crashed test run) leaves no server."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class TritonServer:
    """One tritonserver process; use as a context manager or call start()/stop()."""

    model_repository: Path
    host: str = DEFAULT_HOST
    http_port: int = DEFAULT_HTTP_PORT
    grpc_port: int = DEFAULT_GRPC_PORT
    metrics_port: int = DEFAULT_METRICS_PORT
    model_config_name: str | None = "cpu"
    admin_key: str | None = None
    log_verbose: int = 0
    log_file: Path | None = None
    extra_args: list[str] = field(default_factory=list)
    # Variables added to the server's environment (the model reads UNETKIT_MEMORY_BUDGET).
    extra_env: dict[str, str] = field(default_factory=dict)
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _backend_dir: Path | None = field(default=None, init=False, repr=False)

    @classmethod
    def on_free_ports(cls, model_repository: Path, **options: Any) -> TritonServer:
        """A server on three loopback ports that are free now (tests and benchmarks)."""
        http_port, grpc_port, metrics_port = free_ports(3)
        return cls(
            model_repository,
            http_port=http_port,
            grpc_port=grpc_port,
            metrics_port=metrics_port,
            **options,
        )

    def __post_init__(self) -> None:
        if self.admin_key is None:
            self.admin_key, _ = admin_key(dict(os.environ))

    @property
    def grpc_url(self) -> str:
        return f"{self._client_host}:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"{self._client_host}:{self.http_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self._client_host}:{self.metrics_port}/metrics"

    @property
    def _client_host(self) -> str:
        return "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def command(self, backend_dir: Path) -> list[str]:
        binary = pytriton_server_dir() / "bin" / "tritonserver"
        assert self.admin_key is not None
        cmd = [
            str(binary),
            f"--model-repository={self.model_repository}",
            f"--backend-directory={backend_dir}",
            *access_flags(self.admin_key),
            f"--http-address={self.host}",
            f"--http-port={self.http_port}",
            f"--grpc-address={self.host}",
            f"--grpc-port={self.grpc_port}",
            f"--metrics-address={self.host}",
            f"--metrics-port={self.metrics_port}",
            "--allow-gpu-metrics=false",
            f"--exit-timeout-secs={EXIT_TIMEOUT_S}",
            # One shared-memory prefix per server, so servers side by side never collide.
            f"--backend-config=python,shm-region-prefix-name=unetkit_{os.getpid()}_{self.grpc_port}_",
            f"--log-verbose={self.log_verbose}",
        ]
        if self.model_config_name:
            cmd.append(f"--model-config-name={self.model_config_name}")
        if self.log_file:
            cmd.append(f"--log-file={self.log_file}")
        return cmd + self.extra_args

    def start(self, timeout_s: float = 180.0) -> None:
        if self._process is not None:
            raise RuntimeError("server already started")
        if not (self.model_repository / MODEL_NAME).exists() and not any(
            self.model_repository.glob("*/config.pbtxt")
        ):
            raise UserError(
                f"no model in {self.model_repository}: run `make repository` to generate it"
            )
        self._backend_dir = prepare_backend_directory(
            Path(tempfile.mkdtemp(prefix="unetkit-backends-"))
        )
        self._process = subprocess.Popen(
            self.command(self._backend_dir),
            # The backends' temporary directory is the server's own for its life.
            env=server_environment() | {SERVER_DIR_ENV: str(self._backend_dir)} | self.extra_env,
            # Own process group: stop() can reach the python backend stubs as well.
            start_new_session=True,
            preexec_fn=_stop_with_parent,
        )
        try:
            self._wait_ready(timeout_s)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        url = f"http://{self.http_url}/v2/health/ready"
        while time.monotonic() < deadline:
            assert self._process is not None
            code = self._process.poll()
            if code is not None:
                raise UserError(
                    f"tritonserver exited with code {code} before it was ready "
                    "(its log above says why; a port in use? pick others with --grpc-port etc.)"
                )
            if self.is_ready(url):
                return
            time.sleep(0.25)
        raise UserError(f"tritonserver not ready after {timeout_s:.0f} s (see its log above)")

    @staticmethod
    def is_ready(url: str) -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def wait(self, timeout_s: float | None = None) -> int:
        """The server's exit code; subprocess.TimeoutExpired if still running after timeout_s."""
        assert self._process is not None
        return self._process.wait(timeout_s)

    def stub_pids(self) -> list[int]:
        """The live python backend stubs of this server (one per model instance)."""
        return [] if self._process is None else stub_pids(self._process.pid)

    def members(self) -> list[Member]:
        """tritonserver and its stubs, with their resident memory."""
        return [] if self._process is None else group_members(self._process.pid)

    def stop(self, timeout_s: float = EXIT_TIMEOUT_S + 3.0) -> int | None:
        """Ask Triton to shut down (SIGINT), escalate to SIGKILL of its group if it hangs."""
        process, self._process = self._process, None
        code: int | None = None
        if process is not None:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout_s)
            code = process.poll()
            # Whatever is left of the group (a stuck stub, or Triton itself) goes now.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            if code is None:
                code = process.wait()
        if self._backend_dir is not None:
            shutil.rmtree(self._backend_dir, ignore_errors=True)
            self._backend_dir = None
        return code

    def __enter__(self) -> TritonServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

"""Keep a CPU server serving: Triton 2.51 does not restart a python backend stub that dies.

The model would stay "ready" while every request waits for the stub timeout and fails;
restarting Triton on the same ports brings the model back in seconds.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Callable

from unetkit.triton.server import TritonServer

STUB_POLL_S = 1.0


def supervise(server: TritonServer, on_restart: Callable[[str], None]) -> int:
    """Wait for the server to exit and return its code, restarting it when a stub dies.

    `on_restart` is told before and after each restart (a line for the user).
    """
    expected_stubs = len(server.stub_pids())
    while True:
        with contextlib.suppress(subprocess.TimeoutExpired):
            return server.wait(STUB_POLL_S)
        if len(server.stub_pids()) < expected_stubs:
            on_restart(
                "warning: a python backend stub died (Triton does not restart it): "
                "restarting Triton"
            )
            server.stop(timeout_s=5)
            server.start()
            on_restart(f"Triton is serving again on {server.grpc_url}")
            expected_stubs = len(server.stub_pids())

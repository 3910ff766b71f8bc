"""One real Triton server for the end-to-end tests, serving the example model from the
session's temporary repository on free loopback ports; always stopped at the end."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from unetkit.triton import TritonServer


@pytest.fixture(scope="session")
def admin_key() -> str:
    return secrets.token_urlsafe(24)


@pytest.fixture(scope="session")
def triton(
    serving_repository: Path, admin_key: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TritonServer]:
    server = TritonServer.on_free_ports(
        serving_repository,
        admin_key=admin_key,
        log_file=tmp_path_factory.mktemp("triton_log") / "triton.log",
    )
    with server:
        yield server

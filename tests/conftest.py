"""One real Triton server for the whole test session, serving the kit's real repository.

The repository is a temporary copy of model_repository/unet with the example model
exported into it by build/make_repository.py's library function, so tests never touch
the working tree. The server listens on free ports and is always stopped at the end.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from serving_helpers import REPO_ROOT, copy_model_directory

from unetkit.repository import EXAMPLE_MODEL, make_repository
from unetkit.triton_server import TritonServer


@pytest.fixture(scope="session")
def serving_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repository = copy_model_directory(tmp_path_factory.mktemp("model_repository"))
    make_repository(REPO_ROOT / EXAMPLE_MODEL, repository)
    return repository


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

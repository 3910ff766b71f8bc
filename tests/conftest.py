"""The example model exported into a temporary copy of the kit's model repository, once per
test session (by make_repository, what `make repository` runs), so tests never touch the
working tree."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.serving import copy_model_directory
from unetkit.keras2onnx import write_onnx
from unetkit.pipelines import EXAMPLE_MODEL, make_repository


@pytest.fixture(scope="session")
def serving_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repository = copy_model_directory(tmp_path_factory.mktemp("model_repository"))
    make_repository(EXAMPLE_MODEL, repository)
    return repository


@pytest.fixture(scope="session")
def example_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example model exported in fp32, as the GPU route builds from it (the CPU
    repository may hold its int8 copy)."""
    path = tmp_path_factory.mktemp("example_onnx") / "model.onnx"
    write_onnx(EXAMPLE_MODEL, path)
    return path

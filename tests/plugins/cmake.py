"""Running plugins/ CMake as CI does (nvcc, no GPU), for the tests of this folder."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import REPO_ROOT
from tests.helpers.engine import HEADERS_MISSING

PLUGINS = REPO_ROOT / "plugins"
# One architecture keeps the CI build short; the default list is for real builds.
CUDA_ARCHITECTURES = "90"
TOOLS = ("nvcc", "cmake", "nm")


def require_tools() -> None:
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (CUDA toolkit, CMake, binutils)")


def configure(build_dir: Path, *defines: str) -> subprocess.CompletedProcess[str]:
    """cmake -S plugins -B build_dir, with the CI architecture; not checked."""
    return subprocess.run(
        [
            "cmake",
            "-S",
            str(PLUGINS),
            "-B",
            str(build_dir),
            f"-DCMAKE_CUDA_ARCHITECTURES={CUDA_ARCHITECTURES}",
            *defines,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )


@dataclass(frozen=True)
class PluginBuild:
    directory: Path
    configure_output: str
    headers: Path | None

    @property
    def plugin(self) -> Path:
        if self.headers is None:
            pytest.skip(HEADERS_MISSING)
        return self.directory / "libunetkit_plugins.so"

"""One CMake build of plugins/ per test session, as CI runs it (nvcc, no GPU).

The CUDA kernels are always built. Where TensorRT 11 headers are (`make trt-headers`, or
$TENSORRT_HEADERS), the plugin library is built against them too, and linked to the
TensorRT-RTX library of the venv, so it can be loaded and used by a real TensorRT builder.
"""

from __future__ import annotations

import subprocess

import pytest

from tests.helpers.engine import rtx_library, tensorrt_headers
from tests.plugins.cmake import PluginBuild, configure, require_tools


@pytest.fixture(scope="session")
def plugin_build(tmp_path_factory: pytest.TempPathFactory) -> PluginBuild:
    require_tools()
    build_dir = tmp_path_factory.mktemp("plugins-build")
    headers = tensorrt_headers(11)
    if headers is None:
        no_headers = tmp_path_factory.mktemp("no-tensorrt-headers")
        defines = [f"-DTENSORRT_HEADERS={no_headers}"]
    else:
        defines = [f"-DTENSORRT_HEADERS={headers}", f"-DTensorRT_LIBRARY={rtx_library()}"]
    configured = configure(build_dir, *defines)
    assert configured.returncode == 0, configured.stdout + configured.stderr
    built = subprocess.run(
        ["nice", "cmake", "--build", str(build_dir), "-j", "2"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    return PluginBuild(build_dir, configured.stdout, headers)

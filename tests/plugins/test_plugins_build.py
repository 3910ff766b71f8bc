"""Builds plugins/ with CMake and nvcc as CI does (no GPU, no TensorRT libraries needed).

The CUDA kernels are always built. The TensorRT plugin library is built too where TensorRT's
headers are present: plugins/third_party/tensorrt (`make trt-headers`) or $TENSORRT_ROOT.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

from tests.helpers import REPO_ROOT

PLUGINS = REPO_ROOT / "plugins"
FETCHED_HEADERS = PLUGINS / "third_party" / "tensorrt"
# One architecture keeps the CI build short; the default list is for real builds.
CUDA_ARCHITECTURES = "90"

pytestmark = pytest.mark.skipif(
    not all(shutil.which(tool) for tool in ("nvcc", "cmake", "nm")),
    reason="needs nvcc, cmake and nm (binutils)",
)


@dataclass(frozen=True)
class PluginBuild:
    directory: Path
    configure_output: str
    tensorrt_root: Path | None


def tensorrt_root() -> Path | None:
    candidates = [Path(os.environ["TENSORRT_ROOT"])] if os.environ.get("TENSORRT_ROOT") else []
    candidates.append(FETCHED_HEADERS)
    for root in candidates:
        if (root / "include" / "NvInferRuntime.h").is_file():
            return root
    return None


def configure(build_dir: Path, root: Path) -> str:
    result = subprocess.run(
        [
            "cmake",
            "-S",
            str(PLUGINS),
            "-B",
            str(build_dir),
            f"-DCMAKE_CUDA_ARCHITECTURES={CUDA_ARCHITECTURES}",
            f"-DTENSORRT_ROOT={root}",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout


def exported_symbols(library: Path) -> set[str]:
    listing = subprocess.run(
        ["nm", "-D", "--defined-only", str(library)], capture_output=True, text=True, check=True
    ).stdout
    return {line.split()[-1] for line in listing.splitlines() if line.strip()}


def load_kernels_binding() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "kernels_ctypes", PLUGINS / "tests" / "kernels_ctypes.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def plugin_build(tmp_path_factory: pytest.TempPathFactory) -> PluginBuild:
    build_dir = tmp_path_factory.mktemp("plugins-build")
    root = tensorrt_root()
    if root is None:
        root_for_cmake = build_dir / "no-tensorrt"
        root_for_cmake.mkdir()
    else:
        root_for_cmake = root
    output = configure(build_dir, root_for_cmake)
    subprocess.run(
        ["nice", "cmake", "--build", str(build_dir), "-j", "2"],
        capture_output=True,
        text=True,
        check=True,
    )
    return PluginBuild(build_dir, output, root)


def test_configure_without_tensorrt_headers_says_so_in_one_line(tmp_path: Path) -> None:
    empty_root = tmp_path / "no-tensorrt"
    empty_root.mkdir()
    output = configure(tmp_path / "build", empty_root)

    mentions = [line for line in output.splitlines() if "TensorRT" in line]
    assert len(mentions) == 1, output
    assert "TensorRT headers not found: building the CUDA kernels only" in mentions[0]
    assert "-DTENSORRT_ROOT=" in mentions[0]
    assert not (tmp_path / "build" / "CMakeFiles" / "unetkit_plugins.dir").exists()


def test_kernels_shared_library_exports_the_c_entry_point(plugin_build: PluginBuild) -> None:
    library = plugin_build.directory / "libunetkit_kernels.so"
    assert "unetkit_upsample_nearest" in exported_symbols(library)
    assert (plugin_build.directory / "libunetkit_kernels.a").is_file()


def test_entry_point_rejects_bad_arguments_before_touching_the_gpu(
    plugin_build: PluginBuild,
) -> None:
    binding = load_kernels_binding()
    kernels = binding.UpsampleKernels(plugin_build.directory / "libunetkit_kernels.so")
    fake_pointer = 256  # never dereferenced: validation fails before any CUDA call
    fp32, nchw = binding.DTYPE_FP32, binding.LAYOUT_NCHW
    invalid = binding.CUDA_ERROR_INVALID_VALUE

    assert kernels.upsample(fake_pointer, fake_pointer, 7, nchw, (1, 1, 2, 2), (2, 2)) == invalid
    assert kernels.upsample(fake_pointer, fake_pointer, fp32, 5, (1, 1, 2, 2), (2, 2)) == invalid
    assert kernels.upsample(fake_pointer, fake_pointer, fp32, nchw, (1, 1, 2, 2), (0, 2)) == invalid
    assert (
        kernels.upsample(fake_pointer, fake_pointer, fp32, nchw, (1, -3, 2, 2), (2, 2)) == invalid
    )
    assert kernels.upsample(0, fake_pointer, fp32, nchw, (1, 1, 2, 2), (2, 2)) == invalid
    huge = (2**31 - 1, 2**31 - 1, 2**31 - 1, 2**31 - 1)
    assert kernels.upsample(fake_pointer, fake_pointer, fp32, nchw, huge, (2, 2)) == invalid
    # An empty tensor is valid and needs no GPU at all.
    assert kernels.upsample(0, 0, fp32, nchw, (0, 3, 4, 4), (2, 2)) == binding.CUDA_SUCCESS


def require_plugin_library(plugin_build: PluginBuild) -> Path:
    if plugin_build.tensorrt_root is None:
        pytest.skip("TensorRT headers absent: run `make trt-headers` or set TENSORRT_ROOT")
    return plugin_build.directory / "libunetkit_plugins.so"


def test_plugin_library_exports_the_loadlibrary_entry_points(plugin_build: PluginBuild) -> None:
    library = require_plugin_library(plugin_build)
    assert {"getCreators", "setLoggerFinder"} <= exported_symbols(library)
    assert "TensorRT " in plugin_build.configure_output
    assert " headers: " in plugin_build.configure_output


def test_plugin_classes_pass_their_selftest(plugin_build: PluginBuild) -> None:
    require_plugin_library(plugin_build)
    result = subprocess.run(
        [str(plugin_build.directory / "unetkit_plugin_selftest")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 failure(s)" in result.stdout


def test_plugin_library_keeps_its_cxx_classes_private(plugin_build: PluginBuild) -> None:
    library = require_plugin_library(plugin_build)
    leaked = [name for name in exported_symbols(library) if "unetkit6plugin" in name]
    assert leaked == []

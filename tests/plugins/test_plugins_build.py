"""Builds plugins/ with CMake and nvcc as CI does (no GPU needed): the kernels' shared and
static libraries and their C entry point; and, where TensorRT 11 headers are, the plugin
library (its exports, its self-test, its private classes).
"""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path
from types import ModuleType

from tests.plugins.cmake import PLUGINS, PluginBuild, configure, require_tools


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


def test_configure_without_tensorrt_headers_says_so_in_one_line(tmp_path: Path) -> None:
    require_tools()
    no_headers = tmp_path / "no-headers"
    no_headers.mkdir()
    result = configure(tmp_path / "build", f"-DTENSORRT_HEADERS={no_headers}")
    assert result.returncode == 0, result.stderr
    output = result.stdout

    mentions = [line for line in output.splitlines() if "TensorRT" in line]
    assert len(mentions) == 1, output
    assert "TensorRT headers not found: building the CUDA kernels only" in mentions[0]
    assert "-DTENSORRT_ROOT=" in mentions[0]
    assert not (tmp_path / "build" / "CMakeFiles" / "unetkit_plugins.dir").exists()


def test_a_tensorrt_root_without_tensorrt_stops_cmake_in_one_message(tmp_path: Path) -> None:
    """A named root is what the user meant: building the kernels alone would only fail later."""
    require_tools()
    empty_root = tmp_path / "not-tensorrt"
    empty_root.mkdir()

    result = configure(tmp_path / "build", f"-DTENSORRT_ROOT={empty_root}")

    assert result.returncode != 0
    message = " ".join(result.stderr.split())
    assert f"TENSORRT_ROOT={empty_root} has no NvInferRuntime.h in include/" in message
    assert "leave TENSORRT_ROOT empty" in message
    assert message.count("CMake Error") == 1
    assert not (tmp_path / "build" / "Makefile").exists()


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


def test_plugin_library_exports_the_loadlibrary_entry_points(plugin_build: PluginBuild) -> None:
    library = plugin_build.plugin
    assert {"getCreators", "setLoggerFinder"} <= exported_symbols(library)
    assert f"headers: {plugin_build.headers}" in plugin_build.configure_output


def test_plugin_classes_pass_their_selftest(plugin_build: PluginBuild) -> None:
    assert plugin_build.plugin.is_file()
    result = subprocess.run(
        [str(plugin_build.directory / "unetkit_plugin_selftest")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 failure(s)" in result.stdout


def test_plugin_library_keeps_its_cxx_classes_private(plugin_build: PluginBuild) -> None:
    library = plugin_build.plugin
    leaked = [name for name in exported_symbols(library) if "unetkit6plugin" in name]
    assert leaked == []

"""Which TensorRT headers and library plugins/CMakeLists.txt picks, with real CMake.

Simulated installs are folders of symlinks to the real TensorRT 11 headers and the real
TensorRT-RTX library: a Debian-style root (TENSORRT_ROOT=/usr layout), and a system prefix
beside fetched headers of another version. Configure only; nothing is compiled but the
version probe.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.helpers.engine import HEADERS_MISSING, header_version, rtx_library, tensorrt_headers
from tests.plugins.cmake import configure, require_tools

pytestmark = pytest.mark.trt_rtx

MULTIARCH = "x86_64-linux-gnu"


@pytest.fixture(scope="module")
def headers() -> Path:
    require_tools()
    found = tensorrt_headers(11)
    if found is None:
        pytest.skip(HEADERS_MISSING)
    return found


def link_headers(source: Path, target: Path, version: tuple[int, int, int] | None = None) -> Path:
    """target/ with a symlink per header of source/; with `version`, NvInferVersion.h is a
    copy that claims that TensorRT version instead."""
    target.mkdir(parents=True)
    for header in source.iterdir():
        if version is not None and header.name == "NvInferVersion.h":
            text = header.read_text()
            for part, number in zip(("MAJOR", "MINOR", "PATCH"), version, strict=True):
                text = re.sub(
                    rf"(#define TRT_{part}_ENTERPRISE +)\d+", rf"\g<1>{number}", text, count=1
                )
            (target / header.name).write_text(text)
        else:
            (target / header.name).symlink_to(header)
    return target


def version_text(headers: Path) -> str:
    return ".".join(str(part) for part in header_version(headers))


def test_a_debian_layout_root_is_searched_in_its_multiarch_folders(tmp_path, headers):
    root = tmp_path / "usr"
    include = link_headers(headers, root / "include" / MULTIARCH)
    lib = root / "lib" / MULTIARCH
    lib.mkdir(parents=True)
    # Only the runtime name, as the wheel and a runtime-only package ship it: no .so link.
    (lib / "libtensorrt_rtx.so.1").symlink_to(rtx_library())

    result = configure(tmp_path / "build", f"-DTENSORRT_ROOT={root}")

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"TensorRT {version_text(headers)} headers: {include}" in result.stdout
    assert f"library: {lib / 'libtensorrt_rtx.so.1'}" in result.stdout
    assert re.search(r"TensorRT-RTX \d+\.\d+\.\d+ library", result.stdout), result.stdout


def test_an_installed_tensorrt_wins_over_fetched_headers(tmp_path, headers):
    """Fetched headers are a fallback (PATHS): they must never shadow the system's."""
    system = tmp_path / "system"
    system_include = link_headers(headers, system / "include")
    fetched = link_headers(headers, tmp_path / "fetched" / "include", version=(10, 16, 0))

    result = configure(
        tmp_path / "build",
        f"-DCMAKE_SYSTEM_PREFIX_PATH={system}",
        f"-DTENSORRT_HEADERS={fetched}",
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"TensorRT {version_text(headers)} headers: {system_include}" in result.stdout
    assert str(fetched) not in result.stdout

    # Without an installed TensorRT, the fetched headers are used.
    alone = configure(tmp_path / "build-alone", f"-DTENSORRT_HEADERS={fetched}")
    assert alone.returncode == 0, alone.stdout + alone.stderr
    assert f"TensorRT 10.16.0 headers: {fetched}" in alone.stdout


def test_headers_of_another_tensorrt_than_the_library_stop_cmake(tmp_path, headers):
    """TensorRT-RTX has TensorRT 11's plugin ABI: 10.x headers would build a plugin that
    crashes while registering itself (seen: SIGSEGV with the 10.16 headers)."""
    older = link_headers(headers, tmp_path / "older" / "include", version=(10, 16, 0))

    result = configure(
        tmp_path / "build", f"-DTENSORRT_HEADERS={older}", f"-DTensorRT_LIBRARY={rtx_library()}"
    )

    assert result.returncode != 0
    message = " ".join(result.stderr.split())
    assert "TensorRT 10.16.0 headers" in message, result.stderr
    assert "do not match the TensorRT-RTX" in message and "use TensorRT 11.x headers" in message
    assert not (tmp_path / "build" / "Makefile").exists()

    library = f"-DTensorRT_LIBRARY={rtx_library()}"
    matching = configure(tmp_path / "build-ok", f"-DTENSORRT_HEADERS={headers}", library)
    assert matching.returncode == 0, matching.stdout + matching.stderr


def test_a_root_with_headers_but_no_library_stops_cmake(tmp_path, headers):
    root = tmp_path / "headers-only"
    link_headers(headers, root / "include")

    result = configure(tmp_path / "build", f"-DTENSORRT_ROOT={root}")

    assert result.returncode != 0
    message = " ".join(result.stderr.split())
    assert f"TENSORRT_ROOT={root} has no TensorRT library" in message
    assert "-DTensorRT_LIBRARY=<file>" in message
    assert not (tmp_path / "build" / "Makefile").exists()


def test_make_and_the_tests_find_the_headers_beside_a_clean_clone(tmp_path, headers):
    """CI clones into a folder with a copy of shared/ beside it: the clone finds
    shared/tensorrt/11.x/include there, or beside any folder above it."""
    finder = Path(__file__).resolve().parents[2] / "plugins" / "find_trt_headers.sh"
    clone_plugins = tmp_path / "runs" / "clean" / "plugins"
    clone_plugins.mkdir(parents=True)
    (clone_plugins / finder.name).write_bytes(finder.read_bytes())
    (clone_plugins / finder.name).chmod(0o755)
    shared = tmp_path / "shared" / "tensorrt" / "11.1"
    shared.mkdir(parents=True)
    (shared / "include").symlink_to(headers)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path / "home")}

    found = subprocess.run(
        [str(clone_plugins / finder.name)], capture_output=True, text=True, env=env, check=True
    )
    assert found.stdout.strip() == str(shared / "include")

    chosen = tmp_path / "chosen"
    link_headers(headers, chosen)
    explicit = subprocess.run(
        [str(clone_plugins / finder.name)],
        capture_output=True,
        text=True,
        env={**env, "TENSORRT_HEADERS": str(chosen)},
        check=True,
    )
    assert explicit.stdout.strip() == str(chosen)

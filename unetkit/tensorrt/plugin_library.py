"""Load libunetkit_plugins.so into the build the way Triton loads it into the server.

Triton's TensorRT backend only `dlopen`s a plugin library (RTLD_NOW | RTLD_LOCAL) and never
calls into it: the library registers its creator itself while it loads. The build does the
same, then asks the registry for the creator, so the route that serves is the route that
was built and checked (IPluginRegistry.load_library would register it through getCreators
instead).
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
from pathlib import Path
from types import ModuleType

from unetkit.core import UserError
from unetkit.tensorrt.build_report import REBUILD_HINT
from unetkit.tensorrt.plugin_rewrite import PLUGIN_OP
from unetkit.tensorrt.trt_module import builder_name, is_tensorrt_rtx

PLUGIN_VERSION = "1"
PLUGIN_NAMESPACE = ""
# dlclose would withdraw the creator registered on load: keep every handle for the process.
_LOADED: list[ctypes.CDLL] = []

_RTX_LIBRARY = "libtensorrt_rtx.so"


def _rtx_library_folder() -> Path | None:
    spec = importlib.util.find_spec("tensorrt_rtx_libs")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def rtx_plugin_layers_possible() -> str | None:
    """None when TensorRT-RTX's ONNX parser can add plugin layers, else the fix.

    The parser dlopens the unversioned libtensorrt_rtx.so (through LD_LIBRARY_PATH or the
    library's own folder) when it adds a plugin layer, and the process aborts without it;
    the wheel ships only libtensorrt_rtx.so.1.
    """
    folder = _rtx_library_folder()
    places = [Path(p) for p in os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep) if p]
    if folder is not None:
        places.append(folder)
    if any((place / _RTX_LIBRARY).exists() for place in places):
        return None
    where = folder or Path("<tensorrt_rtx_libs>")
    return (
        f"TensorRT-RTX's ONNX parser needs {_RTX_LIBRARY} to add plugin layers and there is "
        f"none: `ln -s libtensorrt_rtx.so.1 {where / _RTX_LIBRARY}` (`make venv` does this; "
        "a link, never a copy)"
    )


def plugin_registered(trt: ModuleType) -> bool:
    registry = trt.get_plugin_registry()
    return registry.get_creator(PLUGIN_OP, PLUGIN_VERSION, PLUGIN_NAMESPACE) is not None


def load_plugin_library(trt: ModuleType, library: Path) -> None:
    """dlopen the library as Triton does and check that its creator registered itself."""
    if is_tensorrt_rtx(trt):
        problem = rtx_plugin_layers_possible()
        if problem:
            raise UserError(problem)
    try:
        handle = ctypes.CDLL(str(library.resolve()), mode=os.RTLD_NOW | os.RTLD_LOCAL)
    except OSError as e:
        raise UserError(
            f"cannot load {library} ({e}): build it against this {builder_name(trt)}; "
            f"{REBUILD_HINT}"
        ) from e
    _LOADED.append(handle)
    if not plugin_registered(trt):
        raise UserError(
            f"{library} loaded but registered no {PLUGIN_OP} version {PLUGIN_VERSION} plugin "
            f"with {builder_name(trt)} {trt.__version__}: is it the kit's plugin library, "
            f"built against this TensorRT's headers? {REBUILD_HINT}"
        )

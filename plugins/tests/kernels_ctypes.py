"""ctypes binding of libunetkit_kernels.so's C entry point, shared by the GPU harness and CI."""

from __future__ import annotations

import ctypes
from pathlib import Path

DTYPE_FP32 = 0
DTYPE_FP16 = 1
LAYOUT_NCHW = 0
LAYOUT_NHWC = 1
CUDA_SUCCESS = 0
CUDA_ERROR_INVALID_VALUE = 1


class UpsampleKernels:
    """The kernels' shared library; `upsample` returns the cudaError_t as an int."""

    def __init__(self, library: Path) -> None:
        self._library = ctypes.CDLL(str(library))
        entry = self._library.unetkit_upsample_nearest
        entry.restype = ctypes.c_int
        entry.argtypes = [
            ctypes.c_void_p,
            ctypes.c_void_p,
            *[ctypes.c_int] * 8,
            ctypes.c_void_p,
        ]
        self._entry = entry

    def upsample(
        self,
        source: int,
        target: int,
        dtype: int,
        layout: int,
        shape: tuple[int, int, int, int],
        scale: tuple[int, int],
        stream: int = 0,
    ) -> int:
        """Upsamples device buffer `source` into `target`; shape is (n, c, h, w) in any layout."""
        n, c, h, w = shape
        return self._entry(source, target, dtype, layout, n, c, h, w, scale[0], scale[1], stream)

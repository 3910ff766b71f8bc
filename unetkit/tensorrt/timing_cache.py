"""TensorRT's timing cache: saved between builds, one file per TensorRT version and GPU
architecture, and replaced by a fresh cache whenever TensorRT refuses the saved one.

A cache from another GPU or TensorRT makes `set_timing_cache(..., ignore_mismatch=False)`
return False; building on without a cache would leave `get_timing_cache()` None after the
whole build. TensorRT-RTX keeps these calls as no-ops that still answer.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

FRESH_CACHE_NOTE = "does not fit this TensorRT and GPU: starting a fresh timing cache"


def timing_cache_path(directory: Path, builder: str, version: str, compute_capability: str) -> Path:
    """e.g. out/timing-caches/TensorRT-10.13.3.9-sm90.cache"""
    sm = "sm" + compute_capability.strip().replace(".", "")
    name = re.sub(r"[^A-Za-z0-9._-]", "_", f"{builder}-{version}-{sm}")
    return directory / f"{name}.cache"


def _quietly(call: Any, *args: Any) -> Any:
    # TensorRT-RTX marks the timing-cache calls deprecated no-ops: nothing for the user to do.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return call(*args)


def attach_timing_cache(config: Any, saved: bytes) -> str | None:
    """Give the builder configuration the saved cache, or a fresh one when TensorRT refuses
    it. Returns a note when it fell back, None otherwise."""
    if saved:
        cache = _quietly(config.create_timing_cache, saved)
        if cache is not None and _quietly(config.set_timing_cache, cache, False):
            return None
        note = f"the saved timing cache {FRESH_CACHE_NOTE}"
    else:
        note = None
    cache = _quietly(config.create_timing_cache, b"")
    if cache is None or not _quietly(config.set_timing_cache, cache, False):
        return "TensorRT refused an empty timing cache: building without one"
    return note


def serialized_timing_cache(config: Any) -> bytes | None:
    """The cache after a build, or None when the configuration holds none."""
    cache = _quietly(config.get_timing_cache)
    if cache is None:
        return None
    data = _quietly(cache.serialize)
    return bytes(data) if data is not None else None

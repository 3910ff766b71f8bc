"""Which TensorRT and which GPU a container has, found without importing TensorRT.

Standard library only (runs in the Triton container before tritonserver starts).
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from unetkit.core import UserError

# Where the NVIDIA containers install libnvinfer.so.<major>.<minor>.<patch>
LIBNVINFER_DIRS = (
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/local/tensorrt/lib",
    "/opt/tritonserver/backends/tensorrt",
)
_LIBNVINFER = re.compile(r"^libnvinfer\.so\.(\d+\.\d+\.\d+(?:\.\d+)?)$")


@dataclass(frozen=True)
class Gpu:
    name: str
    compute_capability: str


def parse_nvidia_smi(csv_text: str) -> Gpu:
    """First line of `nvidia-smi --query-gpu=name,compute_cap --format=csv,noheader`."""
    lines = [line for line in csv_text.splitlines() if line.strip()]
    if not lines:
        raise UserError("nvidia-smi lists no GPU: is the container started with a GPU reserved?")
    name, _, capability = lines[0].rpartition(",")
    if not re.fullmatch(r"\s*\d+\.\d+\s*", capability) or not name.strip():
        raise UserError(
            f"cannot read nvidia-smi output {lines[0]!r} (driver too old for compute_cap?)"
        )
    return Gpu(name=name.strip(), compute_capability=capability.strip())


def query_gpu() -> Gpu:
    try:
        result = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,compute_cap", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
    except FileNotFoundError as e:
        raise UserError("nvidia-smi not found: this container sees no NVIDIA GPU") from e
    except subprocess.CalledProcessError as e:
        raise UserError(f"nvidia-smi failed: {e.stderr.strip() or e.returncode}") from e
    return parse_nvidia_smi(result.stdout)


def tensorrt_version_from_libraries(dirs: tuple[str, ...] = LIBNVINFER_DIRS) -> str | None:
    """The newest libnvinfer.so.X.Y.Z found in `dirs`, as "X.Y.Z"."""
    found = []
    for directory in dirs:
        path = Path(directory)
        if not path.is_dir():
            continue
        for entry in path.iterdir():
            match = _LIBNVINFER.match(entry.name)
            if match:
                found.append(match.group(1))
    if not found:
        return None
    return max(found, key=lambda v: tuple(int(p) for p in v.split(".")))


def container_tensorrt_version() -> str:
    """TRT_VERSION as NVIDIA's containers set it, else the libnvinfer file name."""
    version = os.environ.get("TRT_VERSION") or tensorrt_version_from_libraries()
    if not version:
        raise UserError(
            "cannot tell this container's TensorRT version (no TRT_VERSION, no libnvinfer.so.X.Y.Z)"
        )
    return version

"""The CPU engines side by side, in-process: images/s, GMAC/s and the share of the machine's
nominal peak for each data type, and MASK agreement with ONNX Runtime fp32 (the reference).

Used by bench.py (make bench). Every engine runs the same workload (the sample images
padded as the model needs, batch 1) on every core, in slices taking turns, so that the
box's drift hits them alike.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from unetkit.core import INPUT_IMAGE, OUTPUT_MASK, load_samples, read_model_info
from unetkit.loadgen import request_batches
from unetkit.triton import BF16, INT8, Engine, EngineSpec

# Multiply-accumulates per core and cycle, by instruction set: two vector pipes of FMA for
# fp32 (8 lanes with AVX2, 16 with AVX-512); int8 as u8 x s8 dot products (VNNI: 4 per
# 32-bit lane in one instruction; AVX2 without VNNI needs vpmaddubsw + vpmaddwd, two
# instructions for 32 of them); bf16 as pairs per 32-bit lane (AVX-512 BF16).
MACS_PER_CYCLE = {
    "fp32": (("avx512f", 32), ("avx2", 16)),
    "int8": (("avx512_vnni", 128), ("avx_vnni", 64), ("avx2", 32)),
    "bf16": (("avx512_bf16", 64),),
}


def workload(model: Path, images: Path, batch_size: int = 1) -> list[np.ndarray]:
    """The IMAGE tensors every generator sends, in the order Locust sends them."""
    info = read_model_info(model)
    samples = load_samples(images, info.channels)
    return [pixels for pixels, _ in request_batches(samples, batch_size, info.height, info.width)]


def in_threads(work: Callable[[int], None], count: int) -> None:
    """work(0) ... work(count - 1) at once, one thread each; the first error is raised."""
    with ThreadPoolExecutor(count) as pool:
        list(pool.map(work, range(count)))


def images_per_s(engines: list[Engine], batches: list[np.ndarray], seconds: float) -> float:
    """The workload through `engines` in this process, one thread each, all at once, as the
    server's instances run it (both engines let go of the GIL while they run)."""
    images = [0] * len(engines)
    elapsed = [0.0] * len(engines)

    def run(i: int) -> None:
        index, started = i, time.perf_counter()
        while time.perf_counter() - started < seconds:
            pixels = batches[index % len(batches)]
            engines[i].run([OUTPUT_MASK], {INPUT_IMAGE: pixels})
            images[i] += len(pixels)
            index += 1
        elapsed[i] = time.perf_counter() - started

    in_threads(run, len(engines))
    return sum(images) / max(elapsed)


def alternating(
    engines: dict[EngineSpec, Engine], batches: list[np.ndarray], seconds: float, rounds: int = 3
) -> dict[EngineSpec, float]:
    """Each engine alone at batch 1, `rounds` slices each, taking turns: the mean images/s."""
    speeds: dict[EngineSpec, list[float]] = {spec: [] for spec in engines}
    for _ in range(rounds):
        for spec, engine in engines.items():
            speeds[spec].append(images_per_s([engine], batches, seconds / rounds))
    return {spec: float(np.mean(values)) for spec, values in speeds.items()}


def mask_agreement(reference: Engine, engine: Engine, batches: list[np.ndarray]) -> float:
    equal = total = 0
    for pixels in batches:
        (expected,) = reference.run([OUTPUT_MASK], {INPUT_IMAGE: pixels})
        (mask,) = engine.run([OUTPUT_MASK], {INPUT_IMAGE: pixels})
        equal += int(np.count_nonzero(mask == expected))
        total += mask.size
    return equal / total


def macs_per_image(onnx_path: Path, height: int, width: int) -> float:
    """Multiply-accumulates of the convolutions for one HxW image (they are nearly all of
    a U-Net's work), from ONNX shape inference at that size."""
    import onnx
    from onnx import numpy_helper, shape_inference

    model = onnx.load(str(onnx_path))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    for dim, value in zip(dims, (1, height, width), strict=False):
        dim.ClearField("dim_param")
        dim.dim_value = value
    model = shape_inference.infer_shapes(model)
    shapes = {
        v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
        for v in (*model.graph.value_info, *model.graph.output)
    }
    weights = {t.name: numpy_helper.to_array(t).shape for t in model.graph.initializer}
    # A QDQ model's weights reach the Conv through DequantizeLinear.
    for node in model.graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0] in weights:
            weights[node.output[0]] = weights[node.input[0]]
    macs = 0.0
    for node in model.graph.node:
        if node.op_type in ("Conv", "ConvTranspose") and node.input[1] in weights:
            kernel = weights[node.input[1]]
            out = shapes.get(node.output[0])
            if not out or not all(out):
                continue
            per_output = int(np.prod(kernel[1:]))  # C_in / groups x kh x kw
            if node.op_type == "ConvTranspose":  # every input pixel meets every weight
                inputs = shapes.get(node.input[0]) or out
                macs += float(np.prod(inputs)) * kernel[1] * int(np.prod(kernel[2:]))
            else:
                macs += float(np.prod(out)) * per_output
    return macs


def _cpuinfo() -> tuple[set[str], float]:
    text = Path("/proc/cpuinfo").read_text()
    flags = set(re.search(r"^flags\s*:(.*)$", text, re.M).group(1).split())
    mhz = float(re.search(r"^cpu MHz\s*:\s*([\d.]+)", text, re.M).group(1))
    return flags, mhz


def nominal_peak(data_type: str) -> tuple[float | None, str]:
    """Nominal peak MAC/s of this machine for `data_type` and how it was derived: cores x
    clock (/proc/cpuinfo) x MACs per cycle of the widest instruction set its flags list."""
    flags, mhz = _cpuinfo()
    cores = len(os.sched_getaffinity(0))
    for flag, per_cycle in MACS_PER_CYCLE[data_type]:
        if flag in flags:
            peak = cores * mhz * 1e6 * per_cycle
            return peak, f"{cores} cores x {mhz / 1000:.2f} GHz x {per_cycle} ({flag})"
    return None, f"no {data_type} vector instructions listed in /proc/cpuinfo"


def data_type(spec: EngineSpec) -> str:
    return "int8" if spec.precision == INT8 else "bf16" if spec.precision == BF16 else "fp32"

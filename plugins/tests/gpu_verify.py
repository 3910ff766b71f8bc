"""GPU verification of the upsampling kernels (run on a CUDA machine with PyTorch).

    python3 plugins/tests/gpu_verify.py check --lib build/libunetkit_kernels.so --out results/
    python3 plugins/tests/gpu_verify.py bench --lib build/libunetkit_kernels.so --out results/

`check` compares every output bit with torch.repeat_interleave on random bit patterns (NaNs and
infinities included) over random shapes, both dtypes, both layouts, aligned and misaligned
buffers, with poisoned outputs and guard regions around them. `bench` times the kernels, a
device-to-device copy of the same bytes and torch's nearest interpolate with CUDA events over
CUDA-graph replays, rotating buffers past the L2 cache, and reports medians.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import sys
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.nn.functional as F
from kernels_ctypes import (
    CUDA_ERROR_INVALID_VALUE,
    CUDA_SUCCESS,
    DTYPE_FP16,
    DTYPE_FP32,
    LAYOUT_NCHW,
    LAYOUT_NHWC,
    UpsampleKernels,
)

TORCH_DTYPES = {DTYPE_FP32: torch.float32, DTYPE_FP16: torch.float16}
BIT_DTYPES = {DTYPE_FP32: torch.int32, DTYPE_FP16: torch.int16}
LAYOUT_NAMES = {LAYOUT_NCHW: "NCHW", LAYOUT_NHWC: "NHWC"}
DTYPE_NAMES = {DTYPE_FP32: "fp32", DTYPE_FP16: "fp16"}
CHECK_SCALES = [(1, 1), (2, 2), (2, 3), (3, 1), (1, 2), (4, 4), (2, 5), (3, 3)]
GUARD_ELEMENTS = 64


def random_bits(count: int, dtype: int) -> torch.Tensor:
    """Random bit patterns of the element width, NaN and Inf encodings included."""
    bits = BIT_DTYPES[dtype]
    info = torch.iinfo(bits)
    values = torch.randint(info.min, info.max, (count,), dtype=torch.int64, device="cuda")
    return values.to(bits)


def reference(source: torch.Tensor, layout: int, scale: tuple[int, int]) -> torch.Tensor:
    h_axis, w_axis = (2, 3) if layout == LAYOUT_NCHW else (1, 2)
    return source.repeat_interleave(scale[0], dim=h_axis).repeat_interleave(scale[1], dim=w_axis)


def stored_shape(shape: tuple[int, int, int, int], layout: int) -> tuple[int, int, int, int]:
    n, c, h, w = shape
    return (n, c, h, w) if layout == LAYOUT_NCHW else (n, h, w, c)


def check_case(
    kernels: UpsampleKernels,
    dtype: int,
    layout: int,
    shape: tuple[int, int, int, int],
    scale: tuple[int, int],
    offset: int,
) -> dict:
    """One exactness case; `offset` elements shift both buffers off 16-byte alignment."""
    n, c, h, w = shape
    count = n * c * h * w
    out_count = count * scale[0] * scale[1]
    source_storage = random_bits(count + offset, dtype)
    source = source_storage[offset:].view(stored_shape(shape, layout))
    poison = -1  # all bits set: a NaN pattern that the random input rarely repeats in place
    target_storage = torch.full(
        (offset + out_count + GUARD_ELEMENTS,), poison, dtype=BIT_DTYPES[dtype], device="cuda"
    )
    target = target_storage[offset : offset + out_count]
    status = kernels.upsample(
        source.data_ptr(), target.data_ptr(), dtype, layout, shape, scale, stream=0
    )
    torch.cuda.synchronize()
    expected = reference(source, layout, scale).reshape(-1)
    mismatches = int((target != expected).sum().item()) if status == CUDA_SUCCESS else -1
    guards_intact = bool(
        (target_storage[:offset] == poison).all().item()
        and (target_storage[offset + out_count :] == poison).all().item()
    )
    return {
        "dtype": DTYPE_NAMES[dtype],
        "layout": LAYOUT_NAMES[layout],
        "shape": list(shape),
        "scale": list(scale),
        "offset_elements": offset,
        "status": status,
        "mismatches": mismatches,
        "guards_intact": guards_intact,
        "passed": status == CUDA_SUCCESS and mismatches == 0 and guards_intact,
    }


def check_cases(seed: int, random_count: int, large: bool) -> list[tuple]:
    rng = random.Random(seed)
    cases: list[tuple] = []
    for dtype in (DTYPE_FP32, DTYPE_FP16):
        for layout in (LAYOUT_NCHW, LAYOUT_NHWC):
            for scale in CHECK_SCALES:
                # Vector paths: widths and channels that are multiples of 8, aligned buffers.
                cases.append((dtype, layout, (2, 16, 8, 24), scale, 0))
                cases.append((dtype, layout, (3, 24, 5, 16), scale, 0))
                # Scalar paths: odd sizes, and the same aligned sizes shifted off alignment.
                cases.append((dtype, layout, (1, 3, 7, 5), scale, 0))
                cases.append((dtype, layout, (2, 16, 8, 24), scale, 1))
                for _ in range(random_count):
                    shape = (
                        rng.randint(1, 5),
                        rng.choice([1, 2, 3, 5, 8, 13, 16, 24, 32, 40]),
                        rng.randint(1, 37),
                        rng.choice([1, 3, 7, 8, 15, 16, 17, 31, 32, 64, 100]),
                    )
                    cases.append((dtype, layout, shape, scale, rng.choice([0, 0, 0, 1, 3])))
    if large:
        # 64-bit index path: 2^31 output elements, one past the 32-bit path's bound.
        for layout in (LAYOUT_NCHW, LAYOUT_NHWC):
            cases.append((DTYPE_FP16, layout, (2, 64, 2048, 2048), (2, 2), 0))
    return cases


def check_bad_arguments(kernels: UpsampleKernels) -> list[dict]:
    buffer = torch.empty(64, dtype=torch.float32, device="cuda")
    pointer = buffer.data_ptr()
    calls = {
        "unknown dtype": ((pointer, pointer, 7, LAYOUT_NCHW, (1, 1, 2, 2), (2, 2)), 1),
        "unknown layout": ((pointer, pointer, DTYPE_FP32, 9, (1, 1, 2, 2), (2, 2)), 1),
        "scale 0": ((pointer, pointer, DTYPE_FP32, LAYOUT_NCHW, (1, 1, 2, 2), (0, 2)), 1),
        "negative size": ((pointer, pointer, DTYPE_FP32, LAYOUT_NCHW, (1, -1, 2, 2), (2, 2)), 1),
        "null pointer": ((0, pointer, DTYPE_FP32, LAYOUT_NCHW, (1, 1, 2, 2), (2, 2)), 1),
        "empty tensor": ((0, 0, DTYPE_FP32, LAYOUT_NCHW, (0, 3, 2, 2), (2, 2)), 0),
    }
    results = []
    for name, (arguments, expected) in calls.items():
        status = kernels.upsample(*arguments)
        wanted = CUDA_ERROR_INVALID_VALUE if expected else CUDA_SUCCESS
        results.append({"case": name, "status": status, "passed": status == wanted})
    return results


def run_check(
    kernels: UpsampleKernels, out_dir: Path, seed: int, random_count: int, large: bool
) -> bool:
    torch.manual_seed(seed)
    results = [check_case(kernels, *case) for case in check_cases(seed, random_count, large)]
    bad_arguments = check_bad_arguments(kernels)
    failures = [r for r in results + bad_arguments if not r["passed"]]
    summary = {
        "cases": len(results),
        "bad_argument_cases": len(bad_arguments),
        "failures": len(failures),
        "output_elements_checked": sum(
            r["shape"][0]
            * r["shape"][1]
            * r["shape"][2]
            * r["shape"][3]
            * r["scale"][0]
            * r["scale"][1]
            for r in results
        ),
    }
    write_json(
        out_dir / "check.json",
        {
            "environment": environment(),
            "summary": summary,
            "failures": failures,
            "results": results,
            "bad_arguments": bad_arguments,
        },
    )
    print(
        f"check: {summary['cases']} shape cases + {summary['bad_argument_cases']} argument cases, "
        f"{summary['output_elements_checked']:,} output elements, {summary['failures']} failures"
    )
    for failure in failures[:20]:
        print("FAIL", failure)
    return not failures


@dataclass
class BenchRow:
    dtype: str
    layout: str
    n: int
    c: int
    h: int
    w: int
    scale: str
    bytes_moved: int
    kernel_us: float
    copy_us: float
    interpolate_us: float
    kernel_gbps: float
    copy_gbps: float
    interpolate_gbps: float
    kernel_vs_copy: float
    kernel_vs_interpolate: float


def time_launches(launch, sets: int, launches_per_graph: int, replays: int) -> float:
    """Median microseconds per launch; `launch(i)` runs on buffer set i.

    The launches are captured in a CUDA graph and replayed, so host launch overhead stays out
    of the numbers; if capture fails, they are timed as back-to-back eager launches instead.
    """
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        for i in range(sets):  # warm-up: module load, allocator, caches of torch
            launch(i)
    torch.cuda.synchronize()

    def eager() -> None:
        for i in range(launches_per_graph):
            launch(i % sets)

    run = eager
    try:
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, stream=stream):
            eager()
        run = graph.replay
    except RuntimeError as error:
        print(f"graph capture failed ({error}); timing eager launches", file=sys.stderr)
        torch.cuda.synchronize()
    for _ in range(3):
        run()
    torch.cuda.synchronize()
    samples = []
    for _ in range(replays):
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        run()
        end.record()
        end.synchronize()
        samples.append(start.elapsed_time(end) * 1000.0 / launches_per_graph)
    return statistics.median(samples)


def bench_case(
    kernels: UpsampleKernels,
    dtype: int,
    layout: int,
    shape: tuple[int, int, int, int],
    scale: tuple[int, int],
) -> BenchRow:
    n, c, h, w = shape
    torch_dtype = TORCH_DTYPES[dtype]
    element = torch.tensor([], dtype=torch_dtype).element_size()
    in_bytes = n * c * h * w * element
    out_bytes = in_bytes * scale[0] * scale[1]
    moved = in_bytes + out_bytes
    # Enough buffer sets that one graph's launches stream through more than 4x the L2 cache.
    l2_bytes = torch.cuda.get_device_properties(0).L2_cache_size
    sets = max(1, min(32, -(-4 * l2_bytes // moved)))
    memory_format = torch.contiguous_format if layout == LAYOUT_NCHW else torch.channels_last
    sources = [
        torch.randn(shape, dtype=torch_dtype, device="cuda").contiguous(memory_format=memory_format)
        for _ in range(sets)
    ]
    out_shape = (n, c, h * scale[0], w * scale[1])
    targets = [
        torch.empty(out_shape, dtype=torch_dtype, device="cuda").contiguous(
            memory_format=memory_format
        )
        for _ in range(sets)
    ]
    copy_elements = moved // 2 // element
    copy_sources = [
        torch.randn(copy_elements, dtype=torch_dtype, device="cuda") for _ in range(sets)
    ]
    copy_targets = [torch.empty_like(t) for t in copy_sources]
    current = torch.cuda.current_stream

    def kernel(i: int) -> None:
        status = kernels.upsample(
            sources[i].data_ptr(),
            targets[i].data_ptr(),
            dtype,
            layout,
            shape,
            scale,
            stream=current().cuda_stream,
        )
        if status != CUDA_SUCCESS:
            raise RuntimeError(f"unetkit_upsample_nearest returned {status}")

    def copy(i: int) -> None:
        copy_targets[i].copy_(copy_sources[i])

    def interpolate(i: int) -> None:
        F.interpolate(sources[i], scale_factor=scale, mode="nearest")

    launches = max(8, min(200, int(2e9 // moved)))
    kernel_us = time_launches(kernel, sets, launches, replays=25)
    # The timed outputs are the graph's last writes: check them too, cheaply.
    expected = F.interpolate(sources[(launches - 1) % sets], scale_factor=scale, mode="nearest")
    if not torch.equal(targets[(launches - 1) % sets], expected):
        raise RuntimeError(f"benchmark output differs from interpolate at {shape} {scale}")
    copy_us = time_launches(copy, sets, launches, replays=25)
    interpolate_us = time_launches(interpolate, sets, launches, replays=25)

    def gbps(us: float) -> float:
        return moved / (us * 1e-6) / 1e9

    return BenchRow(
        dtype=DTYPE_NAMES[dtype],
        layout=LAYOUT_NAMES[layout],
        n=n,
        c=c,
        h=h,
        w=w,
        scale=f"{scale[0]}x{scale[1]}",
        bytes_moved=moved,
        kernel_us=kernel_us,
        copy_us=copy_us,
        interpolate_us=interpolate_us,
        kernel_gbps=gbps(kernel_us),
        copy_gbps=gbps(copy_us),
        interpolate_gbps=gbps(interpolate_us),
        kernel_vs_copy=copy_us / kernel_us,
        kernel_vs_interpolate=interpolate_us / kernel_us,
    )


# U-Net decoder inputs (zhixuhao U-Net at 256x256: 1024ch@16 ... 64ch@128) plus extremes.
BENCH_CHANNELS_AND_SIZES = [(1024, 16), (512, 32), (256, 64), (128, 128), (64, 256), (16, 256)]
BENCH_BATCHES = [1, 8, 32]


def run_bench(kernels: UpsampleKernels, out_dir: Path, quick: bool) -> bool:
    torch.manual_seed(0)
    cases = [
        (dtype, layout, (n, c, s, s), (2, 2))
        for dtype in (DTYPE_FP16, DTYPE_FP32)
        for layout in (LAYOUT_NCHW, LAYOUT_NHWC)
        for n in (BENCH_BATCHES[:1] if quick else BENCH_BATCHES)
        for c, s in BENCH_CHANNELS_AND_SIZES
    ]
    cases += [
        (DTYPE_FP16, LAYOUT_NCHW, (8, 256, 64, 64), scale) for scale in [(2, 3), (3, 1), (4, 4)]
    ]
    rows = []
    for case in cases:
        row = bench_case(kernels, *case)
        torch.cuda.empty_cache()  # the case's buffers are gone; keep the pool from growing
        rows.append(row)
        print(format_row(row), flush=True)
    big = bench_copy_ceiling()
    write_json(
        out_dir / "bench.json",
        {"environment": environment(), "copy_ceiling_gbps": big, "rows": [asdict(r) for r in rows]},
    )
    (out_dir / "bench.md").write_text(markdown_table(rows, big))
    print(markdown_table(rows, big))
    return True


def bench_copy_ceiling() -> float:
    """Device-to-device copy of 1 GiB (read + written bytes) as the card's bandwidth ceiling."""
    source = torch.randn(1 << 28, device="cuda")
    target = torch.empty_like(source)
    us = time_launches(lambda _i: target.copy_(source), 1, 10, replays=15)
    return 2 * source.numel() * source.element_size() / (us * 1e-6) / 1e9


def format_row(row: BenchRow) -> str:
    return (
        f"| {row.dtype} | {row.layout} | {row.n}x{row.c}x{row.h}x{row.w} | {row.scale} | "
        f"{row.bytes_moved / 1e6:.1f} | {row.kernel_us:.1f} | {row.kernel_gbps:,.0f} | "
        f"{row.copy_gbps:,.0f} | {row.interpolate_gbps:,.0f} | {row.kernel_vs_copy:.0%} | "
        f"{row.kernel_vs_interpolate:.2f}x |"
    )


def markdown_table(rows: list[BenchRow], ceiling: float) -> str:
    env = environment()
    header = (
        f"Device: {env['device']} ({env['torch']}, CUDA {env['cuda']}), {env['date']}. "
        f"1 GiB device-to-device copy: {ceiling:,.0f} GB/s (read + written).\n\n"
        "| dtype | layout | N x C x H x W (input) | scale | MB moved | kernel µs | kernel GB/s | "
        "copy GB/s (same bytes) | interpolate GB/s | kernel / copy | speed-up vs interpolate |\n"
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|\n"
    )
    return header + "\n".join(format_row(r) for r in rows) + "\n"


def environment() -> dict:
    return {
        "device": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def write_json(path: Path, payload: dict) -> None:
    path.write_text(json.dumps(payload, indent=1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["check", "bench"])
    parser.add_argument("--lib", type=Path, required=True, help="path of libunetkit_kernels.so")
    parser.add_argument("--out", type=Path, required=True, help="folder for the JSON results")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument(
        "--random-cases", type=int, default=12, help="random shapes per dtype/layout/scale"
    )
    parser.add_argument("--no-large", action="store_true", help="skip the 13 GB 64-bit-index cases")
    parser.add_argument("--quick", action="store_true", help="batch 1 only (bench)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    kernels = UpsampleKernels(args.lib)
    if args.mode == "check":
        ok = run_check(kernels, args.out, args.seed, args.random_cases, not args.no_large)
    else:
        ok = run_bench(kernels, args.out, args.quick)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

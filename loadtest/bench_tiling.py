"""Benchmark client/segment.py's tiling against the CPU server, and its memory on a huge image.

    .venv/bin/python loadtest/bench_tiling.py            # make bench-tiling
    .venv/bin/python loadtest/bench_tiling.py --quick    # 2048 x 2048, 4096 x 4096 (smoke)

1. Starts the embedded Triton with the example model (configs/cpu.pbtxt) on free ports and
   warms it up with one tile.
2. Segments one --side x --side synthetic image (seed 3, never seen in training; an
   uncompressed TIFF) with the client: wall time, tiles/s, images/s, the client's peak RSS
   (the child's own ru_maxrss).
3. Cuts exactly the tiles the client sent (its own tiling module, its default tile and
   overlap) into a folder, and has Locust send them with the same batch size, concurrency
   and outputs (PROB) for as long as the client took: the time Locust needs for the same
   tiles is their count / Locust's tiles/s. The client's tiling overhead is its wall time
   over that, minus one (target: 10% or less).
4. Memory: a --memory-side x --memory-side random grey TIFF (uncompressed, then deflate,
   so memory-mapped and decoded whole) through an echo model (PROB = IMAGE / 255, no
   network) with the client's defaults, Gaussian blending included: its peak RSS against
   the image's size.

Writes loadtest/reports/bench_tiling.md and .json (--output); BENCHMARKS.md quotes them.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
import tritonclient.grpc as grpcclient
from PIL import Image

from unetkit.core import MODEL_NAME, UserError, run_cli, write_text_atomic
from unetkit.loadgen import run_locust
from unetkit.triton import TritonServer

ROOT = Path(__file__).resolve().parent.parent
CLIENT_DIR = ROOT / "client"
# client/ is a folder a user copies and example/ a folder of scripts, not packages
sys.path[:0] = [str(CLIENT_DIR), str(ROOT)]
import served_model  # noqa: E402
import tiling  # noqa: E402

from example import synthetic  # noqa: E402

ECHO_CONFIG = """\
name: "echo"
backend: "python"
max_batch_size: 8
input [ { name: "IMAGE" data_type: TYPE_UINT8 dims: [ -1, -1, 1 ] } ]
output [
  { name: "PROB" data_type: TYPE_FP32 dims: [ -1, -1, 1 ] },
  { name: "MASK" data_type: TYPE_UINT8 dims: [ -1, -1 ] }
]
instance_group [ { kind: KIND_CPU, count: 1 } ]
parameters [
  { key: "size_multiple_h" value: { string_value: "16" } },
  { key: "min_height" value: { string_value: "16" } },
  { key: "size_multiple_w" value: { string_value: "16" } },
  { key: "min_width" value: { string_value: "16" } },
  { key: "output_shrink_h" value: { string_value: "0" } },
  { key: "output_shrink_w" value: { string_value: "0" } },
  { key: "output_offset_h" value: { string_value: "0" } },
  { key: "output_offset_w" value: { string_value: "0" } },
  { key: "threshold" value: { string_value: "0.5" } },
  { key: "max_image_side" value: { string_value: "2048" } }
]
"""
ECHO_MODEL = '''\
"""The kit's contract without a network: PROB = IMAGE / 255, MASK = PROB > 0.5."""

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            image = pb_utils.get_input_tensor_by_name(request, "IMAGE").as_numpy()
            prob = image.astype(np.float32) / 255.0
            mask = (prob[..., 0] > 0.5).astype(np.uint8)
            tensors = [pb_utils.Tensor("PROB", prob), pb_utils.Tensor("MASK", mask)]
            responses.append(pb_utils.InferenceResponse(tensors))
        return responses
'''


# Runs the client and writes its own peak RSS and CPU time. Linux keeps the largest RSS a
# process had before exec() in its ru_maxrss: started straight from this (large) process,
# the client would be charged with the benchmark's memory; forked from a small one, not.
LAUNCHER = """\
import json, os, sys
child = os.fork()
if child == 0:
    os.execv(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(child, 0)
with open(sys.argv[1], "w") as out:
    json.dump({"maxrss_kib": usage.ru_maxrss, "cpu_seconds": usage.ru_utime + usage.ru_stime}, out)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repository", type=Path, default=ROOT / "model_repository")
    parser.add_argument("--side", type=int, default=8192, help="the served image's side")
    parser.add_argument("--tile", type=int, help="the client's --tile (default: its own)")
    parser.add_argument("--batch-size", type=int, default=1, help="tiles per request")
    parser.add_argument("--concurrency", type=int, default=2, help="requests in flight")
    parser.add_argument(
        "--memory-side", type=int, default=20_000, help="side of the echo image (0: skip)"
    )
    parser.add_argument(
        "--output", type=Path, default=ROOT / "loadtest" / "reports" / "bench_tiling.md",
        help="Markdown results; the raw results go beside it as .json",
    )  # fmt: skip
    parser.add_argument(
        "--repeats", type=int, default=2, help="client and Locust runs, taking turns"
    )
    parser.add_argument("--quick", action="store_true", help="small images (a smoke run)")
    args = parser.parse_args(argv)
    if args.quick:
        args.side, args.memory_side, args.repeats = 2048, 4096, 1
    if min(args.side, args.batch_size, args.concurrency, args.repeats) < 1:
        raise UserError("--side, --batch-size, --concurrency and --repeats must be at least 1")
    if args.memory_side < 0:
        raise UserError("--memory-side must be 0 (skip) or more")
    return args


def run_client(url: str, model: str, image: Path, out: Path, args: argparse.Namespace) -> dict:
    """One client run in a child process: its wall time, peak RSS and closing line."""
    command = [
        sys.executable, str(CLIENT_DIR / "segment.py"), "-u", url, "-m", model,
        "-b", str(args.batch_size), "--concurrency", str(args.concurrency),
        *(["--tile", str(args.tile)] if args.tile else []),
        "-o", str(out), str(image),
    ]  # fmt: skip
    with (
        tempfile.TemporaryFile("w+") as stdout,
        tempfile.TemporaryFile("w+") as stderr,
        tempfile.NamedTemporaryFile("r") as usage_file,
    ):
        started = time.perf_counter()
        child = subprocess.Popen(
            [sys.executable, "-c", LAUNCHER, usage_file.name, *command],
            stdout=stdout,
            stderr=stderr,
            text=True,
        )
        peaks = {"RssAnon": 0, "RssFile": 0}
        sampler = threading.Thread(target=sample_rss, args=(child.pid, peaks), daemon=True)
        sampler.start()
        child.wait()
        seconds = time.perf_counter() - started
        sampler.join()
        usage = json.loads(usage_file.read() or "{}")
        stdout.seek(0)
        stderr.seek(0)
        if child.returncode != 0 or not usage:
            raise UserError(f"the client failed ({child.returncode}): {stderr.read().strip()}")
        return {
            "command": shlex.join(command),
            "seconds": seconds,
            "cpu_seconds": usage["cpu_seconds"],
            "peak_rss_mib": usage["maxrss_kib"] / 1024,
            # sampled: memory the client allocated, and pages of mapped files (the input
            # TIFF, memory-mapped; the kernel drops them when it needs the room)
            "peak_anonymous_mib": peaks["RssAnon"] / 1024,
            "peak_file_mapped_mib": peaks["RssFile"] / 1024,
            "stdout": stdout.read().strip().splitlines(),
        }


def sample_rss(launcher: int, peaks: dict[str, int]) -> None:
    """Peak RssAnon and RssFile (KiB) of the launcher's child, sampled every 50 ms."""
    children = Path(f"/proc/{launcher}/task/{launcher}/children")
    while True:
        try:
            pid = int(children.read_text().split()[0])
            break
        except (OSError, IndexError, ValueError):
            if not Path(f"/proc/{launcher}").exists():
                return
            time.sleep(0.01)
    status = Path(f"/proc/{pid}/status")
    while True:
        try:
            lines = status.read_text().splitlines()
        except OSError:
            return
        fields = dict(line.split(":", 1) for line in lines if line.startswith("Rss"))
        if not fields:  # a zombie: it has exited
            return
        for key in peaks:
            peaks[key] = max(peaks[key], int(fields.get(key, "0 kB").split()[0]))
        time.sleep(0.05)


def the_clients_tiles(url: str, side: int, tile: int | None) -> tiling.Plan:
    """The plan the client makes for a side x side image on this server, by its own code."""
    with served_model.ServedModel(url, MODEL_NAME) as model:
        spec = model.read_spec()
    tiler = tiling.Tiler.for_model(
        spec.rules, spec.geometry, spec.max_side, spec.fixed_size, tile, tiling.DEFAULT_OVERLAP
    )
    return tiling.plan_image(side, side, tiler.rules, tiler.tile, spec.geometry, tiler.overlap)


def write_tiles(image: np.ndarray, plan: tiling.Plan, folder: Path) -> int:
    folder.mkdir()
    for index in range(plan.count):
        row, col = plan.position(index)
        rows, cols = plan.rows.input_indices(row), plan.cols.input_indices(col)
        Image.fromarray(image[np.ix_(rows, cols)]).save(folder / f"tile_{index:04d}.png")
    return plan.count


def locust_rate(url: str, tiles: Path, seconds: float, args: argparse.Namespace) -> dict:
    locust_args = [
        "--images", str(tiles), "--outputs", "PROB", "--validate-fraction", "0",
        "--batch-size", str(args.batch_size),
    ]  # fmt: skip
    run = run_locust(url, MODEL_NAME, args.concurrency, seconds, locust_args, seconds + 300)
    if not run.report or run.report.get("failures"):
        raise UserError(f"Locust failed ({run.exit_code}):\n{run.output[-2000:]}")
    report = run.report
    return {
        "seconds": report["seconds"],
        "requests": report["requests"],
        "tiles_per_s": report["requests_per_s"] * args.batch_size,
        "latency_ms": report["latency_ms"],
    }


def memory_runs(side: int, folder: Path, args: argparse.Namespace) -> list[dict]:
    repository = folder / "echo_repository"
    (repository / "echo" / "1").mkdir(parents=True)
    (repository / "echo" / "config.pbtxt").write_text(ECHO_CONFIG)
    (repository / "echo" / "1" / "model.py").write_text(ECHO_MODEL)
    pixels = np.random.default_rng(0).integers(0, 256, (side, side), dtype=np.uint8)
    rows = []
    log = folder / "echo_triton.log"
    with TritonServer.on_free_ports(repository, model_config_name=None, log_file=log) as server:
        for compression in (None, "zlib"):
            image = folder / f"random_{compression or 'raw'}.tif"
            tifffile.imwrite(
                image, pixels, compression=compression, tile=(512, 512) if compression else None
            )
            run = run_client(server.grpc_url, "echo", image, folder / "echo_out", args)
            del run["stdout"], run["command"]
            mask = tifffile.imread(folder / "echo_out" / f"{image.stem}.mask.tif")
            correct = bool(np.array_equal(mask > 0, pixels > 127))  # PROB = IMAGE / 255
            rows.append(
                {
                    "side": side,
                    "tiff": "deflate, tiled (decoded whole)"
                    if compression
                    else "uncompressed (memory-mapped)",
                    "image_mib": pixels.nbytes / 2**20,
                    **run,
                    "mask_correct": correct,
                }
            )
            print(f"memory: {rows[-1]}", flush=True)
            image.unlink()
    return rows


def machine() -> str:
    model = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        platform.processor(),
    )  # fmt: skip
    memory_kib = int(Path("/proc/meminfo").read_text().split()[1])
    return (
        f"{model}, {len(os.sched_getaffinity(0))} cores available, "
        f"{memory_kib / 2**20:.0f} GiB, Python {platform.python_version()}"
    )


def rss(run: dict[str, Any]) -> str:
    return (
        f"{run['peak_rss_mib']:.0f} MiB ({run['peak_anonymous_mib']:.0f} + "
        f"{run['peak_file_mapped_mib']:.0f})"
    )


def markdown(r: dict[str, Any]) -> str:
    lines = [
        f"### {r['side']} x {r['side']} grey image, example U-Net, CPU server",
        "",
        f"- Machine: {r['machine']}; load average before/after: {r['load_before']} / "
        f"{r['load_after']}",
        f"- Command: `{r['command']}`; client: `{r['client_runs'][0]['command']}`",
        f"- Date: {r['date']}",
        "",
        "| run | tiles | seconds | tiles/s | images/s | peak client RSS (anonymous + mapped "
        "file) | client CPU s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for turn, (c, lo) in enumerate(zip(r["client_runs"], r["locust_runs"], strict=True), 1):
        lines += [
            f"| {turn}. client/segment.py | {r['tiles']} | {c['seconds']:.1f} | "
            f"{r['tiles'] / c['seconds']:.2f} | {1 / c['seconds']:.4f} | {rss(c)} | "
            f"{c['cpu_seconds']:.1f} |",
            f"| {turn}. Locust, the same tiles | {r['tiles']} | "
            f"{r['tiles'] / lo['tiles_per_s']:.1f} | {lo['tiles_per_s']:.2f} | | | |",
        ]
    lines += [
        "",
        f"Tiling overhead (client time / Locust's time for the same tiles - 1, all runs): "
        f"{100 * r['overhead']:+.1f}% (target: at most +10%). Locust ran each turn as long as "
        "the client before it, with the same users, batch size and outputs (PROB); its time "
        "for the tiles is their count over its tiles/s.",
    ]
    if r["memory"]:
        lines += [
            "",
            "Memory, echo model (PROB = IMAGE / 255), client defaults (Gaussian blending):",
            "",
            "| image | TIFF | image size | peak client RSS (anonymous + mapped file) "
            "| RSS / image | seconds | mask right |",
            "|---|---|---:|---:|---:|---:|---|",
        ]
        for m in r["memory"]:
            lines.append(
                f"| {m['side']} x {m['side']} | {m['tiff']} | {m['image_mib']:.0f} MiB | "
                f"{rss(m)} | {m['peak_rss_mib'] / m['image_mib']:.2f} | "
                f"{m['seconds']:.1f} | {m['mask_correct']} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    load_before = " ".join(f"{x:.1f}" for x in os.getloadavg())
    with tempfile.TemporaryDirectory(prefix="unetkit-bench-tiling-") as temp:
        folder = Path(temp)
        image, _ = synthetic.make_sample(
            synthetic.sample_rng(synthetic.SAMPLES_SEED, 0), args.side, args.side
        )
        tifffile.imwrite(folder / "large.tif", image)
        log = args.output.parent / "bench_tiling_triton.log"
        with TritonServer.on_free_ports(args.repository, log_file=log) as server:
            url = server.grpc_url
            plan = the_clients_tiles(url, args.side, args.tile)
            tiles = write_tiles(image, plan, folder / "tiles")
            with grpcclient.InferenceServerClient(url) as client:  # warm-up: one tile
                warm = grpcclient.InferInput("IMAGE", [1, *plan.tile_shape, 1], "UINT8")
                warm.set_data_from_numpy(np.zeros((1, *plan.tile_shape, 1), np.uint8))
                client.infer(MODEL_NAME, [warm])
            print(f"client: {tiles} tiles of {plan.tile_shape}", flush=True)
            # Client and Locust take turns, so that a load that comes and goes on a shared
            # machine weighs on both alike.
            client_runs, locust_runs = [], []
            for _ in range(args.repeats):
                client_runs.append(
                    run_client(url, MODEL_NAME, folder / "large.tif", folder / "out", args)
                )
                print(f"client: {client_runs[-1]['stdout'][-1]}", flush=True)
                locust_runs.append(
                    locust_rate(url, folder / "tiles", client_runs[-1]["seconds"], args)
                )
                print(f"locust: {locust_runs[-1]['tiles_per_s']:.2f} tiles/s", flush=True)
        memory = memory_runs(args.memory_side, folder, args) if args.memory_side else []
    results = {
        "side": args.side,
        "tiles": tiles,
        "client_runs": client_runs,
        "locust_runs": locust_runs,
        # all client time over the time Locust needs for as many tiles
        "overhead": sum(c["seconds"] for c in client_runs)
        / sum(tiles / lo["tiles_per_s"] for lo in locust_runs)
        - 1,
        "memory": memory,
        "machine": machine(),
        "load_before": load_before,
        "load_after": " ".join(f"{x:.1f}" for x in os.getloadavg()),
        "command": "python loadtest/bench_tiling.py " + shlex.join(argv),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
    write_text_atomic(args.output.with_suffix(".json"), json.dumps(results, indent=2) + "\n")
    write_text_atomic(args.output, markdown(results))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    run_cli(main)

"""Check that model.plan will load here, before Triton tries: same TensorRT release and GPU
architecture as the build, the plan and plugin library the build report describes.

By default the TensorRT version and GPU are those of this machine (TRT_VERSION or the
libnvinfer file name, and nvidia-smi); the flags override them, e.g. to ask whether a plan
would load on another host.

Exit codes: 0 the plan fits, 2 it does not (one line says why and how to rebuild).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from unetkit.core import UserError, add_debug_flag, run_cli
from unetkit.tensorrt import Gpu, check_deployment, container_tensorrt_version, query_gpu

DEFAULT_PLAN = Path("model_repository/unet/1/model.plan")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="check_plan.py", description=__doc__.split("\n\n")[0], epilog="Exit codes: 0, 2."
    )
    parser.add_argument("plan", type=Path, nargs="?", default=DEFAULT_PLAN)
    parser.add_argument("--plugin-lib", type=Path, help="the plugin library Triton will load")
    parser.add_argument("--tensorrt-version", help="instead of this machine's, e.g. 10.13.3")
    parser.add_argument("--gpu-name", help="instead of nvidia-smi's, e.g. 'NVIDIA H100'")
    parser.add_argument("--compute-capability", help="instead of nvidia-smi's, e.g. 9.0")
    add_debug_flag(parser)
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if (args.gpu_name is None) != (args.compute_capability is None):
        raise UserError("give --gpu-name and --compute-capability together")
    version = args.tensorrt_version or container_tensorrt_version()
    gpu = Gpu(args.gpu_name, args.compute_capability) if args.gpu_name else query_gpu()
    for note in check_deployment(args.plan, args.plugin_lib, version, gpu):
        print(f"note: {note}", file=sys.stderr)
    print(f"{args.plan}: fits TensorRT {version} on {gpu.name} ({gpu.compute_capability})")
    return 0


def run() -> None:
    run_cli(main)


if __name__ == "__main__":
    run()

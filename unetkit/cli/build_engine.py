"""Build the TensorRT plan of a contract ONNX model, check it against ONNX Runtime, and write
model.plan, build_report.json and config.pbtxt for Triton.

    python build/build_engine.py model_repository/unet/1/model.onnx \\
        -o model_repository/unet/1/model.plan --precision fp16 \\
        --upsample plugin --plugin-lib plugins/build-trt26.10/libunetkit_plugins.so

Runs where TensorRT is (NVIDIA's TensorRT container: `docker compose run --rm build`).
Everything up to the TensorRT build also runs without it: `--dry-run` checks the ONNX,
the profile, the config and the plugin rewrite, and writes nothing. With
`--tensorrt-module tensorrt_rtx --compute-capability 8.9 --skip-check` TensorRT-RTX builds
the same network ahead of time with no GPU (CI does; its plans run on RTX GPUs only).

Exit codes: 0 built (or dry run passed, or the plan was up to date), 2 a problem with the
inputs (one line says which), 3 the engine disagrees with ONNX Runtime beyond the tolerance
(nothing written).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from unetkit import tensorrt
from unetkit.core import add_debug_flag, run_cli
from unetkit.pipelines import REPO_ROOT, PlanBuildOptions, build_plan


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="build_engine.py",
        description=__doc__.split("\n\n")[0],
        epilog="Exit codes: 0 ok, 2 bad input (one-line error), 3 engine outside tolerance.",
    )
    parser.add_argument("onnx", type=Path, help="ONNX model written by build/export_onnx.py")
    parser.add_argument("-o", "--output", type=Path, required=True, help="model.plan to write")
    for flag, what in (("min", "smallest"), ("opt", "tuned-for"), ("max", "largest")):
        parser.add_argument(
            f"--{flag}",
            metavar="NxHxW",
            help=f"{what} batch x height x width of the profile (default: from the model)",
        )
    parser.add_argument("--precision", choices=("fp32", "fp16"), default="fp32")
    parser.add_argument(
        "--upsample",
        choices=("native", "plugin"),
        default="native",
        help="native: TensorRT's resize layer; plugin: the kit's UnetkitUpsampleNearest",
    )
    parser.add_argument("--plugin-lib", type=Path, help="libunetkit_plugins.so (plugin mode)")
    parser.add_argument(
        "--tensorrt-module",
        choices=tensorrt.TENSORRT_MODULES,
        help=f"the builder: tensorrt (NVIDIA's TensorRT, default) or tensorrt_rtx "
        f"(TensorRT-RTX); default ${tensorrt.MODULE_ENV} or tensorrt",
    )
    parser.add_argument(
        "--compute-capability",
        metavar="X.Y",
        help="build ahead of time for this GPU architecture instead of the GPU nvidia-smi "
        "reports (TensorRT-RTX only: TensorRT builds for the GPU it runs on); needs --skip-check",
    )
    parser.add_argument(
        "--gpu-name", help="with --compute-capability: the GPU name the build report records"
    )
    parser.add_argument(
        "--timing-cache-dir",
        type=Path,
        help="folder of TensorRT timing caches, one file per TensorRT version and GPU "
        "architecture, read and updated",
    )
    parser.add_argument(
        "--if-changed",
        action="store_true",
        help="build only when the ONNX, TensorRT, GPU, plugin library or settings differ from "
        "build_report.json beside -o; otherwise keep the installed plan",
    )
    parser.add_argument(
        "--config",
        type=Path,
        help="config.pbtxt to write (default: the model directory's, above the version folder)",
    )
    parser.add_argument(
        "--keep-config",
        action="store_true",
        help="do not write config.pbtxt; refuse if its max_batch_size disagrees with --max",
    )
    parser.add_argument(
        "--samples", type=Path, default=REPO_ROOT / "samples", help="PNGs to check the engine on"
    )
    parser.add_argument(
        "--skip-check", action="store_true", help="skip the ONNX Runtime comparison"
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="check everything up to TensorRT; write nothing"
    )
    add_debug_flag(parser)
    return parser.parse_args(argv)


def options(args: argparse.Namespace) -> PlanBuildOptions:
    """The parsed flags as the pipeline's typed options."""
    fields = PlanBuildOptions.__dataclass_fields__
    return PlanBuildOptions(**{k: v for k, v in vars(args).items() if k in fields})


def main(argv: list[str]) -> int:
    return build_plan(options(parse_args(argv)), lambda line: print(line, flush=True))


def run() -> None:
    run_cli(main)


if __name__ == "__main__":
    run()

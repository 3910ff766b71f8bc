"""Build the TensorRT plan of a contract ONNX model, check it against ONNX Runtime, and write
model.plan, build_report.json and config.pbtxt for Triton.

    python build/build_engine.py model_repository/unet/1/model.onnx \\
        -o model_repository/unet/1/model.plan --precision fp16 \\
        --upsample plugin --plugin-lib plugins/build/libunetkit_plugins.so

Runs where TensorRT is (NVIDIA's TensorRT container: `docker compose run --rm build`).
Everything up to the TensorRT build also runs without it: `--dry-run` checks the ONNX,
the profile, the config and the plugin rewrite, and writes nothing.

Exit codes: 0 built (or dry run passed), 2 a problem with the inputs (one line says which),
3 the engine disagrees with ONNX Runtime beyond the tolerance (nothing written).
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import onnx

from unetkit import tensorrt
from unetkit.core import (
    ModelInfo,
    Profile,
    UserError,
    add_debug_flag,
    check_max_batch_size,
    contract_info,
    default_profile,
    load_onnx,
    load_samples,
    parse_shape,
    run_cli,
    sha256_file,
    validate_profile,
    write_bytes_atomic,
    write_text_atomic,
)
from unetkit.triton import read_max_batch_size, render_plan_config

EXIT_ACCURACY = 3
REPO_ROOT = Path(__file__).resolve().parents[2]
REWRITE_FIX = "re-export with build/export_onnx.py, or build with --upsample native"


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
        "--timing-cache", type=Path, help="TensorRT timing cache file, read and updated"
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


def resolve_profile(args: argparse.Namespace, defaults: Profile) -> Profile:
    return Profile(
        **{
            name: parse_shape(getattr(args, name), f"--{name}")
            if getattr(args, name)
            else getattr(defaults, name)
            for name in ("min", "opt", "max")
        }
    )


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.upsample == "plugin" and args.plugin_lib is None:
        raise UserError("--upsample plugin needs --plugin-lib PATH (libunetkit_plugins.so)")
    if args.plugin_lib is not None and not args.plugin_lib.is_file():
        raise UserError(f"{args.plugin_lib}: no such plugin library (build plugins/ first)")
    if args.output.suffix != ".plan":
        raise UserError(f"{args.output}: Triton's TensorRT backend loads model.plan")

    model = load_onnx(args.onnx)
    info = contract_info(model)
    profile = validate_profile(resolve_profile(args, default_profile(info)), info)
    config_path = args.config or args.output.parent.parent / "config.pbtxt"
    if args.keep_config:
        check_max_batch_size(profile, read_max_batch_size(config_path))
    print(f"profile: min {profile.min}, opt {profile.opt}, max {profile.max}")

    if args.upsample == "plugin":
        # Checked here already so a refused Resize is reported before any TensorRT work.
        rewrite = rewrite_upsampling_or_explain(model)
        print(f"plugin rewrite: {len(rewrite.replaced)} Resize node(s) -> UnetkitUpsampleNearest")
        for name, why in rewrite.kept_native:
            print(f"  kept native: {name} ({why})")
    if args.precision == "fp16":
        tensorrt.to_fp16(model)  # refused here rather than after TensorRT is set up
    if args.dry_run:
        print("dry run: inputs are consistent; nothing written")
        return 0
    return build(args, model, info, profile, config_path)


def build(
    args: argparse.Namespace,
    model: onnx.ModelProto,
    info: ModelInfo,
    profile: Profile,
    config_path: Path,
) -> int:
    trt = tensorrt.import_tensorrt()
    gpu = tensorrt.query_gpu()
    print(f"TensorRT {trt.__version__} on {gpu.name} (compute capability {gpu.compute_capability})")

    fp16_flag = args.precision == "fp16" and tensorrt.has_fp16_builder_flag(trt)
    if args.precision == "fp16" and not fp16_flag:
        print(
            f"TensorRT {trt.__version__} has no FP16 flag: building from an fp16 copy of the ONNX"
        )
        model = tensorrt.to_fp16(model)
    if args.upsample == "plugin":
        model = rewrite_upsampling_or_explain(model).model
    onnx_bytes = model.SerializeToString()
    if args.plugin_lib is not None:
        tensorrt.load_plugin_library(trt, args.plugin_lib)

    cache = (
        args.timing_cache.read_bytes() if args.timing_cache and args.timing_cache.is_file() else b""
    )
    started = time.monotonic()
    plan, new_cache = tensorrt.build_plan(trt, onnx_bytes, profile, info.channels, fp16_flag, cache)
    seconds = time.monotonic() - started
    print(f"built in {seconds:.1f} s ({len(plan) / 2**20:.1f} MiB)")
    if args.timing_cache:
        write_bytes_atomic(args.timing_cache, new_cache)

    checked = None
    if not args.skip_check:
        samples = load_samples(args.samples, info.channels)
        inputs, skipped = tensorrt.batches(samples, profile, info)
        for line in skipped:
            print(f"  sample left out: {line}")
        if not inputs:
            raise UserError(f"{args.samples}: no sample fits the engine: pass --samples DIR")
        runner = tensorrt.PlanRunner(trt, plan)
        try:
            checked = tensorrt.compare(
                tensorrt.onnxruntime_runner(args.onnx), runner, inputs, args.precision
            )
        finally:
            runner.close()
        print(tensorrt.describe(checked))
        if not checked.passed:
            print("error: engine outside tolerance; nothing written", file=sys.stderr)
            return EXIT_ACCURACY

    write_bytes_atomic(args.output, plan)
    report = tensorrt.BuildReport(
        tensorrt_version=trt.__version__,
        gpu_name=gpu.name,
        compute_capability=gpu.compute_capability,
        precision=args.precision,
        upsample=args.upsample,
        profile=profile.as_dict(),
        max_batch_size=profile.max.batch,
        onnx_sha256=sha256_file(args.onnx),
        plan_sha256=sha256_file(args.output),
        built_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        build_seconds=round(seconds, 1),
        plugin_library=str(args.plugin_lib) if args.plugin_lib else None,
        plugin_sha256=sha256_file(args.plugin_lib) if args.plugin_lib else None,
        accuracy=checked,
    )
    tensorrt.write_report(tensorrt.report_path_for(args.output), report)
    if not args.keep_config:
        write_text_atomic(config_path, render_plan_config(info, profile))
    print(f"wrote {args.output}, {tensorrt.report_path_for(args.output).name} and {config_path}")
    return 0


def rewrite_upsampling_or_explain(model: onnx.ModelProto) -> tensorrt.RewriteResult:
    try:
        return tensorrt.rewrite_upsampling(model)
    except UserError as e:
        raise UserError(f"{e}: {REWRITE_FIX}") from e


def run() -> None:
    run_cli(main)


if __name__ == "__main__":
    run()

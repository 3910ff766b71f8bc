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
import re
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType

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
    check_target_flags(args)

    model = load_onnx(args.onnx)
    info = contract_info(model)
    tensorrt.check_input_dtype(info)
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
    tensorrt.tensorrt_module_name(args.tensorrt_module)  # a bad UNETKIT_TENSORRT_MODULE, too
    if args.dry_run:
        print("dry run: inputs are consistent; nothing written")
        return 0
    return build(args, model, info, profile, config_path)


def check_target_flags(args: argparse.Namespace) -> None:
    if args.gpu_name is not None and args.compute_capability is None:
        raise UserError("--gpu-name goes with --compute-capability (an ahead-of-time build)")
    if args.compute_capability is None:
        return
    if not re.fullmatch(r"\d+\.\d+", args.compute_capability.strip()):
        raise UserError(f"--compute-capability {args.compute_capability!r}: write X.Y, e.g. 8.9")
    if not args.skip_check:
        raise UserError(
            "an ahead-of-time build (--compute-capability) cannot run the engine here: add "
            "--skip-check (the plan then goes unchecked), or build on the GPU that serves it"
        )


def target_gpu(trt: ModuleType, args: argparse.Namespace) -> tensorrt.Gpu:
    """The GPU the plan is built for: the one nvidia-smi reports, or --compute-capability."""
    if args.compute_capability is None:
        return tensorrt.query_gpu()
    if not tensorrt.is_tensorrt_rtx(trt):
        raise UserError(
            "TensorRT builds for the GPU it runs on: --compute-capability (an ahead-of-time "
            "build) needs --tensorrt-module tensorrt_rtx; leave it out to build for this GPU"
        )
    capability = args.compute_capability.strip()
    return tensorrt.Gpu(
        args.gpu_name or f"sm_{capability.replace('.', '')} ahead of time", capability
    )


def network_model(
    trt: ModuleType, model: onnx.ModelProto, precision: str, upsample: str
) -> onnx.ModelProto:
    """The ONNX the parser gets: an fp16 copy where TensorRT has no FP16 builder flag, and
    nearest upsampling rewritten into the kit's plugin for --upsample plugin."""
    if precision == "fp16" and not tensorrt.has_fp16_builder_flag(trt):
        print(
            f"{tensorrt.builder_name(trt)} {trt.__version__} has no FP16 flag: "
            "building from an fp16 copy of the ONNX"
        )
        model = tensorrt.to_fp16(model)
    if upsample == "plugin":
        model = rewrite_upsampling_or_explain(model).model
    return model


def build(
    args: argparse.Namespace,
    model: onnx.ModelProto,
    info: ModelInfo,
    profile: Profile,
    config_path: Path,
) -> int:
    trt = tensorrt.import_tensorrt(args.tensorrt_module)
    builder = tensorrt.builder_name(trt)
    gpu = target_gpu(trt, args)
    capability = gpu.compute_capability
    print(f"{builder} {trt.__version__} for {gpu.name} (compute capability {capability})")
    inputs = tensorrt.BuildInputs(
        builder=builder,
        tensorrt_version=trt.__version__,
        gpu_name=gpu.name,
        compute_capability=gpu.compute_capability,
        precision=args.precision,
        upsample=args.upsample,
        profile=profile.as_dict(),
        onnx_sha256=sha256_file(args.onnx),
        plugin_sha256=sha256_file(args.plugin_lib) if args.plugin_lib else None,
        checked=not args.skip_check,
    )
    if args.if_changed:
        reason = tensorrt.rebuild_reason(args.output, inputs)
        if reason is None:
            print(
                f"{args.output} is up to date (same ONNX, {builder}, GPU, plugin library and "
                "settings as its build report): not rebuilt"
            )
            return 0
        print(f"building: {reason}")

    onnx_bytes = network_model(trt, model, args.precision, args.upsample).SerializeToString()
    if args.plugin_lib is not None:
        tensorrt.load_plugin_library(trt, args.plugin_lib)
    cache_path = None
    if args.timing_cache_dir:
        cache_path = tensorrt.timing_cache_path(
            args.timing_cache_dir, builder, trt.__version__, gpu.compute_capability
        )
    saved_cache = cache_path.read_bytes() if cache_path and cache_path.is_file() else b""

    started = time.monotonic()
    setup = tensorrt.prepare_build(
        trt, onnx_bytes, profile, info.channels, args.precision, gpu, saved_cache
    )
    for note in setup.notes:
        print(f"note: {cache_path}: {note}")
    layers = tensorrt.upsampling_layers(trt, setup.network)
    print(
        f"network: {setup.network.num_layers} layers; upsampling: {layers['resize']} resize, "
        f"{layers['plugin']} plugin layer(s)"
    )
    built = tensorrt.build_serialized(setup)
    seconds = time.monotonic() - started
    print(f"built in {seconds:.1f} s ({len(built.plan) / 2**20:.1f} MiB)")
    if cache_path and built.timing_cache is not None:
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(cache_path, built.timing_cache)

    checked = None
    if not args.skip_check:
        checked = check_engine(args, trt, built.plan, info, profile)
        if not checked.passed:
            print("error: engine outside tolerance; nothing written", file=sys.stderr)
            return EXIT_ACCURACY

    write_bytes_atomic(args.output, built.plan)
    report = inputs.report(
        max_batch_size=profile.max.batch,
        plan_sha256=sha256_file(args.output),
        built_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        build_seconds=round(seconds, 1),
        plugin_library=str(args.plugin_lib) if args.plugin_lib else None,
        accuracy=checked,
    )
    tensorrt.write_report(tensorrt.report_path_for(args.output), report)
    if not args.keep_config:
        write_text_atomic(config_path, render_plan_config(info, profile))
    print(f"wrote {args.output}, {tensorrt.report_path_for(args.output).name} and {config_path}")
    return 0


def check_engine(
    args: argparse.Namespace, trt: ModuleType, plan: bytes, info: ModelInfo, profile: Profile
) -> tensorrt.Accuracy:
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
    return checked


def rewrite_upsampling_or_explain(model: onnx.ModelProto) -> tensorrt.RewriteResult:
    try:
        return tensorrt.rewrite_upsampling(model)
    except UserError as e:
        raise UserError(f"{e}: {REWRITE_FIX}") from e


def run() -> None:
    run_cli(main)


if __name__ == "__main__":
    run()

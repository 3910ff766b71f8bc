"""The GPU plan build: a contract ONNX model built into a TensorRT plan for Triton, checked
against ONNX Runtime on sample images, and installed with its build report and config.pbtxt
(or refused, with nothing written). Options come typed (PlanBuildOptions); progress goes to
`log`, which the command line prints.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType

import onnx

from unetkit import tensorrt
from unetkit.core import (
    ModelInfo,
    Profile,
    UserError,
    check_max_batch_size,
    contract_info,
    default_profile,
    load_onnx,
    load_samples,
    parse_shape,
    sha256_file,
    validate_profile,
    write_bytes_atomic,
    write_text_atomic,
)
from unetkit.triton import read_max_batch_size, render_plan_config

EXIT_ACCURACY = 3
REPO_ROOT = Path(__file__).resolve().parents[2]
REWRITE_FIX = "re-export with build/export_onnx.py, or build with --upsample native"


@dataclass(frozen=True)
class PlanBuildOptions:
    """What build/build_engine.py's flags say (its --help explains each)."""

    onnx: Path
    output: Path
    min: str | None = None  # NxHxW; None: from the model
    opt: str | None = None
    max: str | None = None
    precision: str = "fp32"
    upsample: str = "native"
    plugin_lib: Path | None = None
    tensorrt_module: str | None = None
    compute_capability: str | None = None
    gpu_name: str | None = None
    timing_cache_dir: Path | None = None
    if_changed: bool = False
    config: Path | None = None
    keep_config: bool = False
    samples: Path = REPO_ROOT / "samples"
    skip_check: bool = False
    dry_run: bool = False


Log = Callable[[str], None]


def resolve_profile(args: PlanBuildOptions, defaults: Profile) -> Profile:
    return Profile(
        **{
            name: parse_shape(getattr(args, name), f"--{name}")
            if getattr(args, name)
            else getattr(defaults, name)
            for name in ("min", "opt", "max")
        }
    )


def build_plan(args: PlanBuildOptions, log: Log = print) -> int:
    """Check every input, then build, check and install the plan; the exit code."""
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
    log(f"profile: min {profile.min}, opt {profile.opt}, max {profile.max}")

    if args.upsample == "plugin":
        # Checked here already so a refused Resize is reported before any TensorRT work.
        rewrite = rewrite_upsampling_or_explain(model)
        log(f"plugin rewrite: {len(rewrite.replaced)} Resize node(s) -> UnetkitUpsampleNearest")
        for name, why in rewrite.kept_native:
            log(f"  kept native: {name} ({why})")
    if args.precision == "fp16":
        tensorrt.to_fp16(model)  # refused here rather than after TensorRT is set up
    tensorrt.tensorrt_module_name(args.tensorrt_module)  # a bad UNETKIT_TENSORRT_MODULE, too
    if args.dry_run:
        log("dry run: inputs are consistent; nothing written")
        return 0
    return _build(args, model, info, profile, config_path, log)


def check_target_flags(args: PlanBuildOptions) -> None:
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


def target_gpu(trt: ModuleType, args: PlanBuildOptions) -> tensorrt.Gpu:
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
    trt: ModuleType, model: onnx.ModelProto, precision: str, upsample: str, log: Log = print
) -> onnx.ModelProto:
    """The ONNX the parser gets: an fp16 copy where TensorRT has no FP16 builder flag, and
    nearest upsampling rewritten into the kit's plugin for --upsample plugin."""
    if precision == "fp16" and not tensorrt.has_fp16_builder_flag(trt):
        log(
            f"{tensorrt.builder_name(trt)} {trt.__version__} has no FP16 flag: "
            "building from an fp16 copy of the ONNX"
        )
        model = tensorrt.to_fp16(model)
    if upsample == "plugin":
        model = rewrite_upsampling_or_explain(model).model
    return model


def _build(
    args: PlanBuildOptions,
    model: onnx.ModelProto,
    info: ModelInfo,
    profile: Profile,
    config_path: Path,
    log: Log,
) -> int:
    trt = tensorrt.import_tensorrt(args.tensorrt_module)
    builder = tensorrt.builder_name(trt)
    gpu = target_gpu(trt, args)
    capability = gpu.compute_capability
    log(f"{builder} {trt.__version__} for {gpu.name} (compute capability {capability})")
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
            log(
                f"{args.output} is up to date (same ONNX, {builder}, GPU, plugin library and "
                "settings as its build report): not rebuilt"
            )
            return 0
        log(f"building: {reason}")

    onnx_bytes = network_model(trt, model, args.precision, args.upsample, log).SerializeToString()
    if args.plugin_lib is not None:
        tensorrt.load_plugin_library(trt, args.plugin_lib)
    started = time.monotonic()
    built = _build_with_cache(args, trt, onnx_bytes, profile, info, gpu, log)
    seconds = time.monotonic() - started
    log(f"built in {seconds:.1f} s ({len(built.plan) / 2**20:.1f} MiB)")

    checked = None
    if not args.skip_check:
        checked = check_engine(args, trt, built.plan, info, profile, log)
        if not checked.passed:
            log("error: engine outside tolerance; nothing written")  # the exit code says so
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
    log(f"wrote {args.output}, {tensorrt.report_path_for(args.output).name} and {config_path}")
    return 0


def _build_with_cache(
    args: PlanBuildOptions,
    trt: ModuleType,
    onnx_bytes: bytes,
    profile: Profile,
    info: ModelInfo,
    gpu: tensorrt.Gpu,
    log: Log,
) -> tensorrt.BuiltPlan:
    """TensorRT's build, starting from the timing cache of this TensorRT and GPU
    architecture where there is one, and leaving it updated."""
    builder = tensorrt.builder_name(trt)
    cache_path = None
    if args.timing_cache_dir:
        cache_path = tensorrt.timing_cache_path(
            args.timing_cache_dir, builder, trt.__version__, gpu.compute_capability
        )
    saved_cache = cache_path.read_bytes() if cache_path and cache_path.is_file() else b""
    setup = tensorrt.prepare_build(
        trt, onnx_bytes, profile, info.channels, args.precision, gpu, saved_cache
    )
    for note in setup.notes:
        log(f"note: {cache_path}: {note}")
    layers = tensorrt.upsampling_layers(trt, setup.network)
    log(
        f"network: {setup.network.num_layers} layers; upsampling: {layers['resize']} resize, "
        f"{layers['plugin']} plugin layer(s)"
    )
    built = tensorrt.build_serialized(setup)
    if cache_path and built.timing_cache is not None:
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(cache_path, built.timing_cache)
    return built


def check_engine(
    args: PlanBuildOptions,
    trt: ModuleType,
    plan: bytes,
    info: ModelInfo,
    profile: Profile,
    log: Log,
) -> tensorrt.Accuracy:
    samples = load_samples(args.samples, info.channels)
    inputs, skipped = tensorrt.batches(samples, profile, info)
    for line in skipped:
        log(f"  sample left out: {line}")
    if not inputs:
        raise UserError(f"{args.samples}: no sample fits the engine: pass --samples DIR")
    runner = tensorrt.PlanRunner(trt, plan)
    try:
        checked = tensorrt.compare(
            tensorrt.onnxruntime_runner(args.onnx), runner, inputs, args.precision
        )
    finally:
        runner.close()
    log(tensorrt.describe(checked))
    return checked


def rewrite_upsampling_or_explain(model: onnx.ModelProto) -> tensorrt.RewriteResult:
    try:
        return tensorrt.rewrite_upsampling(model)
    except UserError as e:
        raise UserError(f"{e}: {REWRITE_FIX}") from e

"""Parse a contract ONNX model into a TensorRT network and build the plan: the kit's profile,
precision, target GPU and timing cache.

The TensorRT module is the first argument of every function (see trt_module): NVIDIA's
`tensorrt` in the container, `tensorrt_rtx` in CI. `prepare_build` stops before the build,
so a caller can see the network and configuration the build will compile.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from unetkit.core import INPUT_IMAGE, ModelInfo, Profile, UserError
from unetkit.tensorrt.gpu_env import Gpu
from unetkit.tensorrt.plugin_rewrite import PLUGIN_OP
from unetkit.tensorrt.timing_cache import attach_timing_cache, serialized_timing_cache
from unetkit.tensorrt.trt_module import builder_name, has_fp16_builder_flag, is_tensorrt_rtx

PLUGIN_HINT = " (pass --plugin-lib with the kit's plugin library)"
REFUSED_HINT = " (the plugin refused the node's attributes: its log line above says why)"
# onnx-tensorrt's words when no creator is registered for an op it does not know, and when a
# registered creator returns no plugin (createPlugin refused the node's attributes).
_PLUGIN_NOT_FOUND = "Plugin not found"
_PLUGIN_REFUSED = "Could not create the plugin"


@dataclass
class EngineBuild:
    """A parsed network and its builder configuration, ready to build."""

    trt: ModuleType
    logger: Any
    builder: Any
    network: Any
    # The parser owns the weights the network points to: it must live until the build.
    parser: Any
    config: Any
    optimization_profile: Any
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class BuiltPlan:
    plan: bytes
    timing_cache: bytes | None


def _parse(trt: ModuleType, network: Any, logger: Any, onnx_bytes: bytes) -> Any:
    parser = trt.OnnxParser(network, logger)
    if parser.parse(onnx_bytes):
        return parser
    errors = [str(parser.get_error(i)).replace("\n", " ") for i in range(parser.num_errors)]
    first = errors[0] if errors else "?"
    hint = ""
    if PLUGIN_OP in first and _PLUGIN_NOT_FOUND in first:
        hint = PLUGIN_HINT
    elif PLUGIN_OP in first and _PLUGIN_REFUSED in first:
        hint = REFUSED_HINT
    raise UserError(f"{builder_name(trt)}'s ONNX parser refused the model: {first}{hint}")


def check_input_dtype(info: ModelInfo) -> None:
    """TensorRT has no 16-bit integer tensors: its ONNX parser refuses a uint16 IMAGE
    ("Unsupported ONNX data type: UINT16"). uint8 and float32 build."""
    if info.input_dtype == "uint16":
        raise UserError(
            "TensorRT has no uint16 tensors: export the model with --input-dtype float32 for "
            "the GPU route (clients then send 0..1, 16-bit images lose nothing)"
        )


def configure_precision(trt: ModuleType, config: Any, precision: str) -> None:
    if precision == "fp32":
        # TF32 is on by default and rounds convolution inputs to 10 mantissa bits: an
        # emulation of the example U-Net gives max |dPROB| 3.0e-3, over the fp32 gate of 1e-3.
        config.clear_flag(trt.BuilderFlag.TF32)
    elif precision == "fp16":
        if has_fp16_builder_flag(trt):
            config.set_flag(trt.BuilderFlag.FP16)
    else:
        raise UserError(f"unknown precision {precision!r}: use fp32 or fp16")


def compute_capability_target(trt: ModuleType, compute_capability: str) -> Any:
    """TensorRT-RTX's ComputeCapability for "8.9" (SM89); one line if it has none."""
    name = "SM" + compute_capability.strip().replace(".", "")
    target = getattr(trt.ComputeCapability, name, None)
    if target is None:
        known = sorted(
            (n for n in trt.ComputeCapability.__members__ if n.startswith("SM")),
            key=lambda n: int(n[2:]),
        )
        raise UserError(
            f"TensorRT-RTX {trt.__version__} cannot build for compute capability "
            f"{compute_capability} ({name}): it builds for {', '.join(known)}"
        )
    return target


def configure_target(trt: ModuleType, config: Any, gpu: Gpu) -> None:
    """TensorRT builds for the GPU it runs on. TensorRT-RTX compiles for the compute
    capabilities it is given, with or without that GPU present."""
    if not is_tensorrt_rtx(trt):
        return
    target = compute_capability_target(trt, gpu.compute_capability)
    config.num_compute_capabilities = 1  # before set_compute_capability: the index must exist
    if not config.set_compute_capability(target, 0):
        raise UserError(f"TensorRT-RTX refused compute capability {gpu.compute_capability}")


def prepare_build(
    trt: ModuleType,
    onnx_bytes: bytes,
    profile: Profile,
    channels: int,
    precision: str,
    gpu: Gpu,
    timing_cache: bytes = b"",
) -> EngineBuild:
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    # Explicit batch is the only mode since TensorRT 10: no creation flag needed.
    network = builder.create_network(0)
    parser = _parse(trt, network, logger, onnx_bytes)

    config = builder.create_builder_config()
    configure_precision(trt, config, precision)
    configure_target(trt, config, gpu)
    notes = []
    note = attach_timing_cache(config, timing_cache)
    if note:
        notes.append(note)

    optimization = builder.create_optimization_profile()
    optimization.set_shape(
        INPUT_IMAGE,
        profile.min.image_shape(channels),
        profile.opt.image_shape(channels),
        profile.max.image_shape(channels),
    )
    config.add_optimization_profile(optimization)
    return EngineBuild(trt, logger, builder, network, parser, config, optimization, notes)


def build_serialized(build: EngineBuild) -> BuiltPlan:
    serialized = build.builder.build_serialized_network(build.network, build.config)
    if serialized is None:
        raise UserError(
            f"{builder_name(build.trt)} could not build the engine: see its log lines above"
        )
    return BuiltPlan(bytes(serialized), serialized_timing_cache(build.config))


def upsampling_layers(trt: ModuleType, network: Any) -> Counter[str]:
    """How the network upsamples: TensorRT resize layers and plugin layers, counted."""
    kinds = {trt.LayerType.RESIZE: "resize", trt.LayerType.PLUGIN_V3: "plugin"}
    return Counter(
        kinds[layer.type]
        for layer in (network.get_layer(i) for i in range(network.num_layers))
        if layer.type in kinds
    )

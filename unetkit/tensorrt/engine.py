"""Every call into TensorRT: load the plugin library, build a plan from ONNX, run a plan.

Only runs inside NVIDIA's TensorRT container on a GPU (`docker compose run build`); this
repository's CI has neither, so this module is not executed there. TensorRT is imported
by `import_tensorrt()` only, so the rest of the kit works without it.

Precision: TensorRT 10 builds fp16 from an fp32 network with BuilderFlag.FP16. TensorRT 11
removed that flag (every network is strongly typed), so there build_engine.py hands the
parser an fp16 copy of the ONNX (unetkit.fp16_onnx) instead.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from unetkit.core import INPUT_IMAGE, OUTPUT_MASK, OUTPUT_PROB, Profile, UserError
from unetkit.tensorrt.accuracy import Outputs
from unetkit.tensorrt.plugin_rewrite import PLUGIN_OP

CONTAINER_HINT = "run the build in NVIDIA's TensorRT container: `docker compose run --rm build`"


def import_tensorrt() -> ModuleType:
    try:
        import tensorrt
    except ImportError as e:
        raise UserError(f"TensorRT is not installed in this Python: {CONTAINER_HINT}") from e
    return tensorrt


def has_fp16_builder_flag(trt: ModuleType) -> bool:
    return hasattr(trt.BuilderFlag, "FP16")


def load_plugin_library(trt: ModuleType, library: Path) -> None:
    """Register the library's creators (through its getCreators entry point) and check that
    the upsampling plugin is among them, before the parser needs it."""
    registry = trt.get_plugin_registry()
    if not registry.load_library(str(library)):
        raise UserError(
            f"TensorRT could not load {library}: was it built in this container "
            "(same TensorRT version)? rebuild it with `docker compose run --rm build`"
        )
    if registry.get_creator(PLUGIN_OP, "1", "") is None:
        raise UserError(f"{library} loaded but registers no {PLUGIN_OP} version 1 plugin")


def _parse(trt: ModuleType, network: Any, logger: Any, onnx_bytes: bytes) -> None:
    parser = trt.OnnxParser(network, logger)
    if parser.parse(onnx_bytes):
        return
    errors = [str(parser.get_error(i)).replace("\n", " ") for i in range(parser.num_errors)]
    hint = ""
    if any(PLUGIN_OP in e for e in errors):
        hint = " (pass --plugin-lib with the kit's plugin library)"
    raise UserError(
        f"TensorRT's ONNX parser refused the model: {errors[0] if errors else '?'}{hint}"
    )


def build_plan(
    trt: ModuleType,
    onnx_bytes: bytes,
    profile: Profile,
    channels: int,
    fp16_flag: bool,
    timing_cache: bytes,
) -> tuple[bytes, bytes]:
    """Return the serialized plan and the updated timing cache."""
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    # Explicit batch is the only mode since TensorRT 10: no creation flag needed.
    network = builder.create_network(0)
    _parse(trt, network, logger, onnx_bytes)

    config = builder.create_builder_config()
    if fp16_flag:
        config.set_flag(trt.BuilderFlag.FP16)
    cache = config.create_timing_cache(timing_cache)
    config.set_timing_cache(cache, ignore_mismatch=False)

    optimization = builder.create_optimization_profile()
    optimization.set_shape(
        INPUT_IMAGE,
        profile.min.image_shape(channels),
        profile.opt.image_shape(channels),
        profile.max.image_shape(channels),
    )
    config.add_optimization_profile(optimization)

    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise UserError("TensorRT could not build the engine: see its log lines above")
    return bytes(serialized), bytes(config.get_timing_cache().serialize())


class PlanRunner:
    """Runs a serialized plan on batches of IMAGE with execute_async_v3."""

    def __init__(self, trt: ModuleType, plan: bytes) -> None:
        from polygraphy import cuda

        self._trt = trt
        self._cuda = cuda
        self._runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self._engine = self._runtime.deserialize_cuda_engine(plan)
        if self._engine is None:
            raise UserError("TensorRT could not deserialize the plan it just built")
        self._context = self._engine.create_execution_context()
        self._stream = cuda.Stream()

    def __call__(self, images: np.ndarray) -> Outputs:
        cuda, trt, context = self._cuda, self._trt, self._context
        images = np.ascontiguousarray(images)
        with cuda.DeviceArray(shape=images.shape, dtype=np.uint8) as device_in:
            device_in.copy_from(images, self._stream)
            context.set_input_shape(INPUT_IMAGE, images.shape)
            context.set_tensor_address(INPUT_IMAGE, device_in.ptr)
            outputs = {}
            for name in (OUTPUT_PROB, OUTPUT_MASK):
                shape = tuple(context.get_tensor_shape(name))
                dtype = np.dtype(trt.nptype(self._engine.get_tensor_dtype(name)))
                outputs[name] = (cuda.DeviceArray(shape=shape, dtype=dtype), np.empty(shape, dtype))
                context.set_tensor_address(name, outputs[name][0].ptr)
            try:
                if not context.execute_async_v3(self._stream.ptr):
                    raise UserError("TensorRT failed to run the engine on the sample images")
                for device, host in outputs.values():
                    device.copy_to(host, self._stream)
                self._stream.synchronize()
            finally:
                for device, _ in outputs.values():
                    device.free()
        return outputs[OUTPUT_PROB][1], outputs[OUTPUT_MASK][1]

    def close(self) -> None:
        self._stream.free()

"""Run a built plan on sample images, for the accuracy gate of the build.

Needs a GPU and polygraphy: runs inside NVIDIA's TensorRT container (`docker compose run
build`). This repository's CI has no GPU, so this module is not executed there (TensorRT-RTX
builds plans there, but its runtime needs an RTX GPU).
"""

from __future__ import annotations

from types import ModuleType

import numpy as np

from unetkit.core import INPUT_IMAGE, OUTPUT_MASK, OUTPUT_PROB, UserError
from unetkit.tensorrt.accuracy import Outputs


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
        with cuda.DeviceArray(shape=images.shape, dtype=images.dtype) as device_in:
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

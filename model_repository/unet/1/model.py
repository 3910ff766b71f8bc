"""The U-Net on CPU: Triton's python backend running 1/model.onnx with ONNX Runtime.

Runs inside the python backend stub's interpreter (the kit's environment, which `make serve`
puts first on the stub's path), so it imports numpy, onnxruntime, triton_python_backend_utils
and the kit's core. Every request is checked before anything runs: a bad one gets its own
INVALID_ARG answer saying which sizes work (the size rule comes from the config's
parameters), and the other requests of the same batch are served as usual.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils

from unetkit.core import (
    INPUT_IMAGE,
    OUTPUT_MASK,
    OUTPUT_PROB,
    PARAM_INTRA_OP_THREADS,
    PARAM_MAX_IMAGE_SIDE,
    rules_from_parameters,
)

OUTPUTS = (OUTPUT_PROB, OUTPUT_MASK)


def _parameter(config: dict, key: str, default: int) -> int:
    text = config.get("parameters", {}).get(key, {}).get("string_value", str(default))
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise pb_utils.TritonModelException(
            f"parameter {key}={text!r} in the model config must be an integer >= 0"
        )
    return value


def _invalid(message: str) -> pb_utils.InferenceResponse:
    return pb_utils.InferenceResponse(
        error=pb_utils.TritonError(message, pb_utils.TritonError.INVALID_ARG)
    )


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        onnx_path = Path(args["model_repository"]) / args["model_version"] / "model.onnx"
        if not onnx_path.is_file():
            raise pb_utils.TritonModelException(
                f"{onnx_path} is missing: run `make repository` to export the model"
            )
        threads = _parameter(config, PARAM_INTRA_OP_THREADS, 0) or len(os.sched_getaffinity(0))
        self.max_side = _parameter(config, PARAM_MAX_IMAGE_SIDE, 2048)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            str(onnx_path), options, providers=["CPUExecutionProvider"]
        )
        image = next(i for i in self.session.get_inputs() if i.name == INPUT_IMAGE)
        _, height, width, channels = image.shape
        self.fixed_size = (
            (height, width) if isinstance(height, int) and isinstance(width, int) else None
        )
        self.channels = channels
        parameters = {k: v.get("string_value", "") for k, v in config.get("parameters", {}).items()}
        try:
            self.rules = dict(zip("HW", rules_from_parameters(parameters), strict=True))
        except ValueError as e:
            raise pb_utils.TritonModelException(str(e)) from e

    def check(self, shape: list[int], dtype: np.dtype) -> str | None:
        """Why this IMAGE cannot run, or None. Looks only at the shape and type."""
        if dtype != np.uint8:
            return f"{INPUT_IMAGE} must be UINT8 raw pixels, got {dtype}"
        if len(shape) != 4:
            return f"{INPUT_IMAGE} must have shape [N, H, W, C], got {shape}"
        n, height, width, channels = shape
        if channels != self.channels:
            return (
                f"{INPUT_IMAGE} has {channels} channel(s), this model takes {self.channels}: "
                "convert the image (client/segment.py does)"
            )
        if min(n, height, width) <= 0:
            return f"{INPUT_IMAGE} shape {shape} is empty: send at least one non-empty image"
        if max(height, width) > self.max_side:
            return (
                f"{INPUT_IMAGE} is {height}x{width}, larger than this server's maximum side "
                f"{self.max_side} (parameter max_image_side): downscale or tile the image"
            )
        if self.fixed_size is not None and (height, width) != self.fixed_size:
            fh, fw = self.fixed_size
            return f"{INPUT_IMAGE} is {height}x{width}, this model takes {fh}x{fw} only"
        problems = [
            p
            for axis, size in (("H", height), ("W", width))
            if (p := self.rules[axis].problem(axis, size)) is not None
        ]
        if problems:
            return (
                f"{INPUT_IMAGE} is {height}x{width}: {'; '.join(problems)} (the network's "
                "downsampling); pad or resize the image (client/segment.py does)"
            )
        return None

    def execute(self, requests: list) -> list:
        responses: list = [None] * len(requests)
        # Requests of the same size run as one batch; the others wait for their own run.
        groups: dict[tuple[int, ...], list[tuple[int, np.ndarray, list[str]]]] = {}
        for index, request in enumerate(requests):
            tensor = pb_utils.get_input_tensor_by_name(request, INPUT_IMAGE)
            if tensor is None:
                responses[index] = _invalid(f"the request has no input {INPUT_IMAGE}")
                continue
            # as_numpy() maps the request's memory: nothing is copied or allocated here.
            image = tensor.as_numpy()
            problem = self.check(list(image.shape), image.dtype)
            if problem is not None:
                responses[index] = _invalid(problem)
                continue
            wanted = [n for n in request.requested_output_names() if n in OUTPUTS]
            groups.setdefault(image.shape[1:], []).append((index, image, wanted or list(OUTPUTS)))
        for members in groups.values():
            self._run(members, responses)
        return responses

    def _run(self, members: list[tuple[int, np.ndarray, list[str]]], responses: list) -> None:
        batch = np.concatenate([image for _, image, _ in members])
        try:
            prob, mask = self.session.run(list(OUTPUTS), {INPUT_IMAGE: batch})
        except Exception as e:  # ONNX Runtime raises its own exception types
            error = pb_utils.TritonError(f"ONNX Runtime failed: {e}", pb_utils.TritonError.INTERNAL)
            for index, _, _ in members:
                responses[index] = pb_utils.InferenceResponse(error=error)
            return
        results = {OUTPUT_PROB: prob, OUTPUT_MASK: mask}
        start = 0
        for index, image, wanted in members:
            stop = start + image.shape[0]
            responses[index] = pb_utils.InferenceResponse(
                output_tensors=[pb_utils.Tensor(n, results[n][start:stop]) for n in wanted]
            )
            start = stop

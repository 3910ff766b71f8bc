"""The U-Net on CPU: Triton's python backend running 1/model.onnx with ONNX Runtime.

Runs inside the python backend stub's interpreter, so it imports only numpy, onnxruntime
and triton_python_backend_utils. Every request is checked before anything runs: a bad
one gets its own INVALID_ARG answer saying which sizes work, and the other requests of
the same batch are served as usual.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils

INPUT_IMAGE = "IMAGE"
OUTPUTS = ("PROB", "MASK")


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


def _metadata_int(session: ort.InferenceSession, key: str, default: int) -> int:
    text = session.get_modelmeta().custom_metadata_map.get(key)
    return default if text is None else int(text)


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
        threads = _parameter(config, "intra_op_threads", 0) or len(os.sched_getaffinity(0))
        self.max_side = _parameter(config, "max_image_side", 2048)
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
        self.channels = _metadata_int(self.session, "unetkit.channels", channels)
        multiple = _metadata_int(
            self.session, "unetkit.size_multiple", _parameter(config, "size_multiple", 1)
        )
        # Valid sizes per axis: minimum, minimum + multiple, minimum + 2*multiple, ...
        self.rules = {
            axis: (
                _metadata_int(self.session, f"unetkit.size_multiple_{axis.lower()}", multiple),
                _metadata_int(self.session, f"unetkit.min_{name}", multiple),
            )
            for axis, name in (("H", "height"), ("W", "width"))
        }

    def _size_problem(self, axis: str, size: int) -> str | None:
        multiple, minimum = self.rules[axis]
        if size >= minimum and (size - minimum) % multiple == 0:
            return None
        nearest = minimum + max(0, -(-(size - minimum) // multiple)) * multiple
        rule = (
            f"a multiple of {multiple}"
            if minimum % multiple == 0
            else f"{minimum} + k*{multiple} (k >= 0)"
        )
        return f"{axis} must be {rule}, got {size} (next valid: {nearest})"

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
            for p in (self._size_problem("H", height), self._size_problem("W", width))
            if p is not None
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
        results = {"PROB": prob, "MASK": mask}
        start = 0
        for index, image, wanted in members:
            stop = start + image.shape[0]
            responses[index] = pb_utils.InferenceResponse(
                output_tensors=[pb_utils.Tensor(n, results[n][start:stop]) for n in wanted]
            )
            start = stop

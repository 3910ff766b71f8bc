"""The U-Net on CPU: Triton's python backend running 1/model.onnx with the engine the config
names (OpenVINO or ONNX Runtime, chosen by measurement at export).

Runs inside the python backend stub's interpreter (the kit's environment, which `make serve`
puts first on the stub's path), so it imports numpy, triton_python_backend_utils and the
kit. Every request is checked before anything runs: a bad one gets its own INVALID_ARG
answer saying which sizes work (the size rule comes from the config's parameters), and the
other requests of the same batch are served as usual.

Memory: the server's budget (UNETKIT_MEMORY_BUDGET, else the config's memory_budget, "auto"
= half the memory available at start-up) minus what Triton and the instances already hold
and the queue's inputs, divided by the model's measured bytes per pixel, gives the pixels
one engine call may take; the largest accepted side follows from it. A dynamic batch
runs as several calls when it holds more pixels than that. A call larger than the
instances' equal share of those pixels runs alone (RunLock): the other instances wait.
An engine that keeps its activations (OpenVINO) gives back those of a call larger than
what the plan lets an idle instance keep. The first instance to start plans for all of
them (shared_limits), so they answer alike.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils

from unetkit.core import (
    INPUT_IMAGE,
    MEMORY_BUDGET_ENV,
    OUTPUT_MASK,
    OUTPUT_PROB,
    PARAM_INTRA_OP_THREADS,
    PARAM_MAX_IMAGE_SIDE,
    PARAM_MEMORY_BASE_BYTES,
    PARAM_MEMORY_BUDGET,
    PARAM_MEMORY_BYTES_PER_PIXEL,
    PARAM_PRECISION,
    PARAM_RUNTIME,
    SERVER_DIR_ENV,
    UserError,
    read_model_info,
    rules_from_parameters,
)
from unetkit.triton import (
    CPU_MAX_QUEUE_SIZE,
    FP32,
    ONNXRUNTIME,
    EngineSpec,
    IdleTrim,
    Limits,
    MemoryModel,
    RunLock,
    ServerMemory,
    instance_count,
    open_engine,
    plan_server_limits,
    shared_limits,
)

OUTPUTS = (OUTPUT_PROB, OUTPUT_MASK)
# Seconds of work one execution may hold (beyond its first request): Triton answers a
# batch's requests only when the whole batch is done, and a client waits 60 s by default.
TARGET_EXECUTION_S = 10.0
# Freed memory goes back to the operating system after this long without work.
TRIM_AFTER_IDLE_S = 1.0


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


def _at_capacity(accepted_pixels: int) -> pb_utils.InferenceResponse:
    return pb_utils.InferenceResponse(
        error=pb_utils.TritonError(
            f"server at capacity: this batch already holds {accepted_pixels / 1e6:.1f} Mpixel; "
            "retry after a short wait (client/segment.py retries UNAVAILABLE with backoff)",
            pb_utils.TritonError.UNAVAILABLE,
        )
    )


def _text_parameter(config: dict, key: str, default: str) -> str:
    return config.get("parameters", {}).get(key, {}).get("string_value", default)


def _queue_size(config: dict) -> int:
    """The queue's bound, or the requests the budget plans for when Triton sets none."""
    policy = config.get("dynamic_batching", {}).get("default_queue_policy", {})
    return int(policy.get("max_queue_size", 0)) or CPU_MAX_QUEUE_SIZE


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        onnx_path = Path(args["model_repository"]) / args["model_version"] / "model.onnx"
        if not onnx_path.is_file():
            raise pb_utils.TritonModelException(
                f"{onnx_path} is missing: run `make repository` to export the model"
            )
        threads = _parameter(config, PARAM_INTRA_OP_THREADS, 0)
        spec = EngineSpec(
            _text_parameter(config, PARAM_RUNTIME, ONNXRUNTIME),
            _text_parameter(config, PARAM_PRECISION, FP32),
        )
        try:
            self.engine = open_engine(spec, onnx_path, threads)
        except UserError as e:
            raise pb_utils.TritonModelException(str(e)) from e
        # IMAGE's pixel type, as the config declares it (uint8 unless exported otherwise)
        self.image_dtype = np.dtype(
            pb_utils.triton_string_to_numpy(config["input"][0]["data_type"])
        )
        parameters = {k: v.get("string_value", "") for k, v in config.get("parameters", {}).items()}
        info = read_model_info(onnx_path)
        self.fixed_size, self.channels = info.fixed_size, info.channels
        self.run_lock = RunLock(onnx_path)
        server_dir = os.environ.get(SERVER_DIR_ENV)
        plan_file = (
            Path(server_dir) / f"{args['model_name']}-{args['model_version']}.limits.json"
            if server_dir
            else None
        )
        try:
            self.rules = dict(zip("HW", rules_from_parameters(parameters), strict=True))
            self.limits = shared_limits(
                lambda: self._limits(config, self.channels), plan_file, self.run_lock
            )
        except (ValueError, UserError) as e:
            raise pb_utils.TritonModelException(str(e)) from e
        self.seconds_per_pixel: float | None = None
        # After a second without work, the engine's kept activations and glibc's free heap
        # go back to the operating system.
        self.trim = IdleTrim(
            TRIM_AFTER_IDLE_S, self.engine.release if self.engine.keeps_activations else None
        )
        self.trim.start()
        pb_utils.Logger.log_info(f"unetkit: {spec} on {threads or 'every'} thread(s)")
        pb_utils.Logger.log_info(f"unetkit: {self.limits.describe()}")

    def _limits(self, config: dict, channels: int) -> Limits:
        side_cap = _parameter(config, PARAM_MAX_IMAGE_SIDE, 2048)
        memory = MemoryModel(
            _parameter(config, PARAM_MEMORY_BASE_BYTES, 0),
            _parameter(config, PARAM_MEMORY_BYTES_PER_PIXEL, 0),
        )
        if memory.bytes_per_pixel == 0:
            raise UserError(
                "the model config has no memory_bytes_per_pixel: re-render it with "
                "`make repository` (build/make_repository.py --force)"
            )
        budget_text = os.environ.get(MEMORY_BUDGET_ENV) or _text_parameter(
            config, PARAM_MEMORY_BUDGET, "auto"
        )
        # Triton holds the inputs of every queued request.
        queued = _queue_size(config) * side_cap * side_cap * channels * self.image_dtype.itemsize
        return plan_server_limits(
            memory,
            budget_text,
            ServerMemory.now(),
            queued,
            side_cap,
            instance_count(config),
            self.engine.keeps_activations,
        )

    def check(self, shape: list[int], dtype: np.dtype) -> str | None:
        """Why this IMAGE cannot run, or None. Looks only at the shape and type."""
        if dtype != self.image_dtype:
            return f"{INPUT_IMAGE} must be {self.image_dtype.name} pixels, got {dtype}"
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
        if max(height, width) > self.limits.max_side:
            return (
                f"{INPUT_IMAGE} is {height}x{width}, larger than this server takes "
                f"({self.limits.describe()}): tile the image (client/segment.py does)"
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
        self.trim.started()
        responses: list = [None] * len(requests)
        taken = 0  # pixels accepted so far; the first valid request is always run
        # Requests of the same size run as one batch; the others wait for their own run.
        groups: dict[tuple[int, ...], list[tuple[int, np.ndarray, list[str]]]] = {}
        # Triton 2.51's dynamic batcher hands on requests whose client gave up while they
        # were queued (a gRPC deadline, a cancel): they are answered, not run.
        cancelled = 0
        for index, request in enumerate(requests):
            if request.is_cancelled():
                responses[index] = pb_utils.InferenceResponse(
                    error=pb_utils.TritonError("cancelled", pb_utils.TritonError.CANCELLED)
                )
                cancelled += 1
                continue
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
            pixels = image.shape[0] * image.shape[1] * image.shape[2]
            if taken and taken + pixels > self._pixels_per_execution():
                responses[index] = _at_capacity(taken)
                continue
            taken += pixels
            wanted = [n for n in request.requested_output_names() if n in OUTPUTS]
            groups.setdefault(image.shape[1:], []).append((index, image, wanted or list(OUTPUTS)))
        if cancelled:
            pb_utils.Logger.log_info(
                f"unetkit: skipped {cancelled} request(s) whose client gave up while queued"
            )
        for members in groups.values():
            self._run(members, responses)
        self.trim.worked()
        return responses

    def _pixels_per_execution(self) -> float:
        """What one execution may take: no more than the budget's run, and no more than
        TARGET_EXECUTION_S of work at the speed measured so far, since every response of a
        batch leaves only when the whole batch is done."""
        if self.seconds_per_pixel is None:
            return self.limits.max_run_pixels
        return min(self.limits.max_run_pixels, TARGET_EXECUTION_S / self.seconds_per_pixel)

    def _learn_speed(self, seconds: float, pixels: int) -> None:
        """A moving average of the seconds one input pixel takes (channels count once)."""
        per_pixel = seconds * self.channels / pixels
        previous = self.seconds_per_pixel
        self.seconds_per_pixel = per_pixel if previous is None else 0.7 * previous + 0.3 * per_pixel

    def _run(self, members: list[tuple[int, np.ndarray, list[str]]], responses: list) -> None:
        """Images of one size, in as few engine calls as the memory budget allows."""
        names = [n for n in OUTPUTS if any(n in wanted for _, _, wanted in members)]
        images = np.concatenate([image for _, image, _ in members])
        per_call = max(1, self.limits.max_run_pixels // (images.shape[1] * images.shape[2]))
        try:
            started = time.perf_counter()
            parts = []
            for start in range(0, len(images), per_call):
                call = images[start : start + per_call]
                pixels = call.shape[0] * call.shape[1] * call.shape[2]
                with self.run_lock.hold(exclusive=self.limits.needs_exclusive(pixels)):
                    parts.append(self.engine.run(names, {INPUT_IMAGE: call}))
                    if self.engine.keeps_activations and self.limits.needs_release(pixels):
                        self.engine.release()
            self._learn_speed(time.perf_counter() - started, images.size)
        except Exception as e:  # each engine raises its own exception types
            error = pb_utils.TritonError(f"the engine failed: {e}", pb_utils.TritonError.INTERNAL)
            for index, _, _ in members:
                responses[index] = pb_utils.InferenceResponse(error=error)
            return
        results = {
            name: parts[0][i] if len(parts) == 1 else np.concatenate([p[i] for p in parts])
            for i, name in enumerate(names)
        }
        start = 0
        for index, image, wanted in members:
            stop = start + image.shape[0]
            responses[index] = pb_utils.InferenceResponse(
                output_tensors=[pb_utils.Tensor(n, results[n][start:stop]) for n in wanted]
            )
            start = stop

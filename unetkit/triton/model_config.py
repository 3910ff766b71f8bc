"""Triton configurations of model `unet`: configs/cpu.pbtxt (python backend running OpenVINO
or ONNX Runtime) and config.pbtxt (TensorRT plan), rendered from the exported model's
ModelInfo.

The committed files are these renderers' output for the example model and the default
profile (a test checks that); build/make_repository.py and build/build_engine.py render
them again for a user's own model, so the channel and class counts, the fixed size (if
any), the size rule and the plan's max_batch_size always match the model.
"""

from __future__ import annotations

import re
from pathlib import Path

from unetkit.core import (
    INPUT_IMAGE,
    MODEL_NAME,
    OUTPUT_MASK,
    OUTPUT_PROB,
    PARAM_INTRA_OP_THREADS,
    PARAM_MAX_IMAGE_SIDE,
    PARAM_MEMORY_BASE_BYTES,
    PARAM_MEMORY_BUDGET,
    PARAM_MEMORY_BYTES_PER_PIXEL,
    PARAM_MIN_HEIGHT,
    PARAM_MIN_WIDTH,
    PARAM_MULTIPLE_H,
    PARAM_MULTIPLE_W,
    PARAM_OUTPUT_OFFSET_H,
    PARAM_OUTPUT_OFFSET_W,
    PARAM_OUTPUT_SHRINK_H,
    PARAM_OUTPUT_SHRINK_W,
    PARAM_PRECISION,
    PARAM_RUNTIME,
    PARAM_SIZE_MULTIPLE,
    PARAM_THRESHOLD,
    ModelInfo,
    Profile,
    UserError,
)
from unetkit.triton.cpu_runtime import MemoryModel
from unetkit.triton.engines import EngineSpec

CPU_MAX_BATCH_SIZE = 8
# The waiting requests the memory budget sets room aside for, and the bound a queue policy
# gets when asked for one (--max-queue-size): twice a full batch keeps the CPU busy without
# holding many images' inputs in memory.
CPU_MAX_QUEUE_SIZE = 2 * CPU_MAX_BATCH_SIZE
# With a queue policy, a request waiting longer is refused: shorter than a client's usual
# timeout (the kit's client waits 60 s), longer than a queue of large images takes.
CPU_QUEUE_TIMEOUT_S = 20
# No added wait: requests that queue while both instances are busy still share a call when
# one frees up, and a wait only delays the lone request (2 ms cost 9% of int8 throughput
# at one client, 12% at two; BENCHMARKS.md).
CPU_QUEUE_DELAY_US = 0
# Two instances, each with every core's threads: while one is between calls (Triton's
# answer and the next request take about a millisecond) the other computes, and two int8
# calls at once keep the cores busier than one call's threads do. Measured against one
# instance: int8 +30% at two or more clients, fp32 within the box's drift, one client
# unchanged (BENCHMARKS.md).
CPU_INSTANCES = 2
# Larger images are refused before anything is allocated for them: the activations of a
# U-Net take hundreds of bytes per pixel.
MAX_IMAGE_SIDE = 2048

_SIZE_RULE_LEGEND = """\
#   size_multiple_h, min_height  valid heights are min_height + k * size_multiple_h
#   size_multiple_w, min_width   valid widths likewise (the network's downsampling)
#   size_multiple   the lcm of both multiples (for clients that know only one number)
#   output_shrink_h/w, output_offset_h/w  the output has shrink_h/w fewer rows/columns and
#                   starts over input pixel (offset_h, offset_w); absent: another scale
#   threshold       MASK is PROB > threshold (one class): for clients that blend PROB"""


def parameter(key: str, value: int | str) -> str:
    return f'  {{ key: "{key}" value: {{ string_value: "{value}" }} }}'


def _parameters(info: ModelInfo, max_side: int, *extra: str) -> str:
    geometry = ()
    if info.output_geometry is not None:
        keys = (
            PARAM_OUTPUT_SHRINK_H,
            PARAM_OUTPUT_SHRINK_W,
            PARAM_OUTPUT_OFFSET_H,
            PARAM_OUTPUT_OFFSET_W,
        )
        geometry = tuple(parameter(k, v) for k, v in zip(keys, info.output_geometry, strict=True))
    return ",\n".join(
        (
            parameter(PARAM_MULTIPLE_H, info.height.multiple),
            parameter(PARAM_MIN_HEIGHT, info.height.minimum),
            parameter(PARAM_MULTIPLE_W, info.width.multiple),
            parameter(PARAM_MIN_WIDTH, info.width.minimum),
            parameter(PARAM_SIZE_MULTIPLE, info.size_multiple),
            *geometry,
            parameter(PARAM_THRESHOLD, repr(info.threshold)),
            parameter(PARAM_MAX_IMAGE_SIDE, max_side),
            *extra,
        )
    )


def image_type(info: ModelInfo) -> str:
    """IMAGE's data type in a config, which also says the scale the model was trained on
    and clients map images onto (unetkit.core.INPUT_DTYPES): TYPE_UINT8 0..255 unless the
    model was exported for TYPE_UINT16 0..65535 or TYPE_FP32 0..1."""
    return {"uint16": "TYPE_UINT16", "float32": "TYPE_FP32"}.get(info.input_dtype, "TYPE_UINT8")


def io_tensors(info: ModelInfo, image_note: str, prob_note: str) -> str:
    """The input and output blocks of the contract, shared by every configuration of `unet`."""
    h, w = ("-1", "-1") if info.fixed_size is None else (str(d) for d in info.fixed_size)
    mask_rule = (
        f"1 where PROB > {info.threshold:g}, else 0"
        if info.classes == 1
        else "the index of the class with the highest PROB"
    )
    return f"""\
input [
  {{
    # {image_note}
    name: "{INPUT_IMAGE}"
    data_type: {image_type(info)}
    dims: [ {h}, {w}, {info.channels} ]
  }}
]
output [
  {{
    # {prob_note}
    name: "{OUTPUT_PROB}"
    data_type: TYPE_FP32
    dims: [ {h}, {w}, {info.classes} ]
  }},
  {{
    # {mask_rule}.
    name: "{OUTPUT_MASK}"
    data_type: TYPE_UINT8
    dims: [ {h}, {w} ]
  }}
]"""


def _back_pressure(max_queue_size: int) -> str:
    """The dynamic_batching block: without a queue policy unless a queue size is asked for."""
    if max_queue_size == 0:
        note = """\
# Back-pressure: model.py answers UNAVAILABLE ("server at capacity") at once for the
# requests of a batch beyond about 10 s of work, and skips those whose client gave up.
# No queue policy: in Triton 2.51 any default_queue_policy leaves a request waiting up to
# 500 ms, now and then, for the batcher's next wake-up (measured: p99 about 540 ms instead
# of 50 ms at one client; BENCHMARKS.md). make_repository.py --max-queue-size N adds one."""
        policy = ""
    else:
        note = f"""\
# Back-pressure: at most {max_queue_size} requests wait; Triton refuses more at once
# (UNAVAILABLE, "Exceeds maximum queue size"), and refuses a request that waited
# {CPU_QUEUE_TIMEOUT_S} s (or the timeout its client set) instead of running it late.
# (In Triton 2.51 a queue policy costs up to 500 ms, now and then: BENCHMARKS.md.)"""
        policy = f"""
  default_queue_policy {{
    max_queue_size: {max_queue_size}
    timeout_action: REJECT
    default_timeout_microseconds: {CPU_QUEUE_TIMEOUT_S * 1_000_000}
    allow_timeout_override: true
  }}"""
    return f"""\
{note}
dynamic_batching {{
  max_queue_delay_microseconds: {CPU_QUEUE_DELAY_US}{policy}
}}"""


def render_cpu_config(
    info: ModelInfo, memory: MemoryModel, engine: EngineSpec, max_queue_size: int = 0
) -> str:
    image_note = (
        "Raw pixels, channels last; normalization happens inside the ONNX graph.\n"
        f"    # Height and width: {info.describe_sizes()}, at most {MAX_IMAGE_SIDE} and what "
        "the memory budget allows (see parameters)."
    )
    parameters = _parameters(
        info,
        MAX_IMAGE_SIDE,
        parameter(PARAM_RUNTIME, engine.runtime),
        parameter(PARAM_PRECISION, engine.precision),
        parameter(PARAM_INTRA_OP_THREADS, 0),
        parameter(PARAM_MEMORY_BASE_BYTES, memory.base_bytes),
        parameter(PARAM_MEMORY_BYTES_PER_PIXEL, memory.bytes_per_pixel),
        parameter(PARAM_MEMORY_BUDGET, "auto"),
    )
    return f"""\
# Triton configuration of the U-Net on CPU: {engine} inside Triton's python backend,
# the fastest engine that passed the accuracy gate when the model was exported on this
# machine (the candidates and their numbers: 1/runtime.json; make serve RUNTIME=... picks one).
# Chosen with `tritonserver --model-config-name=cpu` (`make serve` does that).
# Written by build/make_repository.py from the ONNX model; rerun it rather than edit.
# Same name, inputs and outputs as ../config.pbtxt (the TensorRT plan for GPUs):
# clients cannot tell the two apart.
name: "{MODEL_NAME}"
backend: "python"

# Triton adds the batch dimension N in front of every dims below; a request may carry
# up to this many images, and the dynamic batcher never forms larger batches.
max_batch_size: {CPU_MAX_BATCH_SIZE}

{io_tensors(info, image_note, "The Keras model's output for the image.")}

# Requests that wait while both instances are busy reach model.py together (no added
# delay); only images of the same size share a call, and model.py splits a batch into
# engine calls that fit the memory budget.
{_back_pressure(max_queue_size)}

# Two model instances (python backend stubs), each running its engine on every core
# without spinning threads: one client gets all the cores, and with two or more clients one
# instance computes while the other hands over its answer. They share the memory budget:
# a call too large to run beside the other's waits and runs alone (see parameters).
instance_group [
  {{
    kind: KIND_CPU
    count: {CPU_INSTANCES}
  }}
]

# Read by 1/model.py and client/segment.py:
{_SIZE_RULE_LEGEND}
#   max_image_side  larger heights or widths are refused before anything is allocated
#   runtime, precision  the engine (openvino or onnxruntime) and what it computes in: fp32
#                   or int8 (model.onnx's own), or bf16 (OpenVINO on the fp32 model)
#   intra_op_threads engine threads per instance; 0 = one per CPU this server may run on
#   memory_base_bytes, memory_bytes_per_pixel  the model's resident memory: base plus this
#                   much per pixel of the images in one engine call (measured at export)
#   memory_budget   bytes (or K/M/G) for tritonserver and the model's instances together;
#                   "auto" = half the memory available at start-up; UNETKIT_MEMORY_BUDGET
#                   overrides it
parameters [
{parameters}
]
"""


# Long enough for the dynamic batcher to pair up requests that arrive together, short
# next to the GPU time of one 256x256 image (about a millisecond on an H100).
GPU_QUEUE_DELAY_US = 200


# Every batch size up to this one gets a CUDA graph of its own, as do the profile's opt and
# max batch (the batches the dynamic batcher prefers).
GRAPH_SMALL_BATCHES = 8


def graph_batches(profile: Profile) -> list[int]:
    """The batch sizes captured as CUDA graphs: 1 .. GRAPH_SMALL_BATCHES and the preferred
    batches (opt, max), each replayed only for exactly its own batch size."""
    small = range(1, min(GRAPH_SMALL_BATCHES, profile.max.batch) + 1)
    return sorted({*small, profile.opt.batch, profile.max.batch})


def _gaps_sentence(batches: list[int], max_batch: int) -> str:
    """Which batch sizes up to max_batch have no graph, as ranges ("Batches 9-31 ...")."""
    gaps, start = [], None
    for batch in range(1, max_batch + 2):
        if batch <= max_batch and batch not in batches:
            start = batch if start is None else start
        elif start is not None:
            gaps.append(str(start) if start == batch - 1 else f"{start}-{batch - 1}")
            start = None
    if not gaps:
        return "Every batch size has its own graph."
    return (
        f"Batches {', '.join(gaps)} run without a graph: a batch that large keeps the GPU"
        "\n    # busy long enough for its kernel launches not to matter."
    )


def _graph_specs(profile: Profile, channels: int) -> str:
    """One CUDA graph per batch size of graph_batches, at the profile's opt height and width,
    with no graph_lower_bound.

    Triton's TensorRT backend replays a graph that has a lower bound for any batch from that
    bound up to the graph's own, running the graph's whole batch: each padded image costs a
    whole image of GPU time, more than the kernel launches a graph saves. Exact graphs never
    pad. Height and width must match exactly too: a padded image would change the
    convolutions at the border.
    """
    h, w = profile.opt.height, profile.opt.width
    shape = f'input {{ key: "{INPUT_IMAGE}" value {{ dim: [ {h}, {w}, {channels} ] }} }}'
    return ",\n".join(
        f"      {{\n        # batch {batch} only, {h}x{w}: no padding\n"
        f"        batch_size: {batch}\n        {shape}\n      }}"
        for batch in graph_batches(profile)
    )


def _cuda_optimization(profile: Profile, channels: int) -> str:
    """The optimization block: CUDA graphs at the profile's opt size, outputs copied on
    their own stream."""
    opt_hw = f"{profile.opt.height}x{profile.opt.width}"
    graph_gaps = _gaps_sentence(graph_batches(profile), profile.max.batch)
    return f"""\
optimization {{
  cuda {{
    # CUDA graphs remove the per-layer launch cost that dominates small batches. A graph
    # only replays the shapes it was captured with, and H and W are dynamic here, so
    # graphs are captured at the profile's opt size ({opt_hw}) only; requests of any
    # other size run without a graph, exactly as without this block.
    # Each graph serves exactly its own batch size (no graph_lower_bound): no batch is
    # padded, since a padded batch runs the graph's whole batch on the GPU.
    # {graph_gaps}
    # Cost: each graph is captured when the model loads, on the instance's own execution
    # context and buffers (no extra activation memory), adding to the load time.
    graphs: true
    graph_spec [
{_graph_specs(profile, channels)}
    ]
    # PROB is large (H x W x K floats per image): copy outputs on their own stream so
    # the copy of one batch overlaps the next batch's compute.
    output_copy_stream: true
  }}
}}"""


def render_plan_config(info: ModelInfo, profile: Profile) -> str:
    preferred = sorted({profile.opt.batch, profile.max.batch})
    max_side = max(profile.max.height, profile.max.width)
    opt_hw = f"{profile.opt.height}x{profile.opt.width}"
    min_hw = f"{profile.min.height}x{profile.min.width}"
    max_hw = f"{profile.max.height}x{profile.max.width}"
    return f"""\
# Triton configuration of the U-Net as a TensorRT plan (GPU).
# Written by build/build_engine.py from the ONNX model and the engine's optimization
# profile ({profile.min} .. {profile.max}, tuned for {profile.opt}); rebuild rather than edit,
# and never raise max_batch_size above the profile's max batch.
# Same name, inputs and outputs as configs/cpu.pbtxt: clients cannot tell the two apart.
name: "{MODEL_NAME}"
platform: "tensorrt_plan"

# Triton adds the batch dimension N in front of every dims below. Triton refuses the plan at
# load time when this is larger than the profile's max batch; it is set equal, so batches
# can use the whole profile.
max_batch_size: {profile.max.batch}

{
        io_tensors(
            info,
            "Raw pixels, channels last; normalization happens inside the engine.",
            "The Keras model's output, float32 even when the engine computes in fp16.",
        )
    }
# Height: {info.height.describe()}; width: {info.width.describe()}.
# Both within the engine's profile, {min_hw} .. {max_hw}: Triton refuses other
# shapes before the engine runs.

# Gather single requests into the batch sizes the engine was tuned for. Only requests
# of the same height and width can share a batch.
dynamic_batching {{
  preferred_batch_size: [ {", ".join(str(b) for b in preferred)} ]
  max_queue_delay_microseconds: {GPU_QUEUE_DELAY_US}
}}

# One execution context on the GPU: a conv net of this size keeps the GPU busy from one
# context once batches form; a second instance doubles activation memory for little gain.
instance_group [
  {{
    kind: KIND_GPU
    count: 1
  }}
]

{_cuda_optimization(profile, info.channels)}

# Run one zero image through the engine at load, so the first request does not pay for
# lazy initialization.
model_warmup [
  {{
    name: "zeros_{opt_hw}"
    batch_size: 1
    inputs {{
      key: "{INPUT_IMAGE}"
      value {{
        data_type: {image_type(info)}
        dims: [ {profile.opt.height}, {profile.opt.width}, {info.channels} ]
        zero_data: true
      }}
    }}
  }}
]

# Read by client/segment.py, as for configs/cpu.pbtxt:
{_SIZE_RULE_LEGEND}
#   max_image_side  the largest side the engine's profile accepts
parameters [
{_parameters(info, max_side)}
]
"""


_MAX_BATCH = re.compile(r"^\s*max_batch_size\s*:\s*(\d+)\s*$", re.MULTILINE)


def read_max_batch_size(config_path: Path) -> int:
    if not config_path.is_file():
        raise UserError(f"{config_path}: no config.pbtxt to check (drop --keep-config)")
    match = _MAX_BATCH.search(config_path.read_text())
    if not match:
        raise UserError(f"{config_path}: no max_batch_size line; the plan needs one >= 1")
    return int(match.group(1))


def instance_count(config: dict) -> int:
    """The model instances a config asks for (Triton's JSON form, as the python backend and
    the model-config API give it), over all its instance groups."""
    return sum(int(group.get("count", 1)) for group in config.get("instance_group", [])) or 1

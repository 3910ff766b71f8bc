"""Render model_repository/unet/config.pbtxt for a TensorRT plan, and read back what it promises.

The committed config is this renderer's output for the example model and the default
profile (a test checks that); build_engine.py renders it again for a user's own model or
profile, so max_batch_size and the plan's optimization profile never disagree.
"""

from __future__ import annotations

import re
from pathlib import Path

from unetkit.contract import INPUT_IMAGE, MODEL_NAME
from unetkit.engine_profile import Profile
from unetkit.errors import UserError
from unetkit.export import ModelInfo
from unetkit.triton_config import (
    PARAM_MAX_IMAGE_SIDE,
    PARAM_SIZE_MULTIPLE,
    io_tensors,
    parameter,
)

# Long enough for the dynamic batcher to pair up requests that arrive together, short
# next to the GPU time of one 256x256 image (about a millisecond on an H100).
MAX_QUEUE_DELAY_MICROSECONDS = 200


def _graph_specs(profile: Profile, channels: int) -> str:
    """One CUDA graph per batch-size band at the profile's opt height and width.

    A graph replays fixed shapes. Batch rows of a conv net are independent, so a graph
    captured at batch B also serves smaller batches down to its lower bound (the spare
    rows are computed and dropped). Height and width must match exactly: a padded
    image would change the convolutions at the border.
    """
    batches = sorted({1, profile.opt.batch, profile.max.batch})
    h, w = profile.opt.height, profile.opt.width
    specs = []
    lower = 1
    for batch in batches:
        bound = ""
        if lower < batch:
            bound = (
                f"\n        graph_lower_bound {{ batch_size: {lower}"
                f' input {{ key: "{INPUT_IMAGE}" value {{ dim: [ {h}, {w}, {channels} ] }} }} }}'
            )
        specs.append(
            f"      {{\n        batch_size: {batch}\n"
            f'        input {{ key: "{INPUT_IMAGE}" value {{ dim: [ {h}, {w}, {channels} ] }} }}'
            f"{bound}\n      }}"
        )
        lower = batch + 1
    return ",\n".join(specs)


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
# or keep max_batch_size equal to the profile's max batch.
# Same name, inputs and outputs as configs/cpu.pbtxt: clients cannot tell the two apart.
name: "{MODEL_NAME}"
platform: "tensorrt_plan"

# Triton adds the batch dimension N in front of every dims below. It must equal the
# plan's max profile batch, or Triton refuses the plan at load time.
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
  max_queue_delay_microseconds: {MAX_QUEUE_DELAY_MICROSECONDS}
}}

# One execution context on the GPU: a conv net of this size keeps the GPU busy from one
# context once batches form; a second instance doubles activation memory for little gain.
instance_group [
  {{
    kind: KIND_GPU
    count: 1
  }}
]

optimization {{
  cuda {{
    # CUDA graphs remove the per-layer launch cost that dominates small batches. A graph
    # only replays the shapes it was captured with, and H and W are dynamic here, so
    # graphs are captured at the profile's opt size ({opt_hw}) only; requests of any
    # other size run without a graph, exactly as without this block.
    graphs: true
    graph_spec [
{_graph_specs(profile, info.channels)}
    ]
    # PROB is large (H x W x K floats per image): copy outputs on their own stream so
    # the copy of one batch overlaps the next batch's compute.
    output_copy_stream: true
  }}
}}

# Run one zero image through the engine at load, so the first request does not pay for
# lazy initialization.
model_warmup [
  {{
    name: "zeros_{opt_hw}"
    batch_size: 1
    inputs {{
      key: "{INPUT_IMAGE}"
      value {{
        data_type: TYPE_UINT8
        dims: [ {profile.opt.height}, {profile.opt.width}, {info.channels} ]
        zero_data: true
      }}
    }}
  }}
]

# Read by client/segment.py, as for configs/cpu.pbtxt:
#   size_multiple   height and width must be multiples of it (the network's downsampling)
#   max_image_side  the largest side the engine's profile accepts
parameters [
{parameter(PARAM_SIZE_MULTIPLE, info.size_multiple)},
{parameter(PARAM_MAX_IMAGE_SIDE, max_side)}
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

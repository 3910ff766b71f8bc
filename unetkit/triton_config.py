"""Render model_repository/unet/configs/cpu.pbtxt: the U-Net on CPU through the python backend.

The committed file is this renderer's output for the example model (a test checks that);
build/make_repository.py renders it again for a user's own model, since the channel and
class counts, the fixed size (if any) and the size multiple come from the ONNX file.
"""

from __future__ import annotations

from unetkit.contract import INPUT_IMAGE, MODEL_NAME, OUTPUT_MASK, OUTPUT_PROB
from unetkit.export import ModelInfo

MAX_BATCH_SIZE = 8
# Long enough to pair up requests that arrive together, short next to the ~100 ms
# a 256x256 image takes on a CPU core.
MAX_QUEUE_DELAY_MICROSECONDS = 2000
# Larger images are refused before anything is allocated for them: the activations of a
# U-Net take hundreds of bytes per pixel.
MAX_IMAGE_SIDE = 2048

# Names of the `parameters` that model.py (and client/segment.py) read.
PARAM_SIZE_MULTIPLE = "size_multiple"
PARAM_MAX_IMAGE_SIDE = "max_image_side"
PARAM_INTRA_OP_THREADS = "intra_op_threads"


def parameter(key: str, value: int | str) -> str:
    return f'  {{ key: "{key}" value: {{ string_value: "{value}" }} }}'


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
    data_type: TYPE_UINT8
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


def render_cpu_config(info: ModelInfo) -> str:
    if info.fixed_size is not None:
        size_rule = "{}x{} only".format(*info.fixed_size)
    else:
        size_rule = f"H {info.height.describe()}, W {info.width.describe()}"
    image_note = (
        "Raw pixels, channels last; normalization happens inside the ONNX graph.\n"
        f"    # Height and width: {size_rule}, at most {MAX_IMAGE_SIDE} (see parameters)."
    )
    parameters = ",\n".join(
        (
            parameter(PARAM_SIZE_MULTIPLE, info.size_multiple),
            parameter(PARAM_MAX_IMAGE_SIDE, MAX_IMAGE_SIDE),
            parameter(PARAM_INTRA_OP_THREADS, 0),
        )
    )
    return f"""\
# Triton configuration of the U-Net on CPU: ONNX Runtime inside Triton's python backend.
# Chosen with `tritonserver --model-config-name=cpu` (`make serve` does that).
# Written by build/make_repository.py from the ONNX model; rerun it rather than edit.
# Same name, inputs and outputs as ../config.pbtxt (the TensorRT plan for GPUs):
# clients cannot tell the two apart.
name: "{MODEL_NAME}"
backend: "python"

# Triton adds the batch dimension N in front of every dims below; a request may carry
# up to this many images, and the dynamic batcher never forms larger batches.
max_batch_size: {MAX_BATCH_SIZE}

{io_tensors(info, image_note, "The Keras model's output for the image.")}

# Requests that arrive within {MAX_QUEUE_DELAY_MICROSECONDS // 1000} ms of each other reach model.py
# together and run as one ONNX Runtime call; only images of the same size share a call.
dynamic_batching {{
  max_queue_delay_microseconds: {MAX_QUEUE_DELAY_MICROSECONDS}
}}

# One model instance using every core through ONNX Runtime's intra-op threads: on a CPU
# one instance with all threads beats several instances competing for the same cores.
instance_group [
  {{
    kind: KIND_CPU
    count: 1
  }}
]

# Read by 1/model.py (and size_multiple by client/segment.py):
#   size_multiple   height and width must be multiples of it (the network's downsampling)
#   max_image_side  larger heights or widths are refused before anything is allocated
#   intra_op_threads ONNX Runtime threads; 0 = one per CPU this server may run on
parameters [
{parameters}
]
"""

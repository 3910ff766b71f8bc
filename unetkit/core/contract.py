"""The I/O contract every part of the kit relies on, and where servers listen by default.

IMAGE  uint8   [N, H, W, C]  raw pixels, channels last (uint16 or float32 when exported so)
PROB   float32 [N, H', W', K] the Keras model's output for IMAGE normalized inside the graph
MASK   uint8   [N, H', W']   PROB > threshold when K == 1, argmax over K otherwise
"""

MODEL_NAME = "unet"
MODEL_VERSION = "1"
INPUT_IMAGE = "IMAGE"
OUTPUT_PROB = "PROB"
OUTPUT_MASK = "MASK"
DEFAULT_THRESHOLD = 0.5
# IMAGE's pixel types, and the top of the scale each carries (from 0): the values the model
# was trained on, which the graph normalizes ((x - mean) / std, std by default this top)
# and a client maps images onto. uint8 is the default.
INPUT_DTYPES = {"uint8": 255.0, "uint16": 65535.0, "float32": 1.0}
DEFAULT_INPUT_DTYPE = "uint8"

# Triton's own defaults; every launcher, client and load generator of the kit uses these.
DEFAULT_HOST = "127.0.0.1"
DEFAULT_HTTP_PORT = 8000
DEFAULT_GRPC_PORT = 8001
DEFAULT_METRICS_PORT = 8002
DEFAULT_GRPC_URL = f"{DEFAULT_HOST}:{DEFAULT_GRPC_PORT}"

# Names of the `parameters` of the model's config.pbtxt that model.py and the client read.
# The size rule per axis: valid sizes are minimum + k * multiple (k >= 0).
PARAM_MULTIPLE_H = "size_multiple_h"
PARAM_MULTIPLE_W = "size_multiple_w"
PARAM_MIN_HEIGHT = "min_height"
PARAM_MIN_WIDTH = "min_width"
# Where the output lies on the input (published when the output is the input's grid): it
# has output_shrink_h/w pixels fewer rows/columns ('valid' U-Nets), and its pixel (0, 0)
# lies over input pixel (output_offset_h, output_offset_w).
PARAM_OUTPUT_SHRINK_H = "output_shrink_h"
PARAM_OUTPUT_SHRINK_W = "output_shrink_w"
PARAM_OUTPUT_OFFSET_H = "output_offset_h"
PARAM_OUTPUT_OFFSET_W = "output_offset_w"
# The lcm of the two multiples, kept for clients written against the first release.
PARAM_SIZE_MULTIPLE = "size_multiple"
PARAM_MAX_IMAGE_SIDE = "max_image_side"
# MASK's threshold on PROB for one-class models: a client that blends PROB across tiles
# takes the mask from the blend with the same threshold.
PARAM_THRESHOLD = "threshold"
PARAM_INTRA_OP_THREADS = "intra_op_threads"
# Which engine the CPU route's model.py opens (chosen by measurement at export), and at
# which precision: fp32 or int8 (the file's own), or bf16 (OpenVINO on the fp32 file).
PARAM_RUNTIME = "runtime"
PARAM_PRECISION = "precision"
PARAM_MEMORY_BASE_BYTES = "memory_base_bytes"
PARAM_MEMORY_BYTES_PER_PIXEL = "memory_bytes_per_pixel"
PARAM_MEMORY_BUDGET = "memory_budget"
# The server's memory budget, set by the launcher (make serve MEMORY=...) for the model.
MEMORY_BUDGET_ENV = "UNETKIT_MEMORY_BUDGET"
# A directory private to one tritonserver for its life, set by the launcher: the model's
# instances share their memory plan there.
SERVER_DIR_ENV = "UNETKIT_SERVER_DIR"

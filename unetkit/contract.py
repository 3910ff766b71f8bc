"""The I/O contract every part of the kit relies on.

IMAGE  uint8   [N, H, W, C]  raw pixels, channels last
PROB   float32 [N, H', W', K] the Keras model's output for IMAGE normalized inside the graph
MASK   uint8   [N, H', W']   PROB > threshold when K == 1, argmax over K otherwise
"""

MODEL_NAME = "unet"
INPUT_IMAGE = "IMAGE"
OUTPUT_PROB = "PROB"
OUTPUT_MASK = "MASK"
DEFAULT_THRESHOLD = 0.5

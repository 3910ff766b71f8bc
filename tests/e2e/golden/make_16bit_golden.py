"""Keras's own PROB of the example U-Net on a 16-bit image, for the test that a model served
with float32 input matches Keras on 16-bit data (tests/e2e/test_input_dtype.py).

Run with the Keras dev environment (`make keras-venv`):
    .venv-keras/bin/python tests/e2e/golden/make_16bit_golden.py
It writes example_16bit.npz beside it: `image`, uint16 [128, 128], a crop of
samples/cells_01.png on the 16-bit scale with fine detail below 8 bits (what a uint8 input
would lose), and `prob`, float32 [128, 128, 1], what Keras computes for image / 65535 (the
example model takes 0..1).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np
import tf_keras
from PIL import Image

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "example"))
from train import build_unet  # noqa: E402

HERE = Path(__file__).resolve().parent
SIZE = 128


def main() -> None:
    saved = tf_keras.models.load_model(ROOT / "example" / "unet_example.h5", compile=False)
    model = build_unet(None)
    model.set_weights(saved.get_weights())
    gray = np.asarray(Image.open(ROOT / "samples" / "cells_01.png"))[64 : 64 + SIZE, 32 : 32 + SIZE]
    detail = np.random.default_rng(25).integers(0, 257, gray.shape)
    image = np.minimum(gray.astype(np.int64) * 257 + detail, 65535).astype(np.uint16)
    prob = model.predict((image.astype(np.float32) / 65535.0)[None, :, :, None], verbose=0)[0]
    np.savez_compressed(HERE / "example_16bit.npz", image=image, prob=prob.astype(np.float32))
    print(f"wrote {HERE / 'example_16bit.npz'}: PROB {prob.min():.3f}..{prob.max():.3f}")


if __name__ == "__main__":
    main()

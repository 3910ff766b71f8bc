"""Measure the example model's IoU on samples/ with Keras itself, at each sample's own size.

    PYTHONPATH=. .venv-keras/bin/python example/evaluate.py [--model example/unet_example.h5]

The network is fully convolutional, so sizes other than 256x256 run natively when both sides
are multiples of 16; other sizes are mirror-padded at the bottom/right to the next multiple of
16 (as client/segment.py does) and the prediction is cropped back. These are the reference
numbers for serving.
"""

import argparse
import json
from pathlib import Path

import numpy as np
import tf_keras
from PIL import Image
from train import THRESHOLD, as_input, build_unet

from unetkit.core import UserError, run_cli

MULTIPLE = 16


def read_png(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as png:
            return np.asarray(png.convert("L"))
    except OSError as e:
        raise UserError(f"cannot read {path}: {e}; regenerate with example/make_samples.py") from e


def predict_mask(model: tf_keras.Model, image: np.ndarray) -> np.ndarray:
    height, width = image.shape
    padded = np.pad(image, ((0, -height % MULTIPLE), (0, -width % MULTIPLE)), mode="symmetric")
    prob = model.predict(as_input(padded[None]), verbose=0)[0, :height, :width, 0]
    return prob > THRESHOLD


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=Path("example/unet_example.h5"))
    parser.add_argument("--samples", type=Path, default=Path("samples"))
    args = parser.parse_args(argv)
    manifest_path = args.samples / "manifest.json"
    if not manifest_path.is_file():
        raise UserError(f"{manifest_path} not found; run example/make_samples.py first")
    if not args.model.is_file():
        raise UserError(f"{args.model} not found; train it with example/train.py")

    saved = tf_keras.models.load_model(args.model, compile=False)
    model = build_unet(None)
    model.set_weights(saved.get_weights())

    total_intersection = total_union = 0
    for entry in json.loads(manifest_path.read_text()):
        predicted = predict_mask(model, read_png(args.samples / entry["image"]))
        truth = read_png(args.samples / entry["mask"]) > 127
        intersection = int(np.logical_and(predicted, truth).sum())
        union = int(np.logical_or(predicted, truth).sum())
        total_intersection += intersection
        total_union += union
        size = f"{entry['width']}x{entry['height']}"
        print(f"{entry['image']:16} {size:8} IoU {intersection / union:.4f}")
    print(f"pooled IoU {total_intersection / total_union:.4f}")
    return 0


if __name__ == "__main__":
    run_cli(main)

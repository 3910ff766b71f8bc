"""Train the example U-Net on the synthetic cell task and save it with tf.keras as .h5.

Run from the repository root with the Keras dev environment:

    PYTHONPATH=. nice .venv-keras/bin/python example/train.py

The model is the zhixuhao/unet layout at base width 16 with a 256x256x1 input and a
sigmoid output; it expects pixels scaled by x/255 (the converter's default normalization).
Training runs on random crops of the 256x256 training images, which is four times cheaper
per step; the network is fully convolutional, so the trained weights are then put into the
256x256 model, and validation IoU is measured on held-out 256x256 images.
"""

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import synthetic
import tensorflow as tf
import tf_keras
from tf_keras import layers

from unetkit.core import UserError, atomic_path, run_cli, write_text_atomic

IMAGE_SIZE = 256
BASE_WIDTH = 16
DEPTH = 4
THRESHOLD = 0.5


def build_unet(size: int | None, base: int = BASE_WIDTH) -> tf_keras.Model:
    """The zhixuhao/unet layout: 2 convs per level, dropout at the bottom two levels,
    UpSampling2D + 2x2 conv + concatenate on the way up, a 2-filter 3x3 conv, 1x1 sigmoid."""

    def conv(filters: int, kernel: int, name: str) -> layers.Conv2D:
        return layers.Conv2D(
            filters,
            kernel,
            activation="relu",
            padding="same",
            kernel_initializer="he_normal",
            name=name,
        )

    inputs = layers.Input((size, size, 1), name="image")
    x = inputs
    skips = []
    for level in range(1, DEPTH + 1):
        width = base * 2 ** (level - 1)
        x = conv(width, 3, f"down{level}_conv1")(x)
        x = conv(width, 3, f"down{level}_conv2")(x)
        if level == DEPTH:
            x = layers.Dropout(0.5, name=f"down{level}_dropout")(x)
        skips.append(x)
        x = layers.MaxPooling2D(2, name=f"down{level}_pool")(x)
    x = conv(base * 2**DEPTH, 3, "bottom_conv1")(x)
    x = conv(base * 2**DEPTH, 3, "bottom_conv2")(x)
    x = layers.Dropout(0.5, name="bottom_dropout")(x)
    for level in range(DEPTH, 0, -1):
        width = base * 2 ** (level - 1)
        x = layers.UpSampling2D(2, name=f"up{level}_upsample")(x)
        x = conv(width, 2, f"up{level}_upconv")(x)
        x = layers.Concatenate(axis=3, name=f"up{level}_concat")([skips[level - 1], x])
        x = conv(width, 3, f"up{level}_conv1")(x)
        x = conv(width, 3, f"up{level}_conv2")(x)
    x = conv(2, 3, "head_conv")(x)
    outputs = layers.Conv2D(1, 1, activation="sigmoid", name="prob")(x)
    return tf_keras.Model(inputs, outputs, name="unet_example")


def dice_bce_loss(truth: tf.Tensor, prob: tf.Tensor) -> tf.Tensor:
    """Binary cross-entropy plus soft Dice: Dice keeps the sparse foreground from being
    ignored early on, cross-entropy gives sharp per-pixel gradients at the outlines."""
    bce = tf_keras.losses.binary_crossentropy(truth, prob)
    intersection = tf.reduce_sum(truth * prob)
    dice = (2.0 * intersection + 1.0) / (tf.reduce_sum(truth) + tf.reduce_sum(prob) + 1.0)
    return tf.reduce_mean(bce) + (1.0 - dice)


def random_crops(
    rng: np.random.Generator, images: np.ndarray, masks: np.ndarray, crop: int
) -> tuple[np.ndarray, np.ndarray]:
    """One random crop, randomly flipped and rotated by quarter turns, per image."""
    count, height, width = images.shape
    x = np.empty((count, crop, crop), dtype=np.uint8)
    y = np.empty((count, crop, crop), dtype=np.uint8)
    for i in range(count):
        top = rng.integers(0, height - crop + 1)
        left = rng.integers(0, width - crop + 1)
        turns = int(rng.integers(0, 4))
        flip = bool(rng.integers(0, 2))
        for source, target in ((images, x), (masks, y)):
            patch = np.rot90(source[i, top : top + crop, left : left + crop], turns)
            target[i] = patch[:, ::-1] if flip else patch
    return x, y


def as_input(images: np.ndarray) -> np.ndarray:
    """uint8 [N, H, W] to the model's input: float32 [N, H, W, 1] scaled by 1/255."""
    return (images.astype(np.float32) / 255.0)[..., None]


def iou_scores(model: tf_keras.Model, images: np.ndarray, masks: np.ndarray) -> dict[str, float]:
    """IoU of the thresholded prediction: pooled over the set, and per image (mean, min)."""
    prob = model.predict(as_input(images), batch_size=8, verbose=0)[..., 0]
    predicted = prob > THRESHOLD
    truth = masks.astype(bool)
    intersection = np.logical_and(predicted, truth).sum(axis=(1, 2))
    union = np.logical_or(predicted, truth).sum(axis=(1, 2))
    per_image = np.where(union > 0, intersection / np.maximum(union, 1), 1.0)
    return {
        "iou": float(intersection.sum() / max(union.sum(), 1)),
        "mean_image_iou": float(per_image.mean()),
        "min_image_iou": float(per_image.min()),
    }


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output", type=Path, default=Path("example/unet_example.h5"))
    parser.add_argument("--report", type=Path, default=Path("example/training_report.json"))
    parser.add_argument("--seed", type=int, default=20261125, help="weights, crops, dropout")
    parser.add_argument("--train-images", type=int, default=300)
    parser.add_argument("--val-images", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--crop", type=int, default=128, help="training crop size, multiple of 16")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    args = parser.parse_args(argv)
    if args.output.suffix != ".h5":
        raise UserError(f"--output {args.output} must end in .h5 (the legacy Keras HDF5 format)")
    if not 16 <= args.crop <= IMAGE_SIZE or args.crop % 2**DEPTH:
        raise UserError(f"--crop {args.crop} must be a multiple of 16 between 16 and 256")
    for name in ("train_images", "val_images", "epochs", "batch_size"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be at least 1")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    tf_keras.utils.set_random_seed(args.seed)
    tf.config.experimental.enable_op_determinism()
    started = time.monotonic()

    train_images, train_masks = synthetic.make_batch(
        synthetic.TRAIN_SEED, args.train_images, IMAGE_SIZE, IMAGE_SIZE
    )
    val_images, val_masks = synthetic.make_batch(
        synthetic.VALIDATION_SEED, args.val_images, IMAGE_SIZE, IMAGE_SIZE
    )
    print(
        f"data: {args.train_images} training and {args.val_images} validation images "
        f"({time.monotonic() - started:.1f} s), foreground {train_masks.mean():.3f}",
        flush=True,
    )

    trainer = build_unet(args.crop)
    schedule = tf_keras.optimizers.schedules.CosineDecay(
        args.learning_rate, decay_steps=args.epochs * -(-args.train_images // args.batch_size)
    )
    trainer.compile(optimizer=tf_keras.optimizers.Adam(schedule), loss=dice_bce_loss)
    crop_rng = np.random.default_rng(args.seed)
    steps = 0
    for epoch in range(args.epochs):
        x, y = random_crops(crop_rng, train_images, train_masks, args.crop)
        history = trainer.fit(
            as_input(x), y[..., None].astype(np.float32), batch_size=args.batch_size, verbose=0
        )
        steps += -(-len(x) // args.batch_size)
        print(
            f"epoch {epoch + 1}/{args.epochs}  loss {history.history['loss'][-1]:.4f}  "
            f"elapsed {time.monotonic() - started:.0f} s",
            flush=True,
        )
    training_seconds = time.monotonic() - started

    model = build_unet(IMAGE_SIZE)
    model.set_weights(trainer.get_weights())
    scores = iou_scores(model, val_images, val_masks)
    print(
        f"validation ({args.val_images} held-out {IMAGE_SIZE}x{IMAGE_SIZE} images, threshold "
        f"{THRESHOLD}): IoU {scores['iou']:.4f}, mean per image {scores['mean_image_iou']:.4f}, "
        f"min {scores['min_image_iou']:.4f}",
        flush=True,
    )

    with atomic_path(args.output) as tmp:
        model.save(tmp, save_format="h5", include_optimizer=False)
    report = {
        "model": {"layout": "zhixuhao/unet", "base_width": BASE_WIDTH, "input": [256, 256, 1]},
        "normalization": "x / 255",
        "seed": args.seed,
        "train_seed": synthetic.TRAIN_SEED,
        "validation_seed": synthetic.VALIDATION_SEED,
        "train_images": args.train_images,
        "val_images": args.val_images,
        "crop": args.crop,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "epochs": args.epochs,
        "steps": steps,
        "threshold": THRESHOLD,
        "validation": {k: round(v, 4) for k, v in scores.items()},
        "training_seconds": round(training_seconds, 1),
        "versions": {
            "python": platform.python_version(),
            "tensorflow": tf.__version__,
            "tf_keras": tf_keras.__version__,
            "numpy": np.__version__,
        },
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
    }
    write_text_atomic(args.report, json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.output} and {args.report}", flush=True)
    return 0


if __name__ == "__main__":
    run_cli(main)

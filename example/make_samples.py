"""Write the sample images of `samples/` and their exact ground-truth masks.

    .venv/bin/python example/make_samples.py [--out samples]

The samples come from `example/synthetic.py` with SAMPLES_SEED, a set the example model never saw
in training or validation. Images are 8-bit grayscale PNGs `NAME.png`; masks are `gt/NAME.png`
with 0 for background and 255 for cell. `manifest.json` lists them. Same output every run.
"""

import argparse
import io
import json
from pathlib import Path

import numpy as np
import synthetic
from PIL import Image

from unetkit.core import run_cli, write_bytes_atomic, write_text_atomic

# (name, height, width): mostly the model's own 256x256, plus sizes that clients must pad
# (300x200 is not a multiple of 16) or resize.
SAMPLES = (
    ("cells_01", 256, 256),
    ("cells_02", 256, 256),
    ("cells_03", 256, 256),
    ("cells_04", 256, 256),
    ("cells_05", 256, 256),
    ("cells_06", 256, 256),
    ("cells_07", 240, 320),
    ("cells_08", 200, 300),
)


def png_bytes(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("samples"), help="output folder")
    args = parser.parse_args(argv)

    manifest = []
    for index, (name, height, width) in enumerate(SAMPLES):
        image, mask = synthetic.make_sample(
            synthetic.sample_rng(synthetic.SAMPLES_SEED, index), height, width
        )
        write_bytes_atomic(args.out / f"{name}.png", png_bytes(image))
        write_bytes_atomic(args.out / "gt" / f"{name}.png", png_bytes(mask * 255))
        manifest.append(
            {
                "image": f"{name}.png",
                "mask": f"gt/{name}.png",
                "height": height,
                "width": width,
                "seed": synthetic.SAMPLES_SEED,
                "index": index,
                "foreground": round(float(mask.mean()), 4),
            }
        )
    write_text_atomic(args.out / "manifest.json", json.dumps(manifest, indent=2) + "\n")
    print(f"wrote {len(manifest)} samples to {args.out}")
    return 0


if __name__ == "__main__":
    run_cli(main)

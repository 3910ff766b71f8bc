"""Convert a Keras U-Net (.h5 or .keras) to ONNX with the kit's IMAGE -> PROB/MASK contract.

No TensorFlow or Keras is needed: the file is read with h5py and json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from unetkit.errors import run_cli
from unetkit.export import DEFAULT_OPSET, add_normalization_arguments, write_onnx


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="export_onnx.py",
        description=__doc__,
        epilog="Exit codes: 0 success; 2 bad input or model (one line on stderr, "
        "--debug shows the traceback).",
    )
    parser.add_argument("model", type=Path, help="Keras model file: legacy .h5 or Keras 3 .keras")
    parser.add_argument("-o", "--output", type=Path, required=True, help="ONNX file to write")
    add_normalization_arguments(parser)
    parser.add_argument(
        "--fixed-shape",
        action="store_true",
        help="pin H and W to the Keras input shape instead of leaving them dynamic",
    )
    parser.add_argument(
        "--opset", type=int, default=DEFAULT_OPSET, help="ONNX opset (default %(default)s)"
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    info = write_onnx(
        args.model,
        args.output,
        mean=args.mean,
        std=args.std,
        threshold=args.threshold,
        fixed_shape=args.fixed_shape,
        opset=args.opset,
    )
    size = (
        f"{info.fixed_size[0]}x{info.fixed_size[1]}"
        if info.fixed_size
        else f"H {info.height.describe()}, W {info.width.describe()}"
    )
    print(
        f"wrote {args.output}: IMAGE uint8 [N,H,W,{info.channels}] -> PROB [N,H',W',"
        f"{info.classes}], MASK; sizes: {size}"
    )
    return 0


if __name__ == "__main__":
    run_cli(main)

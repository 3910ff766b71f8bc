"""Convert a Keras U-Net (.h5 or .keras) to ONNX with the kit's IMAGE -> PROB/MASK contract.

No TensorFlow or Keras is needed: the file is read with h5py and json.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from unetkit.cli.options import add_normalization_arguments
from unetkit.core import add_debug_flag, run_cli
from unetkit.keras2onnx import DEFAULT_OPSET, convert


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
        "--input-size",
        metavar="HxW",
        help="pin H and W to this size (any model; the network must run at it), e.g. 256x256",
    )
    parser.add_argument(
        "--opset", type=int, default=DEFAULT_OPSET, help="ONNX opset (default %(default)s)"
    )
    add_debug_flag(parser)
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    with convert(
        args.model,
        mean=args.mean,
        std=args.std,
        threshold=args.threshold,
        fixed_shape=args.fixed_shape,
        input_size=args.input_size,
        opset=args.opset,
        input_dtype=args.input_dtype,
    ) as conversion:
        conversion.write(args.output)
    info = conversion.info
    print(
        f"wrote {args.output}: IMAGE {info.input_dtype} [N,H,W,{info.channels}] -> PROB [N,H',W',"
        f"{info.classes}], MASK; sizes: {info.describe_sizes()}"
    )
    for note in conversion.notes:
        print(f"note: {note}")
    return 0


def run() -> None:
    run_cli(main)


if __name__ == "__main__":
    run()

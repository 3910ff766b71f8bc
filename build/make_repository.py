"""Write the generated files of the Triton model repository from a Keras model.

model_repository/unet/1/model.onnx   the model, exported with the kit's IMAGE/PROB/MASK contract
model_repository/unet/configs/cpu.pbtxt   the CPU configuration, rendered for that model

Both are written to a temporary name and renamed, so Triton never sees a half-written file.
The GPU configuration (config.pbtxt) and plan come from build/build_engine.py.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from unetkit.errors import run_cli
from unetkit.export import add_normalization_arguments
from unetkit.repository import EXAMPLE_MODEL, make_repository


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="make_repository.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Exit codes: 0 success, 2 bad input (one line on stderr; --debug: traceback).",
    )
    parser.add_argument(
        "--model",
        type=Path,
        default=EXAMPLE_MODEL,
        help="Keras model file, legacy .h5 or Keras 3 .keras (default: %(default)s)",
    )
    parser.add_argument(
        "--repository",
        type=Path,
        default=Path("model_repository"),
        help="Triton model repository to write into (default: %(default)s)",
    )
    add_normalization_arguments(parser)
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    written = make_repository(
        args.model, args.repository, mean=args.mean, std=args.std, threshold=args.threshold
    )
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    run_cli(main)

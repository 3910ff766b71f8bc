"""Flags shared by several commands."""

from __future__ import annotations

import argparse

from unetkit.core import DEFAULT_INPUT_DTYPE, DEFAULT_THRESHOLD, INPUT_DTYPES


def add_normalization_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags that say what IMAGE is, how the graph normalizes it and turns PROB into
    MASK."""
    parser.add_argument(
        "--input-dtype",
        choices=list(INPUT_DTYPES),
        default=DEFAULT_INPUT_DTYPE,
        help="IMAGE's pixel type, and so the scale the model takes: uint8 0..255 (default), "
        "uint16 0..65535, float32 0..1; for models trained on 16-bit or float data",
    )
    parser.add_argument(
        "--mean",
        type=float,
        nargs="+",
        metavar="M",
        help="per-channel mean subtracted from IMAGE (in its units: 0..255 for uint8; default 0)",
    )
    parser.add_argument(
        "--std",
        type=float,
        nargs="+",
        metavar="S",
        help="per-channel divisor applied after --mean (default: the top of IMAGE's scale, "
        "255 for uint8, i.e. x/255)",
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=DEFAULT_THRESHOLD,
        help="MASK = PROB > threshold for one-class models (default %(default)s)",
    )

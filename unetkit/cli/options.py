"""Flags shared by several commands."""

from __future__ import annotations

import argparse

from unetkit.core import DEFAULT_THRESHOLD


def add_normalization_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags that say how the graph normalizes pixels and turns PROB into MASK."""
    parser.add_argument(
        "--mean",
        type=float,
        nargs="+",
        metavar="M",
        help="per-channel mean subtracted from raw pixels (0..255 units; default 0)",
    )
    parser.add_argument(
        "--std",
        type=float,
        nargs="+",
        metavar="S",
        help="per-channel divisor applied after --mean (default 255, i.e. x/255)",
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=DEFAULT_THRESHOLD,
        help="MASK = PROB > threshold for one-class models (default %(default)s)",
    )

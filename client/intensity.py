"""How an image's intensities become the model's input scale, for client/segment.py (copy the
folder as a whole).

The model's configuration says the scale it was trained on: its IMAGE data type, TYPE_UINT8
0..255 (the kit's default), TYPE_UINT16 0..65535 or TYPE_FP32 0..1; the graph normalizes
from there. Every image gets one linear mapping, LOW..HIGH of its own values to the model's
whole scale, decided once from statistics of the whole image (every pixel, or an even
subsample of at most STATS_PIXELS), never per tile: per-tile statistics make seams.

Without flags (the "auto" rule):
  - 8-bit data as it is;
  - other integer data by its effective bit depth, 0..2^bits - 1: the bits a TIFF declares
    (OME SignificantBits, SMaxSampleValue or MaxSampleValue, a BitsPerSample below its
    container's), else the bits the image's own maximum needs (at least 8);
  - float data in [0, 1] as 0..1;
  - other float data by csbdeep's percentile rule (3 and 99.8), with a warning.
--intensity-range LOW HIGH maps LOW..HIGH; --intensity percentile P_LOW P_HIGH maps the
image's P_LOW..P_HIGH percentiles (csbdeep's `normalize`: (x - p_low) / (p_high - p_low),
over all of the image's pixels and channels); --intensity minmax maps its minimum..maximum.
Integer model scales clip what falls outside; a float scale does not (as csbdeep).
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass

import numpy as np

STATS_PIXELS = 2**24  # at most this many pixels feed an image's statistics
CSBDEEP_PERCENTILES = (3.0, 99.8)  # csbdeep.utils.normalize's defaults
DIM_FRACTION = 1 / 16  # an image mapped onto less of the model's scale than this is dim
SCALES = {  # the model's IMAGE data type -> (numpy type, low, high)
    "TYPE_UINT8": (np.uint8, 0.0, 255.0),
    "TYPE_UINT16": (np.uint16, 0.0, 65535.0),
    "TYPE_FP32": (np.float32, 0.0, 1.0),
}
RANGE_HINT = "pass --intensity-range LOW HIGH (the range the model was trained on)"


class Undecidable(Exception):
    """No mapping can be chosen for this image without a flag; the message names it."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The intensity flags of segment.py."""
    choice = parser.add_mutually_exclusive_group()
    choice.add_argument(
        "--intensity-range",
        nargs=2,
        type=float,
        metavar=("LOW", "HIGH"),
        help="map image values LOW..HIGH onto the model's input scale (for every image)",
    )
    choice.add_argument(
        "--intensity",
        nargs="+",
        metavar="RULE",
        help="'percentile P_LOW P_HIGH' (csbdeep's convention, e.g. percentile 1 99.8) or "
        "'minmax': map each image by its own statistics (default: 8-bit as is, integers by "
        "their bit depth, floats in [0, 1] as 0..1)",
    )
    parser.add_argument(
        "--channel",
        type=int,
        metavar="N",
        help="segment channel N (from 0) of multi-channel images, for a model of one channel",
    )


@dataclass(frozen=True)
class Rule:
    """What the user asked for: auto, range (low, high), percentile (low, high) or minmax."""

    kind: str = "auto"
    low: float = 0.0
    high: float = 0.0


def rule_from_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Rule:
    """The Rule of the parsed flags; parser.error (exit 2) for flags that make no sense."""
    if args.channel is not None and args.channel < 0:
        parser.error(f"--channel counts from 0, got {args.channel}")
    if args.intensity_range is not None:
        low, high = args.intensity_range
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            parser.error(f"--intensity-range needs LOW < HIGH, got {low:g} {high:g}")
        return Rule("range", low, high)
    words = args.intensity or ["auto"]
    if words == ["minmax"] or words == ["auto"]:
        return Rule(words[0])
    if words[0] == "percentile" and len(words) == 3:
        try:
            low, high = float(words[1]), float(words[2])
        except ValueError:
            low = high = math.nan
        if 0 <= low < high <= 100:
            return Rule("percentile", low, high)
    parser.error(
        f"--intensity {' '.join(words)}: use 'percentile P_LOW P_HIGH' with "
        "0 <= P_LOW < P_HIGH <= 100, or 'minmax'"
    )
    raise AssertionError("parser.error exits")


@dataclass(frozen=True)
class Scale:
    """The model's input scale: its numpy type and the values LOW..HIGH it was trained on."""

    dtype: type[np.generic]
    low: float
    high: float

    @classmethod
    def of(cls, data_type: str) -> Scale:
        dtype, low, high = SCALES[data_type]
        return cls(dtype, low, high)

    @property
    def integer(self) -> bool:
        return np.issubdtype(self.dtype, np.integer)

    def describe(self) -> str:
        return f"{self.low:g}..{self.high:g} ({np.dtype(self.dtype).name})"


@dataclass(frozen=True)
class Mapping:
    """One image's values LOW..HIGH onto the model's scale, and why."""

    low: float
    high: float
    scale: Scale
    why: str
    identity: bool = False

    def apply(self, values: np.ndarray) -> np.ndarray:
        """The values on the model's scale, in its type (integers rounded and clipped)."""
        if self.identity:
            return values.astype(self.scale.dtype, copy=False)
        factor = (self.scale.high - self.scale.low) / (self.high - self.low)
        mapped = (values.astype(np.float64) - self.low) * factor + self.scale.low
        if not self.scale.integer:
            return mapped.astype(self.scale.dtype)
        mapped = np.nan_to_num(mapped, nan=self.scale.low)
        return np.clip(np.round(mapped), self.scale.low, self.scale.high).astype(self.scale.dtype)

    def describe(self) -> str:
        return (
            f"intensities {self.low:g}..{self.high:g} ({self.why}) mapped to the model's "
            f"{self.scale.describe()}"
        )


def choose(
    sample: np.ndarray, rule: Rule, scale: Scale, declared_bits: int | None = None
) -> tuple[Mapping, list[str]]:
    """The image's mapping from a sample of its values (all channels that carry
    intensities), and one-line warnings (each naming a flag). Undecidable when only a flag
    can say."""
    finite = sample[np.isfinite(sample)] if sample.dtype.kind == "f" else sample.ravel()
    if finite.size == 0:
        raise Undecidable(f"no pixel has a finite value: {RANGE_HINT}")
    warnings: list[str] = []
    if rule.kind == "range":
        low, high, why = rule.low, rule.high, "--intensity-range"
    elif rule.kind in ("percentile", "minmax"):
        low, high, why = _statistic(finite, rule)
    else:
        low, high, why = _automatic(finite, scale, declared_bits, warnings)
    if not high > low:
        raise Undecidable(f"every pixel is {low:g} by the {why} rule: {RANGE_HINT}")
    same_type = sample.dtype == scale.dtype or (sample.dtype.kind == "f" and not scale.integer)
    identity = (low, high) == (scale.low, scale.high) and same_type
    mapping = Mapping(float(low), float(high), scale, why, identity)
    lowest, highest = (float(v) for v in mapping.apply(np.array([finite.min(), finite.max()])))
    if highest - lowest < DIM_FRACTION * (scale.high - scale.low):
        warnings.append(
            f"the image fills only {lowest:g}..{highest:g} of the model's "
            f"{scale.describe()}: {RANGE_HINT}, or --intensity minmax"
        )
    return mapping, warnings


def _statistic(values: np.ndarray, rule: Rule) -> tuple[float, float, str]:
    if rule.kind == "minmax":
        return float(values.min()), float(values.max()), "--intensity minmax"
    low, high = np.percentile(values, [rule.low, rule.high])
    return float(low), float(high), f"percentiles {rule.low:g}..{rule.high:g}"


def _automatic(
    values: np.ndarray, scale: Scale, declared_bits: int | None, warnings: list[str]
) -> tuple[float, float, str]:
    if values.dtype == np.bool_:
        return 0.0, 1.0, "binary"
    if values.dtype.kind in "ui":
        smallest, largest = int(values.min()), int(values.max())
        if smallest < 0:
            raise Undecidable(
                f"{values.dtype} pixels down to {smallest}: {RANGE_HINT}, or --intensity "
                "percentile 3 99.8"
            )
        if values.dtype.itemsize == 1:
            return 0.0, 255.0, "8-bit"
        if declared_bits is not None:
            return 0.0, float(2**declared_bits - 1), f"{declared_bits}-bit, as the file declares"
        bits = max(8, largest.bit_length())
        return 0.0, float(2**bits - 1), f"{bits}-bit, from the image's maximum {largest}"
    smallest, largest = float(values.min()), float(values.max())
    if smallest >= 0.0 and largest <= 1.0:
        return 0.0, 1.0, "float in [0, 1]"
    pmin, pmax = CSBDEEP_PERCENTILES
    low, high = np.percentile(values, [pmin, pmax])
    warnings.append(
        f"float pixels outside [0, 1] ({smallest:g}..{largest:g}) are mapped by their "
        f"percentiles {pmin:g}..{pmax:g}: {RANGE_HINT}"
    )
    return float(low), float(high), f"percentiles {pmin:g}..{pmax:g}"


def declared_bits(bits_per_sample: int, container_bits: int, *maxima: int | None) -> int | None:
    """The bit depth a file declares for integer data below its container's, if any: from
    the largest value it says samples take (OME SignificantBits as 2^bits - 1,
    SMaxSampleValue, MaxSampleValue), else from BitsPerSample."""
    for maximum in maxima:
        if maximum is not None and 0 < maximum < 2**container_bits - 1:
            return max(1, int(maximum).bit_length())
    return bits_per_sample if bits_per_sample < container_bits else None


def even_rows(height: int, width: int, pages: int) -> tuple[list[int], slice]:
    """Which pages and rows feed an image's statistics: all of them up to STATS_PIXELS,
    else pages and rows evenly spread over the image."""
    per_page = height * width
    count = min(pages, max(1, STATS_PIXELS // per_page))
    chosen = sorted({round((i + 0.5) * pages / count - 0.5) for i in range(count)})
    step = max(1, -(-per_page * len(chosen) // STATS_PIXELS))
    return chosen, slice(0, height, step)

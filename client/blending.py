"""How the outputs of a page's tiles become its mask (numpy only). Part of client/segment.py
(copy the folder as a whole); tiling.py says where the tiles go.

A 'valid' U-Net's tiles join seamlessly, and each output pixel is taken from one tile
(blend "none", MASK only). A 'same' U-Net's tiles overlap, and their probabilities are
blended with weights that fall towards tile edges (Gaussian or linear) before the mask is
taken. The Assembler keeps only the band of rows that unfinished tiles still touch, and
hands finished rows back top to bottom, so memory follows the image's width, not its area.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from tiling import Axis, Plan

BLENDS = ("gaussian", "linear", "none")
# Standard deviation of the Gaussian weights, as a fraction of the tile (MONAI's default).
GAUSSIAN_SIGMA = 0.125


def axis_weights(size: int, blend: str) -> np.ndarray:
    """Blending weight of each output pixel of a tile along one axis, highest in the
    middle, positive everywhere (so every covered pixel has a weight)."""
    position = np.arange(size, dtype=np.float64)
    if blend == "gaussian":
        sigma = GAUSSIAN_SIGMA * size
        weights = np.exp(-0.5 * ((position - (size - 1) / 2) / sigma) ** 2)
    elif blend == "linear":
        weights = np.minimum(position + 1, size - position)
    elif blend == "none":
        weights = np.ones(size)
    else:
        raise ValueError(f"blend must be one of {BLENDS}, got {blend!r}")
    return (weights / weights.max()).astype(np.float32)


def weight_totals(axis: Axis, weights: np.ndarray) -> np.ndarray:
    """The sum of the tiles' weights at each pixel along the axis (positive everywhere)."""
    totals = np.zeros(axis.length, np.float64)
    for index in range(axis.count):
        low, high = axis.span(index)
        totals[low:high] += weights[: high - low]
    return totals.astype(np.float32)


def shift_up(band: np.ndarray, count: int) -> None:
    """Move the band's rows `count`.. to its top and zero the rest, in place: block by
    block, so that no copy of the band is ever made."""
    height = len(band)
    for top in range(0, height - count, count):
        end = min(top + count, height - count)
        band[top:end] = band[top + count : end + count]
    band[height - count :] = 0


class Assembler:
    """Collects the tiles' outputs of one image into its mask, one band of rows at a time.

    blend "gaussian"/"linear": add(...) takes PROB [h, w, K]; the band sums PROB x weight;
    a finished row is that sum over the sum of the weights, then `PROB > threshold` (K = 1) or
    the argmax over K, as the model computes MASK. blend "none": add(...) takes MASK [h, w]
    and keeps the tile's share between the cuts (Axis.cuts).

    Tiles may come back in any order. Only tile rows first_open .. first_open + window - 1
    may be added (admits() says which), so the band holds at most those rows.
    """

    def __init__(
        self, plan: Plan, blend: str, classes: int = 1, threshold: float = 0.5, window: int = 2
    ) -> None:
        if blend not in BLENDS:
            raise ValueError(f"blend must be one of {BLENDS}, got {blend!r}")
        self.plan, self.blend, self.threshold = plan, blend, threshold
        rows, width = plan.rows, plan.cols.length
        self.window = max(1, min(window, rows.count))
        self.remaining = [plan.cols.count] * rows.count  # tiles not yet added, per tile row
        self.first_open = 0  # the first tile row with tiles still to come
        self.base = 0  # the image row held in band row 0; rows above it are handed out
        height = max(
            rows.span(min(i + self.window - 1, rows.count - 1))[1] - rows.starts[i]
            for i in range(rows.count)
        )
        if blend == "none":
            self.mask = np.zeros((height, width), np.uint8)
            self.cut_rows, self.cut_cols = rows.cuts(), plan.cols.cuts()
        else:
            self.sum = np.zeros((height, width, classes), np.float32)
            self.row_weights = axis_weights(rows.out, blend)
            self.col_weights = axis_weights(plan.cols.out, blend)
            # A tile's weight is row weight x column weight, and the tiles form a full grid:
            # the weights' sum at (y, x) is (sum over tile rows) x (sum over tile columns).
            self.row_totals = weight_totals(rows, self.row_weights)
            self.col_totals = weight_totals(plan.cols, self.col_weights)

    def admits(self, index: int) -> bool:
        """Whether tile `index` may be added now (its rows fit in the band)."""
        return self.plan.position(index)[0] < self.first_open + self.window

    def add(self, index: int, output: np.ndarray) -> None:
        """Add the model's output for tile `index`: PROB [h, w, K] or MASK [h, w]."""
        row, col = self.plan.position(index)
        if not self.admits(index):
            raise ValueError(f"tile row {row} is beyond the band (first open {self.first_open})")
        expected = (self.plan.rows.out, self.plan.cols.out)
        if output.shape[:2] != expected:
            raise ValueError(f"tile output is {output.shape[:2]}, expected {expected}")
        y0, y1 = self.plan.rows.span(row)
        x0, x1 = self.plan.cols.span(col)
        if self.blend == "none":
            c0, c1 = self.cut_rows[row], self.cut_rows[row + 1]
            d0, d1 = self.cut_cols[col], self.cut_cols[col + 1]
            share = output[c0 - y0 : c1 - y0, d0 - x0 : d1 - x0]
            self.mask[c0 - self.base : c1 - self.base, d0:d1] = share
        else:
            weight = np.outer(self.row_weights[: y1 - y0], self.col_weights[: x1 - x0])
            band = slice(y0 - self.base, y1 - self.base)
            self.sum[band, x0:x1] += output[: y1 - y0, : x1 - x0] * weight[:, :, None]
        self.remaining[row] -= 1

    @property
    def done(self) -> bool:
        return self.base == self.plan.rows.length

    def finished_rows(self) -> tuple[int, np.ndarray] | None:
        """(first row, mask rows) that no tile still to come touches, or None. Hands each
        row out once, top to bottom, and frees its place in the band."""
        rows = self.plan.rows
        while self.first_open < rows.count and self.remaining[self.first_open] == 0:
            self.first_open += 1
        end = rows.length if self.first_open == rows.count else rows.starts[self.first_open]
        count = end - self.base
        if count <= 0:
            return None
        if self.blend == "none":
            mask = self.mask[:count].copy()
            buffers: tuple[np.ndarray, ...] = (self.mask,)
        else:
            # in place: these rows of the band are handed out and then cleared anyway
            prob = self.sum[:count]
            prob /= self.row_totals[self.base : end, None, None]
            prob /= self.col_totals[None, :, None]
            if prob.shape[2] == 1:
                mask = (prob[:, :, 0] > self.threshold).astype(np.uint8)
            else:
                mask = prob.argmax(axis=2).astype(np.uint8)
            buffers = (self.sum,)
        for buffer in buffers:
            shift_up(buffer, count)
        start, self.base = self.base, end
        return start, mask

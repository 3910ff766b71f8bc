"""Where the tiles of an image go and how their outputs become one mask (numpy only).

Part of client/segment.py (copy the folder as a whole). Coordinates are image pixels.

A model takes input tiles of the sizes its size rule allows. The output of a T-pixel tile
has T - shrink pixels and its pixel 0 lies over input pixel `offset` of the tile: shrink
and offset are 0 for 'same' U-Nets and the network's border for 'valid' ones (Ronneberger
et al.: 572 in, 388 out, border 92). So each tile is planned by its *output*: the output
tiles cover the image, and each input tile starts `offset` pixels before its output. The
parts of an input tile outside the image are mirrored from the image ("overlap-tile").

Tiles start on the grid of the rule's multiple, so every tile sees its pixels at the same
phase of the network's poolings as a single whole-image pass would: a 'valid' U-Net then
gives exactly the whole-image result, seamlessly. A 'same' U-Net pads every tile with zeros
inside the network, which shifts its outputs near tile edges; there tiles overlap, and the
probabilities are blended with weights that fall towards tile edges (Gaussian or linear)
before the mask is taken.

The Assembler keeps only the band of rows that unfinished tiles still touch, and hands
finished rows back top to bottom, so memory follows the image's width, not its area.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BLENDS = ("gaussian", "linear", "none")
# Standard deviation of the Gaussian weights, as a fraction of the tile (MONAI's default).
GAUSSIAN_SIGMA = 0.125


@dataclass(frozen=True)
class Axis:
    """The tiles along one axis of an image."""

    length: int  # image pixels along this axis
    tile: int  # input tile size, one the model takes
    shrink: int  # output pixels fewer than input pixels
    offset: int  # input pixel (of the tile) under output pixel 0
    starts: tuple[int, ...]  # image coordinate of each tile's first output pixel

    @property
    def out(self) -> int:
        """Output pixels of one tile."""
        return self.tile - self.shrink

    @property
    def count(self) -> int:
        return len(self.starts)

    def input_start(self, index: int) -> int:
        """Image coordinate of the tile's first input pixel (negative: mirrored)."""
        return self.starts[index] - self.offset

    def input_indices(self, index: int) -> np.ndarray:
        """The image pixels the tile's input takes, mirrored where it reaches outside."""
        start = self.input_start(index)
        return mirror(np.arange(start, start + self.tile), self.length)

    def span(self, index: int) -> tuple[int, int]:
        """The image pixels the tile's output covers (cropped to the image)."""
        return self.starts[index], min(self.starts[index] + self.out, self.length)

    def cuts(self) -> list[int]:
        """Crop mode: tile i alone gives pixels cuts[i] .. cuts[i+1]-1, cut in the middle of
        each overlap, so the cropped tiles cover the image exactly once."""
        middles = [
            (self.starts[i] + self.starts[i - 1] + self.out) // 2 for i in range(1, self.count)
        ]
        return [0, *(min(max(m, 0), self.length) for m in middles), self.length]


def next_valid(multiple: int, minimum: int, size: int) -> int:
    """The smallest size minimum + k*multiple that is at least `size` (SizeRule.next_valid)."""
    if size <= minimum:
        return minimum
    return minimum + -(-(size - minimum) // multiple) * multiple


def largest_valid(multiple: int, minimum: int, at_most: int) -> int | None:
    """The largest size minimum + k*multiple that is at most `at_most`, None if none is."""
    if at_most < minimum:
        return None
    return minimum + (at_most - minimum) // multiple * multiple


def plan_axis(
    length: int,
    multiple: int,
    minimum: int,
    largest_tile: int,
    shrink: int = 0,
    offset: int = 0,
    overlap: float = 0.25,
) -> Axis:
    """Tiles along an axis of `length` pixels.

    One tile when the whole axis (plus the border a 'valid' network loses) fits in a size
    the model takes that is at most `largest_tile` (itself a valid size). Otherwise tiles
    of `largest_tile` whose outputs overlap by at least `overlap` of their size, spread
    evenly on the grid of `multiple`, the last reaching past the end.
    """
    if length < 1:
        raise ValueError(f"an axis of {length} pixels has nothing to tile")
    whole = next_valid(multiple, minimum, length + shrink)
    if whole <= largest_tile:
        return Axis(length, whole, shrink, offset, (0,))
    out = largest_tile - shrink
    if out < 1:
        raise ValueError(f"a {largest_tile}-pixel tile leaves no output (shrink {shrink})")
    room = int(out * (1.0 - overlap))  # the largest step that keeps the overlap
    grid = multiple if room >= multiple else 1
    step = max(room // grid * grid, 1)
    last = -(-(length - out) // grid) * grid  # first grid start whose output reaches the end
    gaps = -(-last // step)
    units = last // grid
    starts = tuple(grid * ((2 * i * units + gaps) // (2 * gaps)) for i in range(gaps + 1))
    return Axis(length, largest_tile, shrink, offset, starts)


def mirror(indices: np.ndarray, length: int) -> np.ndarray:
    """Indices outside 0..length-1 reflected back in, the edge pixel repeated (numpy's
    'symmetric' padding), as often as needed: a 1-pixel strip gives its one pixel."""
    period = 2 * length
    folded = np.mod(indices, period)
    return np.where(folded < length, folded, period - 1 - folded)


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


@dataclass(frozen=True)
class Plan:
    """Tiles of one image (or one page): rows x cols, numbered row by row."""

    rows: Axis
    cols: Axis

    @property
    def count(self) -> int:
        return self.rows.count * self.cols.count

    @property
    def tile_shape(self) -> tuple[int, int]:
        return self.rows.tile, self.cols.tile

    def position(self, index: int) -> tuple[int, int]:
        """(tile row, tile column) of tile `index`."""
        return divmod(index, self.cols.count)


def plan_image(
    height: int,
    width: int,
    rules: tuple[tuple[int, int], tuple[int, int]],
    largest_tile: tuple[int, int],
    geometry: tuple[int, int, int, int] = (0, 0, 0, 0),
    overlap: float = 0.25,
) -> Plan:
    """Tiles of an HxW image. rules: ((multiple, minimum) for H, same for W); geometry:
    (shrink_h, shrink_w, offset_h, offset_w)."""
    shrink_h, shrink_w, offset_h, offset_w = geometry
    (multiple_h, minimum_h), (multiple_w, minimum_w) = rules
    return Plan(
        plan_axis(height, multiple_h, minimum_h, largest_tile[0], shrink_h, offset_h, overlap),
        plan_axis(width, multiple_w, minimum_w, largest_tile[1], shrink_w, offset_w, overlap),
    )


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

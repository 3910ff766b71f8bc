"""Where the tiles of an image go, and the predictor that turns them into outputs (numpy
only). Part of client/segment.py (copy the folder as a whole). Coordinates are image pixels.

A model takes input tiles of the sizes its size rule allows. The output of a T-pixel tile
has T - shrink pixels and its pixel 0 lies over input pixel `offset` of the tile: shrink
and offset are 0 for 'same' U-Nets and the network's border for 'valid' ones (Ronneberger
et al.: 572 in, 388 out, border 92). So each tile is planned by its *output*: the output
tiles cover the image, and each input tile starts `offset` pixels before its output. The
parts of an input tile outside the image are mirrored from the image ("overlap-tile").

Tiles start on the grid of the rule's multiple, so every tile sees its pixels at the same
phase of the network's poolings as a single whole-image pass would: a 'valid' U-Net then
gives exactly the whole-image result, seamlessly. A 'same' U-Net pads every tile with zeros
inside the network, which shifts its outputs near tile edges; there tiles overlap, and
blending.py blends their probabilities before the mask is taken.

The model is a `predictor` callable, as in MONAI's sliding_window_inference: it takes a
batch of input tiles and gives their outputs, and nothing here knows how it is called.
SlidingWindow cuts the tiles of a batch, runs the predictor on them in worker threads (so
several batches are in flight at once) and hands the outputs back to be assembled.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from blending import Assembler

# What the predictor is asked for: labels (MASK [n, h, w]) where tiles are cropped, else
# probabilities (PROB [n, h, w, K]) to blend. A predictor: (tiles [n, h, w, C], which one)
# -> outputs.
LABELS, PROBABILITIES = "MASK", "PROB"
Predictor = Callable[[np.ndarray, str], np.ndarray]
# The default --tile: big enough that the overlap costs little, small enough that a
# server's activations stay modest (a U-Net keeps hundreds of bytes per pixel).
DEFAULT_TILE = 1024
DEFAULT_OVERLAP = 0.25  # MONAI's sliding_window_inference default


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


class SizeRule(NamedTuple):
    """Valid sizes along one axis: minimum + k * multiple (k >= 0), as the model's config
    publishes them. The client's one copy of the kit's unetkit.core.SizeRule (this folder
    stands alone); a test keeps the two equal."""

    multiple: int
    minimum: int

    def next_valid(self, size: int) -> int:
        """The smallest valid size that is at least `size`."""
        if size <= self.minimum:
            return self.minimum
        return self.minimum + -(-(size - self.minimum) // self.multiple) * self.multiple

    def largest_valid(self, at_most: int) -> int | None:
        """The largest valid size that is at most `at_most`, None if none is."""
        if at_most < self.minimum:
            return None
        return self.minimum + (at_most - self.minimum) // self.multiple * self.multiple


def choose_tile(
    rules: tuple[SizeRule, SizeRule],
    wanted: int | None,
    max_side: int | None,
    fixed_size: tuple[int, int] | None = None,
) -> tuple[int, int]:
    """The input tile (H, W): per axis, the largest size the model takes that is at most
    `wanted` (--tile), by default at most DEFAULT_TILE and the server's max_image_side. A
    model of one fixed size is tiled at that size. ValueError (one line) when none fits."""
    if fixed_size is not None:
        return fixed_size
    if wanted is not None and max_side is not None and wanted > max_side:
        raise ValueError(
            f"--tile {wanted} is larger than the server takes (max_image_side "
            f"{max_side}): choose at most {max_side}"
        )
    limit = wanted if wanted is not None else min(DEFAULT_TILE, max_side or DEFAULT_TILE)
    rule_h, rule_w = (SizeRule(*rule) for rule in rules)
    height, width = rule_h.largest_valid(limit), rule_w.largest_valid(limit)
    if height is None or width is None:
        smallest = max(rule_h.minimum, rule_w.minimum)
        raise ValueError(
            f"tiles of at most {limit} pixels are smaller than the model takes "
            f"({rule_h.minimum}x{rule_w.minimum} at least): "
            f"{'choose --tile' if wanted else 'pass --tile'} {smallest} or more"
        )
    return height, width


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
    whole = SizeRule(multiple, minimum).next_valid(length + shrink)
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
    rules: tuple[SizeRule, SizeRule] | tuple[tuple[int, int], tuple[int, int]],
    largest_tile: tuple[int, int],
    geometry: tuple[int, int, int, int] = (0, 0, 0, 0),
    overlap: float = 0.25,
) -> Plan:
    """Tiles of an HxW image. rules: (multiple, minimum) for H, same for W; geometry:
    (shrink_h, shrink_w, offset_h, offset_w)."""
    shrink_h, shrink_w, offset_h, offset_w = geometry
    (multiple_h, minimum_h), (multiple_w, minimum_w) = rules
    return Plan(
        plan_axis(height, multiple_h, minimum_h, largest_tile[0], shrink_h, offset_h, overlap),
        plan_axis(width, multiple_w, minimum_w, largest_tile[1], shrink_w, offset_w, overlap),
    )


class TiledPage:
    """One page (plane) of an image on its way through the model: its plan, how to read a
    tile (`read(rows, cols)`: the pixels [len(rows), len(cols), C] at those image indices),
    and the Assembler its outputs go into."""

    def __init__(
        self,
        plan: Plan,
        read: Callable[[np.ndarray, np.ndarray], np.ndarray],
        blend: str,
        classes: int = 1,
        threshold: float = 0.5,
        window: int = 2,
    ) -> None:
        blend = "none" if plan.count == 1 else blend  # a lone tile needs no blending
        self.plan, self.read, self.blend = plan, read, blend
        self.output = LABELS if blend == "none" else PROBABILITIES
        self.assembler = Assembler(plan, blend, classes, threshold, window)
        self.failed = False
        self.owner: Any = None  # what the caller knows the page by; never looked at here

    def inputs(self, tile: int) -> np.ndarray:
        """The tile's input pixels, mirrored from the image where it reaches outside."""
        row, col = self.plan.position(tile)
        return self.read(self.plan.rows.input_indices(row), self.plan.cols.input_indices(col))


@dataclass(frozen=True)
class Tiler:
    """How the pages of every image are tiled for one model: its size rule, the tile, where
    its output lies on its input, the overlap and blending, and how PROB becomes MASK."""

    rules: tuple[SizeRule, SizeRule]
    tile: tuple[int, int]
    geometry: tuple[int, int, int, int] | None
    overlap: float
    blend: str
    classes: int = 1
    threshold: float = 0.5

    @classmethod
    def for_model(
        cls,
        rules: tuple[SizeRule, SizeRule],
        geometry: tuple[int, int, int, int] | None,
        max_side: int | None,
        fixed_size: tuple[int, int] | None = None,
        tile: int | None = None,
        overlap: float | None = None,
        blend: str | None = None,
        **assembly: float,
    ) -> Tiler:
        """The defaults for the model: tiles as large as it takes up to DEFAULT_TILE (or
        `tile`); for a model whose output shrinks ('valid'), tiles that join without
        overlap or blending, else DEFAULT_OVERLAP and Gaussian blending."""
        shrinks = geometry is not None and max(geometry[:2]) > 0
        return cls(
            rules,
            choose_tile(rules, tile, max_side, fixed_size),
            geometry,
            overlap if overlap is not None else (0.0 if shrinks else DEFAULT_OVERLAP),
            blend or ("none" if shrinks else "gaussian"),
            **assembly,  # type: ignore[arg-type]
        )

    def page(
        self,
        height: int,
        width: int,
        read: Callable[[np.ndarray, np.ndarray], np.ndarray],
        in_flight: int = 1,
        owner: Any = None,
    ) -> TiledPage:
        """An HxW page's tiles, assembled in a band tall enough for `in_flight` tiles."""
        plan = plan_image(
            height, width, self.rules, self.tile, self.geometry or (0, 0, 0, 0), self.overlap
        )
        window = -(-in_flight // plan.cols.count) + 1
        page = TiledPage(plan, read, self.blend, self.classes, self.threshold, window)
        page.owner = owner
        return page


@dataclass
class Batch:
    """Tiles of one shape and one output kind, sent to the predictor together."""

    tiles: list[tuple[TiledPage, int]]
    output: str
    seconds: float = 0.0  # how long the predictor took


class SlidingWindow:
    """Runs the predictor on batches of tiles, up to `concurrency` batches at once (each in
    a worker thread; the predictor must be thread-safe). Tiles are cut and outputs handed
    back in the calling thread, so pages and files are touched by one thread only. A page
    whose `read` raises `unreadable` (damaged data) fails; its batch's other tiles go on."""

    def __init__(
        self,
        predictor: Predictor,
        concurrency: int = 1,
        unreadable: type[Exception] | tuple[type[Exception], ...] = (),
    ) -> None:
        self.predictor, self.unreadable = predictor, unreadable
        self.pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="predict")
        self.pending: dict[Future[np.ndarray], Batch] = {}
        self.seconds: list[float] = []  # how long each batch took that came back
        self.tiles_sent = 0

    @property
    def in_flight(self) -> int:
        return len(self.pending)

    def submit(self, batch: Batch) -> list[tuple[TiledPage, Exception]]:
        """Cut the batch's tiles and start the predictor on them. A tile whose pixels cannot
        be read fails its page (returned with the reason); the others are still sent."""
        cut, failures = [], []
        for page, tile in batch.tiles:
            if page.failed:
                continue
            try:
                cut.append((page, tile, page.inputs(tile)))
            except self.unreadable as e:
                page.failed = True
                failures.append((page, e))
        batch.tiles = [(page, tile) for page, tile, _ in cut if not page.failed]
        if batch.tiles:
            pixels = np.stack([pixels for page, _, pixels in cut if not page.failed])
            self.pending[self.pool.submit(self._predict, pixels, batch)] = batch
            self.tiles_sent += len(batch.tiles)
        return failures

    def _predict(self, pixels: np.ndarray, batch: Batch) -> np.ndarray:
        started = time.perf_counter()
        outputs = self.predictor(pixels, batch.output)
        batch.seconds = time.perf_counter() - started
        return outputs

    def next_done(self) -> tuple[Batch, np.ndarray | None, BaseException | None]:
        """Wait for a batch to finish: (batch, its outputs, None) or (batch, None, error)."""
        done, _ = wait(self.pending, return_when=FIRST_COMPLETED)
        future = next(iter(done))
        batch = self.pending.pop(future)
        error = future.exception()
        if error is None:
            self.seconds.append(batch.seconds)
        return batch, None if error is not None else future.result(), error

    def close(self) -> None:
        """Start nothing more; batches in flight end in their threads."""
        self.pool.shutdown(wait=False, cancel_futures=True)

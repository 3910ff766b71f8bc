"""The client's tiling math (client/tiling.py, client/blending.py), without a server:
where tiles go, that the cropped tiles cover an image exactly once, that blending weights
sum to one, that the band hands every row out once, and that a 'valid' network's tiles
join into its whole-image result. Odd sizes, tiny images and one-pixel-wide strips
included."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers.client import client_module

tiling = client_module("tiling")
blending = client_module("blending")

# (multiple, minimum, shrink, offset): 'same' U-Nets, the Ronneberger 'valid' U-Net, the
# golden 'valid' net, a net taking any size from 3, an odd rule.
RULES = [(16, 16, 0, 0), (16, 188, 184, 92), (2, 18, 16, 8), (1, 3, 2, 1), (8, 9, 0, 0)]
LENGTHS = [1, 2, 7, 15, 16, 17, 100, 255, 257, 1000, 1023, 1025, 3001]


def valid_sizes(multiple: int, minimum: int, limit: int) -> list[int]:
    return list(range(minimum, limit + 1, multiple))


def plans(rule: tuple[int, int, int, int]):
    multiple, minimum, shrink, offset = rule
    for length, overlap in itertools.product(LENGTHS, (0.0, 0.25, 0.5, 0.9)):
        for largest in valid_sizes(multiple, minimum, 1024)[:: max(1, 40 // multiple)][-4:]:
            yield (
                tiling.plan_axis(length, multiple, minimum, largest, shrink, offset, overlap),
                (
                    largest,
                    overlap,
                ),
            )


@pytest.mark.parametrize("rule", RULES, ids=str)
def test_tiles_are_sizes_the_model_takes_and_reach_past_every_pixel(rule) -> None:
    multiple, minimum, _, _ = rule
    for axis, (largest, overlap) in plans(rule):
        assert axis.tile >= minimum and (axis.tile - minimum) % multiple == 0
        assert axis.tile <= largest or axis.count == 1
        assert axis.starts[0] == 0
        assert all(b > a for a, b in itertools.pairwise(axis.starts))
        assert axis.starts[-1] < axis.length <= axis.starts[-1] + axis.out
        for a, b in itertools.pairwise(axis.starts):
            assert a + axis.out - b >= overlap * axis.out  # at least the overlap asked for
        if axis.count > 1 and int(axis.out * (1 - overlap)) >= multiple:
            # on the pooling grid: every tile sees the phase a whole-image pass sees
            assert all(s % multiple == 0 for s in axis.starts)


@pytest.mark.parametrize("rule", RULES, ids=str)
def test_cropped_tiles_cover_the_axis_exactly_once(rule) -> None:
    for axis, _ in plans(rule):
        cuts = axis.cuts()
        assert cuts[0] == 0 and cuts[-1] == axis.length
        covered = np.zeros(axis.length, int)
        for index in range(axis.count):
            low, high = axis.span(index)
            assert low <= cuts[index] <= cuts[index + 1] <= high  # each keeps its own pixels
            covered[cuts[index] : cuts[index + 1]] += 1
        assert np.all(covered == 1)


def test_an_image_that_fits_is_one_tile_padded_to_the_next_valid_size() -> None:
    axis = tiling.plan_axis(300, 16, 188, 1020, 184, 92)
    assert axis.starts == (0,) and axis.tile == 492  # 300 + 184 = 484 -> 188 + 19*16
    axis = tiling.plan_axis(201, 16, 16, 1024)
    assert axis.starts == (0,) and axis.tile == 208


def test_one_pixel_wide_strip_and_one_pixel_image() -> None:
    plan = tiling.plan_image(1, 100_000, ((16, 16), (16, 16)), (1024, 1024))
    assert (plan.rows.count, plan.rows.tile) == (1, 16)
    assert plan.cols.count > 100 and plan.cols.tile == 1024
    assert np.all(plan.rows.input_indices(0) == 0)  # the one row, mirrored 16 times
    lone = tiling.plan_image(1, 1, ((16, 188), (16, 188)), (1020, 1020), (184, 184, 92, 92))
    assert lone.count == 1 and lone.tile_shape == (188, 188)
    assert np.all(lone.cols.input_indices(0) == 0)


@pytest.mark.parametrize("length", [1, 2, 3, 7])
def test_mirroring_is_numpys_symmetric_padding_however_far_it_reaches(length: int) -> None:
    values = np.arange(length) * 10
    for before, after in itertools.product(range(0, 3 * length + 2), repeat=2):
        indices = tiling.mirror(np.arange(-before, length + after), length)
        np.testing.assert_array_equal(
            values[indices], np.pad(values, (before, after), mode="symmetric")
        )


@pytest.mark.parametrize("blend", ["gaussian", "linear"])
@pytest.mark.parametrize("size", [1, 2, 5, 64, 1024])
def test_axis_weights_are_positive_and_highest_in_the_middle(blend: str, size: int) -> None:
    weights = blending.axis_weights(size, blend)
    assert weights.shape == (size,) and np.all(weights > 0) and weights.max() == 1
    np.testing.assert_allclose(weights, weights[::-1])
    assert weights[(size - 1) // 2] == weights.max()


def blended_weight_sums(plan, blend: str) -> np.ndarray:
    """Sum over tiles of each tile's weight divided by the total weight at each pixel."""
    height, width = plan.rows.length, plan.cols.length
    total = np.zeros((height, width))
    per_tile = []
    for index in range(plan.count):
        row, col = plan.position(index)
        (y0, y1), (x0, x1) = plan.rows.span(row), plan.cols.span(col)
        weight = np.zeros((height, width))
        weight[y0:y1, x0:x1] = np.outer(
            blending.axis_weights(plan.rows.out, blend)[: y1 - y0],
            blending.axis_weights(plan.cols.out, blend)[: x1 - x0],
        )
        per_tile.append(weight)
        total += weight
    assert np.all(total > 0), "a pixel no tile covers"
    return sum(w / total for w in per_tile)


@pytest.mark.parametrize("blend", ["gaussian", "linear"])
@pytest.mark.parametrize(("height", "width"), [(37, 53), (100, 16), (1, 90), (90, 1)])
def test_blending_weights_sum_to_one_everywhere(blend: str, height: int, width: int) -> None:
    plan = tiling.plan_image(height, width, ((4, 4), (4, 4)), (16, 16), overlap=0.5)
    assert plan.count > 1
    np.testing.assert_allclose(blended_weight_sums(plan, blend), 1.0, rtol=1e-12)


def run_assembler(plan, blend, outputs, classes=1, threshold=0.5, window=2, order=None):
    """Feed outputs[index] in the given order (default: row by row), as the client does:
    only admitted tiles, finished rows collected as they come. Returns the mask and the
    (top, rows) bands in the order they were handed out."""
    assembler = blending.Assembler(plan, blend, classes, threshold, window)
    waiting = list(range(plan.count)) if order is None else list(order)
    bands = []
    while waiting:
        index = next(i for i in waiting if assembler.admits(i))
        waiting.remove(index)
        assembler.add(index, outputs[index])
        while (band := assembler.finished_rows()) is not None:
            bands.append(band)
    assert assembler.done
    return np.concatenate([rows for _, rows in bands]), bands


def tile_outputs(plan, field: np.ndarray) -> list[np.ndarray]:
    """Each tile's output as the slice of `field` [H', W', ...] over its output span,
    field being at least as large as the tiles reach (mirror beyond the image)."""
    outputs = []
    for index in range(plan.count):
        row, col = plan.position(index)
        y, x = plan.rows.starts[row], plan.cols.starts[col]
        outputs.append(field[y : y + plan.rows.out, x : x + plan.cols.out])
    return outputs


def padded_field(rng, plan, classes, low_high=((0.05, 0.45), (0.55, 0.95))) -> np.ndarray:
    """A random PROB field over the area the tiles reach, no value near the threshold."""
    height = plan.rows.starts[-1] + plan.rows.out
    width = plan.cols.starts[-1] + plan.cols.out
    side = rng.integers(0, 2, (height, width, classes))
    (a, b), (c, d) = low_high
    values = np.where(side, rng.uniform(c, d, side.shape), rng.uniform(a, b, side.shape))
    return values.astype(np.float32)


@pytest.mark.parametrize("blend", ["gaussian", "linear", "none"])
@pytest.mark.parametrize(
    ("height", "width"), [(1, 1), (1, 300), (300, 1), (61, 47), (129, 257), (17, 16)]
)
def test_tiles_that_agree_blend_into_the_field_they_come_from(
    blend: str, height: int, width: int
) -> None:
    """Weights that sum to one return the value every covering tile gives: the mask of
    the field, whatever the tiling, tile order and band window."""
    rng = np.random.default_rng(height * 1000 + width)
    plan = tiling.plan_image(height, width, ((4, 4), (4, 4)), (32, 32), overlap=0.3)
    field = padded_field(rng, plan, 1)
    outputs = tile_outputs(plan, field)
    if blend == "none":
        outputs = [(o[:, :, 0] > 0.5).astype(np.uint8) for o in outputs]
    expected = (field[:height, :width, 0] > 0.5).astype(np.uint8)
    for window, shuffle in ((1, False), (2, False), (3, True)):
        order = rng.permutation(plan.count) if shuffle else None
        mask, bands = run_assembler(plan, blend, outputs, window=window, order=order)
        np.testing.assert_array_equal(mask, expected)
        tops = [top for top, _ in bands]
        assert tops == sorted(tops) and tops[0] == 0  # every row once, top to bottom
        assert sum(len(rows) for _, rows in bands) == height


def test_several_classes_blend_then_take_the_argmax() -> None:
    rng = np.random.default_rng(5)
    plan = tiling.plan_image(90, 70, ((8, 8), (8, 8)), (32, 32), overlap=0.25)
    field = rng.dirichlet([1, 1, 1], (plan.rows.starts[-1] + 32, plan.cols.starts[-1] + 32))
    mask, _ = run_assembler(plan, "gaussian", tile_outputs(plan, field.astype(np.float32)), 3)
    np.testing.assert_array_equal(mask, field[:90, :70].argmax(axis=2))


def test_blending_favours_each_tiles_middle_over_its_edges() -> None:
    """Tiles that disagree: a pixel in the middle of one tile's output and at the edge of
    another's takes the middle tile's answer."""
    plan = tiling.plan_image(16, 200, ((4, 4), (4, 4)), (16, 64), overlap=0.5)
    outputs = [np.full((16, 64, 1), 0.9 if i % 2 else 0.1, np.float32) for i in range(plan.count)]
    mask, _ = run_assembler(plan, "gaussian", outputs)
    for index in range(plan.count):
        x0, x1 = plan.cols.span(index)
        middle = (plan.cols.starts[index] + plan.cols.out // 2) if x1 - x0 == 64 else None
        if middle is not None and middle < 200:
            assert mask[0, middle] == (1 if index % 2 else 0), index


def test_the_band_holds_the_window_of_tile_rows_not_the_image() -> None:
    plan = tiling.plan_image(5000, 40, ((16, 16), (16, 16)), (256, 256), overlap=0.25)
    assembler = blending.Assembler(plan, "gaussian", 1, 0.5, window=2)
    assert assembler.sum.shape[0] <= 2 * plan.rows.out < 5000 / 4
    assert not assembler.admits(2 * plan.cols.count)  # the third tile row waits


def box_filter_valid(image: np.ndarray, border: int) -> np.ndarray:
    """A stand-in 'valid' network: the sum over a (2*border+1)^2 window, unpadded, so its
    output is 2*border smaller and starts over input pixel `border`."""
    size = 2 * border + 1
    out = np.zeros((image.shape[0] - 2 * border, image.shape[1] - 2 * border), np.int64)
    for dy, dx in itertools.product(range(size), repeat=2):
        out += image[dy : dy + out.shape[0], dx : dx + out.shape[1]]
    return out


@settings(max_examples=40, deadline=None)
@given(
    height=st.integers(1, 90),
    width=st.integers(1, 90),
    border=st.integers(1, 6),
    largest=st.integers(0, 30),
    overlap=st.sampled_from([0.0, 0.25]),
)
def test_valid_network_tiles_join_into_the_whole_image_result(
    height: int, width: int, border: int, largest: int, overlap: float
) -> None:
    """Overlap-tile: mirror the border, cut tiles by their outputs, crop. The joined
    outputs equal the network run once on the whole mirror-padded image."""
    rng = np.random.default_rng(height * 97 + width)
    image = rng.integers(0, 50, (height, width))
    shrink = 2 * border
    rule = (1, shrink + 1)
    tile = shrink + 1 + largest
    plan = tiling.plan_image(
        height, width, (rule, rule), (tile, tile), (shrink, shrink, border, border), overlap
    )
    whole = box_filter_valid(np.pad(image, border, mode="symmetric"), border)
    threshold = float(np.median(whole)) + 0.5  # integers: no value at the threshold
    outputs = []
    for index in range(plan.count):
        row, col = plan.position(index)
        rows, cols = plan.rows.input_indices(row), plan.cols.input_indices(col)
        outputs.append(box_filter_valid(image[np.ix_(rows, cols)], border) > threshold)
    mask, _ = run_assembler(plan, "none", [o.astype(np.uint8) for o in outputs])
    np.testing.assert_array_equal(mask, (whole > threshold).astype(np.uint8))

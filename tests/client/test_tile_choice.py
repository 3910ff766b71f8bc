"""How the client picks its tiles from what the server's config says, without a server:
the default tile, --tile refused above max_image_side or below the minimum, 'valid'
models, fixed-size models."""

from __future__ import annotations

import pytest

from tests.helpers.client import client_module

served_model = client_module("served_model")
tiling = client_module("tiling")


def spec(rule=(16, 16), geometry=(0, 0, 0, 0), max_side=2048, fixed=None):
    height = tiling.SizeRule(*rule)
    return served_model.ModelSpec(1, 1, 8, fixed, height, height, max_side, geometry, 0.5)


def choose_tile(model, wanted):
    return tiling.choose_tile(model.rules, wanted, model.max_side, model.fixed_size)


@pytest.mark.parametrize(
    ("model", "wanted", "tile"),
    [
        (spec(), None, (1024, 1024)),
        (spec(max_side=512), None, (512, 512)),  # a server that takes less
        (spec(), 700, (688, 688)),  # the largest size the model takes up to --tile
        (spec(rule=(16, 188), geometry=(184, 184, 92, 92)), None, (1020, 1020)),
        (spec(rule=(16, 188), geometry=(184, 184, 92, 92)), 300, (300, 300)),
        (spec(fixed=(256, 320)), None, (256, 320)),
        (spec(fixed=(256, 320)), 1000, (256, 320)),
    ],
)
def test_the_tile_is_the_largest_size_the_model_takes(model, wanted, tile) -> None:
    assert choose_tile(model, wanted) == tile


def test_a_tile_above_max_image_side_is_refused_in_one_line() -> None:
    with pytest.raises(ValueError) as refused:
        choose_tile(spec(), 4096)
    assert "max_image_side 2048" in str(refused.value) and "\n" not in str(refused.value)


def test_a_tile_below_the_smallest_input_is_refused() -> None:
    with pytest.raises(ValueError, match="choose --tile 188 or more"):
        choose_tile(spec(rule=(16, 188), geometry=(184, 184, 92, 92)), 150)


def test_only_a_shrinking_output_means_a_valid_unet() -> None:
    assert spec(geometry=(184, 184, 92, 92)).shrinks
    assert not spec().shrinks
    assert not spec(geometry=None).shrinks  # not published: taken as the input's grid


def test_a_fixed_size_model_is_tiled_at_its_size() -> None:
    model = spec(fixed=(256, 256))
    small = tiling.plan_image(100, 300, model.rules, choose_tile(model, None))
    assert small.tile_shape == (256, 256) and (small.rows.count, small.cols.count) == (1, 2)

"""Optimization profile parsing and the rules it must obey for the model and for Triton."""

from __future__ import annotations

import pytest

from unetkit.core import (
    BatchShape,
    ModelInfo,
    Profile,
    SizeRule,
    UserError,
    check_max_batch_size,
    default_profile,
    parse_shape,
    validate_profile,
)


def info(multiple: int = 16, minimum: int = 16, fixed: tuple[int, int] | None = None) -> ModelInfo:
    rule = SizeRule(multiple, minimum)
    return ModelInfo(1, 1, rule, rule, fixed, (0, 0, 0, 0), 0.5, (0.0,), (255.0,), "test")


def profile(lo: str, mid: str, hi: str) -> Profile:
    return Profile(parse_shape(lo, "--min"), parse_shape(mid, "--opt"), parse_shape(hi, "--max"))


def test_parse_shape_accepts_spaces_and_rejects_garbage():
    assert parse_shape(" 8 x256x 512", "--opt") == BatchShape(8, 256, 512)
    for bad in ("8x256", "8x256x256x1", "ax256x256", "", "-1x256x256"):
        with pytest.raises(UserError, match="--opt"):
            parse_shape(bad, "--opt")
    with pytest.raises(UserError, match="at least 1"):
        parse_shape("0x256x256", "--max")


def test_a_valid_profile_is_returned_unchanged():
    p = profile("1x16x16", "8x256x256", "32x512x512")
    assert validate_profile(p, info()) is p


@pytest.mark.parametrize(
    "shapes,message",
    [
        (("1x16x16", "64x256x256", "32x512x512"), "profile batch: need --min <= --opt <= --max"),
        (("1x256x256", "8x128x256", "32x512x512"), "profile height"),
        (("2x16x16", "8x256x256", "32x512x512"), "must start at batch 1"),
        (("1x16x16", "8x250x256", "32x512x512"), "--opt 8x250x256: H must be a multiple of 16"),
        (("1x16x16", "8x256x256", "32x512x520"), "--max 32x512x520: W must be a multiple of 16"),
    ],
)
def test_invalid_profiles_are_refused_with_the_flag_to_fix(shapes, message):
    with pytest.raises(UserError, match=message):
        validate_profile(profile(*shapes), info())


def test_a_fixed_size_model_takes_only_its_size():
    fixed = info(fixed=(256, 256))
    assert default_profile(fixed) == profile("1x256x256", "8x256x256", "32x256x256")
    with pytest.raises(UserError, match="only 256x256"):
        validate_profile(profile("1x256x256", "8x256x256", "32x512x512"), fixed)


def test_default_profile_follows_the_size_rule():
    assert default_profile(info()) == profile("1x16x16", "8x256x256", "32x512x512")
    # a 'valid'-padding network: sizes 92 + k*16
    odd = info(multiple=16, minimum=92)
    p = default_profile(odd)
    assert p == profile("1x92x92", "8x268x268", "32x524x524")
    assert validate_profile(p, odd) is p


def test_profile_round_trips_through_its_dict():
    p = profile("1x16x16", "8x256x256", "32x512x512")
    assert Profile.from_dict(p.as_dict()) == p


def test_max_batch_must_equal_max_batch_size():
    p = profile("1x16x16", "8x256x256", "32x512x512")
    check_max_batch_size(p, 32)
    expected = r"max batch is 32 but config\.pbtxt says max_batch_size: 8"
    with pytest.raises(UserError, match=expected):
        check_max_batch_size(p, 8)

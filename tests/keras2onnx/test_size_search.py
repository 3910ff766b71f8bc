"""The size search on valid-size patterns the libraries' networks produce (measured with
Keras: the issue's table), without building networks."""

import pytest

from unetkit.core import SizeRule
from unetkit.keras2onnx.size_search import find_sizes


def residues(period: int, *taken: int, minimum: int = 1):
    return lambda s: s >= minimum and s % period in {r % period for r in taken}


@pytest.mark.parametrize(
    ("name", "valid", "period", "canonical", "rule", "others"),
    [
        # ResNet/DenseNet/Inception: ZeroPadding + stride-2 'valid' convs take 31, 32, 63, 64
        ("resnet", residues(32, 31, 32, minimum=31), 256, None, SizeRule(32, 32), (31, 63)),
        ("resnet_fixed_64", residues(32, 31, 32, minimum=31), 32, 64, SizeRule(32, 32), (31,)),
        ("resnet_built_for_63", residues(32, 31, 32, minimum=31), 32, 63, SizeRule(32, 31), (32,)),
        # VGG's floor pooling: 32, 33, 64, 65
        ("vgg", residues(32, 32, 33, minimum=32), 32, None, SizeRule(32, 32), (33, 65)),
        # UNet 3+: 8, 9, 16, 17
        ("unet3plus", residues(8, 8, 9, minimum=8), 16, None, SizeRule(8, 8), (9, 17)),
        # a plain U-Net: one progression, served whole
        ("unet", residues(16, 0, minimum=16), 16, None, SizeRule(16, 16), ()),
        ("valid_unet", residues(2, 18, minimum=18), 8, 44, SizeRule(2, 18), ()),
        ("any_size", lambda s: s >= 3, 1, None, SizeRule(1, 3), ()),
    ],
)
def test_the_progression_through_the_canonical_size_is_served(
    name, valid, period, canonical, rule, others
):
    found = find_sizes(valid, period, canonical)
    assert found is not None and found.rule == rule, name
    assert found.others[: len(others)] == others
    assert all(valid(s) for s in range(rule.minimum, 600, rule.multiple))


def test_a_network_that_takes_one_size_has_no_rule():
    """One alpha per pixel, a resize to a fixed size: nothing else runs."""
    found = find_sizes(lambda s: s == 64, 32, 64)
    assert found is not None and found.rule is None and found.canonical == 64


def test_a_network_that_takes_no_size():
    assert find_sizes(lambda s: False, 32) is None


def test_a_canonical_size_the_network_refuses_has_no_rule():
    found = find_sizes(residues(32, 0, minimum=32), 32, 48)
    assert found is not None and found.rule is None

"""Find a network's size rule by running its shape arithmetic on candidate sizes.

Trying sizes covers any mix of strides, crops and paddings without a formula per layer.

The sizes a network takes along one axis repeat with a period (a multiple of its strides),
but within a period it may take more than one size: encoders with ZeroPadding and stride-2
'valid' convolutions (ResNet, DenseNet, Inception) take 31, 32, 63, 64, ...; VGG's floor
pooling 32, 33, 64, 65, .... The published rule is one arithmetic progression per axis, so
the kit serves the progression through the network's canonical size: the size its Keras
input was built for, else the smallest multiple of the period it takes (multiples of 32
here). A network that takes only a few sizes (one alpha per pixel in a PReLU, a resize to a
fixed size) has no progression at all: the converter pins it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

from unetkit.core import SizeRule

SEARCH_LIMIT = 4096


@dataclass(frozen=True)
class AxisSizes:
    """What one axis takes: the served rule (None: no progression, only a few sizes),
    the canonical size it was chosen around, and some sizes taken outside the rule."""

    rule: SizeRule | None
    canonical: int
    others: tuple[int, ...] = ()


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def find_sizes(
    is_valid: Callable[[int], bool], period_bound: int, canonical: int | None = None
) -> AxisSizes | None:
    """The sizes one axis takes, or None when it takes none up to SEARCH_LIMIT.

    `period_bound` is a multiple of the true period (the strides' least common multiple
    along every path). `canonical` is the size the model was built for, if it has one.
    """
    valid = functools.cache(is_valid)
    period = max(period_bound, 1)
    first = next((s for s in range(1, SEARCH_LIMIT + 1) if valid(s)), None)
    if first is None:
        return None
    if canonical is None:
        canonical = default_canonical(valid, first, period)
    if not valid(canonical):
        return AxisSizes(None, canonical)
    horizon = max(canonical, first) + 3 * period
    for multiple in divisors(period):
        if all(valid(s) for s in range(canonical, horizon + 1, multiple)):
            start = canonical
            while start - multiple >= 1 and valid(start - multiple):
                start -= multiple
            rule = SizeRule(multiple, start)
            others = tuple(s for s in range(first, horizon + 1) if valid(s) and not rule.accepts(s))
            return AxisSizes(rule, canonical, others[:4])
    return AxisSizes(None, canonical)


def default_canonical(valid: Callable[[int], bool], first: int, period: int) -> int:
    """The smallest multiple of the true period that the network takes (past the sizes
    where it is too small to run), else the smallest size it takes."""
    steady = range(first + 2 * period, first + 3 * period)
    true_period = next(
        (p for p in divisors(period) if all(valid(s) == valid(s + p) for s in steady)), period
    )
    start = -(-first // true_period) * true_period
    return next((s for s in range(start, first + 3 * period + 1, true_period) if valid(s)), first)

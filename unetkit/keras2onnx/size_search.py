"""Find a network's size rule by running its shape arithmetic on candidate sizes.

Trying sizes covers any mix of strides, crops and paddings without a formula per layer.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from unetkit.core import SizeRule

SEARCH_LIMIT = 4096


def find_size_rule(is_valid: Callable[[int], bool], period_bound: int) -> SizeRule | None:
    """The rule for one axis, or None when the valid sizes follow no simple rule.

    `period_bound` is a multiple of the true period (the product of the strides).
    """
    period_bound = max(period_bound, 1)
    minimum = next((s for s in range(1, SEARCH_LIMIT + 1) if is_valid(s)), None)
    if minimum is None:
        return None
    window = range(minimum, minimum + 3 * period_bound + 1)
    valid = {s for s in window if is_valid(s)}
    for multiple in (d for d in range(1, period_bound + 1) if period_bound % d == 0):
        if valid == {s for s in window if (s - minimum) % multiple == 0}:
            return SizeRule(multiple, minimum)
    return None


def stride_bound(strides: list[int]) -> int:
    """A multiple of the period of valid sizes: the product of all strides, capped."""
    return min(math.prod(strides), SEARCH_LIMIT)

"""Which input heights (or widths) a fully convolutional network takes: the size rule.

A U-Net with four 2x poolings takes multiples of 16; a 'valid'-padding U-Net takes
`minimum + k * multiple`. The converter finds the rule for each axis, stores it in the
ONNX metadata and the model's config parameters; the server refuses other sizes with it,
and the client pads images up to it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from unetkit.core.contract import (
    PARAM_MIN_HEIGHT,
    PARAM_MIN_WIDTH,
    PARAM_MULTIPLE_H,
    PARAM_MULTIPLE_W,
    PARAM_SIZE_MULTIPLE,
)


@dataclass(frozen=True)
class SizeRule:
    """Valid sizes are minimum, minimum + multiple, minimum + 2*multiple, ..."""

    multiple: int
    minimum: int

    def accepts(self, size: int) -> bool:
        return size >= self.minimum and (size - self.minimum) % self.multiple == 0

    def next_valid(self, size: int) -> int:
        """The smallest valid size that is at least `size`."""
        if size <= self.minimum:
            return self.minimum
        return self.minimum + -(-(size - self.minimum) // self.multiple) * self.multiple

    def describe(self) -> str:
        if self.multiple == 1:
            return f"at least {self.minimum}"
        if self.minimum == self.multiple:
            return f"a multiple of {self.multiple}"
        return f"{self.minimum} + k*{self.multiple} (k >= 0)"

    def problem(self, axis: str, size: int) -> str | None:
        """None when `size` is valid, else what `axis` must be and the next valid size."""
        if self.accepts(size):
            return None
        return f"{axis} must be {self.describe()}, got {size} (next valid: {self.next_valid(size)})"


def rules_from_parameters(parameters: Mapping[str, str]) -> tuple[SizeRule, SizeRule]:
    """The (height, width) rules a model's config publishes as string parameters.

    Configs written before the per-axis parameters existed publish only `size_multiple`.
    """
    try:
        multiple = int(parameters.get(PARAM_SIZE_MULTIPLE) or 1)
        rules = tuple(
            SizeRule(
                int(parameters.get(multiple_key) or multiple),
                int(parameters.get(minimum_key) or multiple),
            )
            for multiple_key, minimum_key in (
                (PARAM_MULTIPLE_H, PARAM_MIN_HEIGHT),
                (PARAM_MULTIPLE_W, PARAM_MIN_WIDTH),
            )
        )
    except ValueError as e:
        raise ValueError(f"the model config's size parameters are not integers ({e})") from e
    if min(r.multiple for r in rules) < 1 or min(r.minimum for r in rules) < 1:
        raise ValueError(f"the model config's size parameters must be >= 1, got {rules}")
    return rules[0], rules[1]

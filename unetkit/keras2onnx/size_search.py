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

`ShapeProbe` runs the network's shape arithmetic (its `Schedule`) on candidate sizes: which
sizes it takes (`find_sizes` per axis), which sizes the export serves (`Sizes`, with the
notes the user reads), and where its output lies on the input's pixel grid (tiling).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

from unetkit.core import SizeRule, UserError
from unetkit.keras2onnx.keras_file import TensorRef
from unetkit.keras2onnx.layers.base import Shape, ShapeMismatch
from unetkit.keras2onnx.schedule import Schedule

SEARCH_LIMIT = 4096
DEFAULT_PROBE = 256  # the size an error message tries when the model has no size of its own


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


def parse_size(text: str) -> tuple[int, int]:
    """'HxW' (or one number for a square) -> (H, W)."""
    parts = text.lower().split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        values = []
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or min(values) < 1:
        raise UserError(f"--input-size {text!r} is not HxW, e.g. 256x256")
    return values[0], values[1]


@dataclass(frozen=True)
class Sizes:
    """What the export serves: progressions per axis, or one pinned size, and why."""

    height: SizeRule
    width: SizeRule
    pinned: tuple[int, int] | None
    notes: tuple[str, ...]


class ShapeProbe:
    """A network's shape arithmetic, run at candidate input sizes of `channels` channels."""

    def __init__(self, schedule: Schedule, channels: int) -> None:
        self.schedule = schedule
        self.channels = channels

    def output_shape(self, shape: Shape) -> Shape:
        return self.schedule.shapes(shape)[self.schedule.output]

    def mismatch(self, shape: Shape) -> str | None:
        """None when the network runs at `shape`, else why not."""
        try:
            self.output_shape(shape)
        except ShapeMismatch as e:
            return str(e)
        return None

    def at(self, height: int | None, width: int | None) -> Shape:
        return (self.channels, height, width)

    def served_sizes(
        self,
        keras_size: tuple[int | None, int | None],
        fixed_shape: bool = False,
        input_size: str | None = None,
    ) -> Sizes:
        """What the export serves: every size the network takes (one progression per axis),
        the size it was built for when it takes no other, or the size a flag pins."""
        if fixed_shape and input_size is not None:
            raise UserError("pass either --fixed-shape or --input-size, not both")
        if input_size is not None:
            return self._pinned(parse_size(input_size), "--input-size")
        if fixed_shape:
            if keras_size[0] is None or keras_size[1] is None:
                raise UserError(
                    "--fixed-shape pins the size the Keras model was built for, and this model "
                    "was built for any size: pin one with --input-size HxW, e.g. 256x256"
                )
            return self._pinned((keras_size[0], keras_size[1]), "--fixed-shape")
        return self._natural_sizes(keras_size)

    def _pinned(self, size: tuple[int, int], flag: str) -> Sizes:
        problem = self.mismatch(self.at(*size))
        if problem is not None:
            raise UserError(
                f"{flag} {size[0]}x{size[1]}: the network cannot run at that size: {problem}"
            )
        return Sizes(SizeRule(1, size[0]), SizeRule(1, size[1]), size, ())

    def period_bounds(self) -> tuple[int, int]:
        """Multiples of the periods of the valid sizes: along every path the product of the
        strides, and their least common multiple over all tensors (capped)."""
        cumulative: dict[TensorRef, tuple[int, int]] = {self.schedule.source: (1, 1)}
        bounds = [1, 1]
        for call in self.schedule.calls:
            strides = [cumulative[r] for r in call.inputs]
            out = []
            for axis in range(2):
                value = math.lcm(*(s[axis] for s in strides)) * call.op.stride[axis]
                out.append(min(value, SEARCH_LIMIT))
                bounds[axis] = min(math.lcm(bounds[axis], out[axis]), SEARCH_LIMIT)
            cumulative[call.output] = (out[0], out[1])
        return bounds[0], bounds[1]

    def axis_sizes(
        self, keras_size: tuple[int | None, int | None]
    ) -> tuple[AxisSizes | None, AxisSizes | None]:
        """The sizes each axis takes, the other axis at the size Keras built it for (a
        sequence's length, which a position table or a q @ k^T fixes, is then known), or
        left open when the model was built for any size."""
        bound_h, bound_w = self.period_bounds()
        keras_h, keras_w = keras_size
        return (
            find_sizes(lambda h: self.mismatch(self.at(h, keras_w)) is None, bound_h, keras_h),
            find_sizes(lambda w: self.mismatch(self.at(keras_h, w)) is None, bound_w, keras_w),
        )

    def pinning_reason(self, size: tuple[int, int]) -> str | None:
        """Why the network only makes sense at the size it was built for (an op's pins_size)."""
        shapes = self.schedule.shapes(self.at(*size))
        for call in self.schedule.calls:
            reason = call.op.pins_size([shapes[r] for r in call.inputs])
            if reason is not None:
                return reason
        return None

    def _natural_sizes(self, keras_size: tuple[int | None, int | None]) -> Sizes:
        height, width = self.axis_sizes(keras_size)
        if height is None or width is None:
            probe = tuple(k or DEFAULT_PROBE for k in keras_size)
            problem = self.mismatch(self.at(probe[0], probe[1]))
            raise UserError(
                f"the network runs at no input size up to {SEARCH_LIMIT}: at "
                f"{probe[0]}x{probe[1]}, {problem}"
            )
        size = (height.canonical, width.canonical)
        problem = self.mismatch(self.at(*size))
        if problem is not None:
            raise UserError(f"the network cannot run at {size[0]}x{size[1]}: {problem}")
        keras_fixed = keras_size[0] is not None and keras_size[1] is not None
        reason = self.pinning_reason(size) if keras_fixed else None
        if height.rule is None or width.rule is None:
            if not keras_fixed:
                raise UserError(
                    f"the network takes only a few input sizes ({size[0]}x{size[1]} among "
                    "them) and was built for any size: pin one with --input-size HxW, e.g. "
                    f"--input-size {size[0]}x{size[1]}"
                )
            reason = reason or self._first_mismatch(size, along_height=height.rule is None)
        if reason is not None:
            note = (
                f"the network takes only {size[0]}x{size[1]} images, the size it was built "
                f"for ({reason}); exported for that size (--input-size HxW pins another)"
            )
            return Sizes(SizeRule(1, size[0]), SizeRule(1, size[1]), size, (note,))
        assert height.rule is not None and width.rule is not None
        notes = tuple(
            f"the network also runs at {axis} = {', '.join(map(str, sizes.others))}, ...; the "
            f"export serves {axis} {sizes.rule.describe()}, the progression through its "
            f"canonical size {sizes.canonical}"
            for axis, sizes in (("H", height), ("W", width))
            if sizes.others and sizes.rule is not None
        )
        return Sizes(height.rule, width.rule, None, notes)

    def _first_mismatch(self, size: tuple[int, int], along_height: bool) -> str:
        """What goes wrong just above the pinned size along an axis that takes only a few."""
        for step in range(1, 65):
            shape = (
                self.at(size[0] + step, size[1])
                if along_height
                else self.at(size[0], size[1] + step)
            )
            problem = self.mismatch(shape)
            if problem is not None:
                return problem
        return "no size near it runs"

    def output_geometry(self, sizes: Sizes) -> tuple[int, int, int, int] | None:
        """ModelInfo.output_geometry (shrink H, W and offset H, W), or None when the output is
        not on the input's grid."""
        shrink = (
            self._output_shrink(sizes, sizes.height, 1),
            self._output_shrink(sizes, sizes.width, 2),
        )
        if shrink[0] is None or shrink[1] is None:
            return None
        # Output and input on the same grid: aligned, whichever path connects them.
        offset = (0, 0) if shrink == (0, 0) else self._output_offset()
        return None if offset is None else (shrink[0], shrink[1], offset[0], offset[1])

    def _output_shrink(self, sizes: Sizes, rule: SizeRule, axis: int) -> int | None:
        """How many pixels the output has fewer than the input along `axis` (1: H, 2: W), when
        that number is the same for every size the network takes; None when the output is on
        another grid (a different scale)."""
        pinned = sizes.pinned
        shrinks = set()
        count = 1 if pinned else 3
        other = (pinned[1] if axis == 1 else pinned[0]) if pinned else None
        for size in (rule.minimum + k * rule.multiple for k in range(count)):
            shape = self.at(size, other) if axis == 1 else self.at(other, size)
            shrinks.add(size - self.output_shape(shape)[axis])
        return shrinks.pop() if len(shrinks) == 1 else None

    def _output_offset(self) -> tuple[int, int] | None:
        """The input pixel under output pixel (0, 0), along a path from input to output that
        keeps the pixel grid (a U-Net's top level, through its skip connection); None when
        every path resamples."""
        producers = self.schedule.producers()
        offsets: dict[TensorRef, tuple[float, float] | None] = {self.schedule.source: (0.0, 0.0)}

        def offset(tensor: TensorRef) -> tuple[float, float] | None:
            if tensor not in offsets:
                offsets[tensor] = None  # a cycle never keeps the grid
                call = producers[tensor]
                own = call.op.alignment()
                if own is not None:
                    for upstream in call.inputs:
                        before = offset(upstream)
                        if before is not None:
                            offsets[tensor] = (own[0] + before[0], own[1] + before[1])
                            break
            return offsets[tensor]

        found = offset(self.schedule.output)
        return None if found is None else (int(found[0]), int(found[1]))

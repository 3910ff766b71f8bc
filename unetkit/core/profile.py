"""The shapes a deployment accepts: the TensorRT optimization profile (min/opt/max NxHxW).

A TensorRT plan only accepts input shapes inside its profile, and Triton sends batches up to
the config's `max_batch_size`, so the engine build and the plan's config.pbtxt both derive
from one Profile. Parsing `NxHxW` and the rules a profile must obey live here.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from unetkit.core.errors import UserError
from unetkit.core.model_info import ModelInfo

_SHAPE = re.compile(r"^\s*(\d+)\s*x\s*(\d+)\s*x\s*(\d+)\s*$")


@dataclass(frozen=True)
class BatchShape:
    batch: int
    height: int
    width: int

    def __str__(self) -> str:
        return f"{self.batch}x{self.height}x{self.width}"

    def image_shape(self, channels: int) -> tuple[int, int, int, int]:
        """The IMAGE tensor shape, channels last."""
        return (self.batch, self.height, self.width, channels)


@dataclass(frozen=True)
class Profile:
    min: BatchShape
    opt: BatchShape
    max: BatchShape

    def as_dict(self) -> dict[str, dict[str, int]]:
        return {"min": asdict(self.min), "opt": asdict(self.opt), "max": asdict(self.max)}

    @classmethod
    def from_dict(cls, data: dict[str, dict[str, int]]) -> Profile:
        return cls(**{k: BatchShape(**data[k]) for k in ("min", "opt", "max")})


def parse_shape(text: str, flag: str) -> BatchShape:
    match = _SHAPE.match(text)
    if not match:
        raise UserError(f"{flag} {text!r}: write batch x height x width, e.g. 8x256x256")
    batch, height, width = (int(g) for g in match.groups())
    if min(batch, height, width) < 1:
        raise UserError(f"{flag} {text!r}: every dimension must be at least 1")
    return BatchShape(batch, height, width)


def validate_profile(profile: Profile, info: ModelInfo) -> Profile:
    """Refuse a profile the model or Triton cannot use; return it unchanged otherwise."""
    for name in ("batch", "height", "width"):
        lo, mid, hi = (getattr(getattr(profile, k), name) for k in ("min", "opt", "max"))
        if not lo <= mid <= hi:
            raise UserError(f"profile {name}: need --min <= --opt <= --max, got {lo}, {mid}, {hi}")
    if profile.min.batch != 1:
        raise UserError(
            f"--min batch is {profile.min.batch}: Triton's dynamic batcher also sends "
            "single images, so the profile must start at batch 1 (--min 1xHxW)"
        )
    for flag, shape in (("--min", profile.min), ("--opt", profile.opt), ("--max", profile.max)):
        problem = info.check_size(shape.height, shape.width)
        if problem:
            raise UserError(f"{flag} {shape}: {problem}")
    return profile


def check_max_batch_size(profile: Profile, max_batch_size: int) -> None:
    """Triton sends batches up to max_batch_size; the plan must accept all of them."""
    if profile.max.batch != max_batch_size:
        raise UserError(
            f"the profile's max batch is {profile.max.batch} but config.pbtxt says "
            f"max_batch_size: {max_batch_size}; use --max {max_batch_size}x... "
            "or let build_engine.py write the config (drop --keep-config)"
        )


# Defaults: tuned for 8 images of 256x256 (the example model's size), accepting single
# images from the smallest size the network takes up to 32 images of 512x512.
DEFAULT_OPT = BatchShape(8, 256, 256)
DEFAULT_MAX = BatchShape(32, 512, 512)


def default_shape(info: ModelInfo, shape: BatchShape) -> BatchShape:
    """`shape` moved to the nearest height and width the model takes (never smaller)."""
    if info.fixed_size is not None:
        return BatchShape(shape.batch, *info.fixed_size)
    return BatchShape(
        shape.batch,
        info.height.next_valid(shape.height),
        info.width.next_valid(shape.width),
    )


def default_profile(info: ModelInfo) -> Profile:
    return Profile(
        min=default_shape(info, BatchShape(1, 1, 1)),
        opt=default_shape(info, DEFAULT_OPT),
        max=default_shape(info, DEFAULT_MAX),
    )

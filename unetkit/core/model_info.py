"""What every part of the kit needs to know about an exported model, and where it is stored.

The converter writes a ModelInfo into the ONNX file's metadata_props (keys `unetkit.*`);
the TensorRT build, the Triton configs and the benchmarks read it back from there.
onnx is imported only by the functions that read files, so the Triton container (standard
library only) can use the rest of the core.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from unetkit.core.contract import (
    DEFAULT_INPUT_DTYPE,
    INPUT_DTYPES,
    INPUT_IMAGE,
    OUTPUT_MASK,
    OUTPUT_PROB,
)
from unetkit.core.errors import UserError
from unetkit.core.size_rule import SizeRule

if TYPE_CHECKING:
    import numpy as np
    import onnx

META_PREFIX = "unetkit."
_EXPORT_FIX = "export it with build/export_onnx.py"


@dataclass(frozen=True)
class ModelInfo:
    channels: int
    classes: int
    height: SizeRule
    width: SizeRule
    fixed_size: tuple[int, int] | None  # (H, W) when exported with --fixed-shape
    # (shrink_h, shrink_w, offset_top, offset_left): the output has `shrink` pixels fewer
    # than the input per axis (0 for 'same' padding; 'valid' U-Nets shrink), and its pixel
    # (0, 0) lies over input pixel (offset_top, offset_left). None: another scale.
    output_geometry: tuple[int, int, int, int] | None
    threshold: float
    mean: tuple[float, ...]
    std: tuple[float, ...]
    source: str
    # IMAGE's pixel type (INPUT_DTYPES): the scale the model takes, 0..255 for uint8
    input_dtype: str = DEFAULT_INPUT_DTYPE

    @property
    def size_multiple(self) -> int:
        """H and W that are multiples of this are valid when both offsets are zero."""
        return math.lcm(self.height.multiple, self.width.multiple)

    def check_size(self, height: int, width: int) -> str | None:
        """None if the network takes an HxW image, else what sizes it takes."""
        if self.fixed_size is not None:
            if (height, width) != self.fixed_size:
                return f"the model takes only {self.fixed_size[0]}x{self.fixed_size[1]} images"
            return None
        problems = [
            f"{axis} must be {rule.describe()}, got {size}"
            for axis, rule, size in (("H", self.height, height), ("W", self.width, width))
            if not rule.accepts(size)
        ]
        return "; ".join(problems) or None

    def from_8bit(self, pixels: np.ndarray) -> np.ndarray:
        """8-bit pixels (0..255) on the model's input scale, in its IMAGE type: how the
        kit feeds its 8-bit sample images to a model exported for uint16 or float32."""
        import numpy as np

        if self.input_dtype == DEFAULT_INPUT_DTYPE:
            return pixels
        scaled = pixels.astype(np.float64) * (INPUT_DTYPES[self.input_dtype] / 255.0)
        if np.issubdtype(np.dtype(self.input_dtype), np.integer):
            scaled = np.round(scaled)
        return scaled.astype(self.input_dtype)

    def describe_sizes(self) -> str:
        if self.fixed_size is not None:
            return "{}x{} only".format(*self.fixed_size)
        return f"H {self.height.describe()}, W {self.width.describe()}"

    def metadata(self) -> dict[str, str]:
        """The `unetkit.*` metadata_props of the exported ONNX file."""
        props: dict[str, object] = {
            "channels": self.channels,
            "classes": self.classes,
            "size_multiple": self.size_multiple,
            "size_multiple_h": self.height.multiple,
            "size_multiple_w": self.width.multiple,
            "min_height": self.height.minimum,
            "min_width": self.width.minimum,
            "threshold": self.threshold,
            "mean": json.dumps(list(self.mean)),
            "std": json.dumps(list(self.std)),
            "source": self.source,
            "input_dtype": self.input_dtype,
        }
        if self.fixed_size is not None:
            props["fixed_height"], props["fixed_width"] = self.fixed_size
        if self.output_geometry is not None:
            keys = ("output_shrink_h", "output_shrink_w", "output_offset_h", "output_offset_w")
            props.update(zip(keys, self.output_geometry, strict=True))
        return {META_PREFIX + key: str(value) for key, value in props.items()}

    @classmethod
    def from_metadata(cls, metadata: dict[str, str]) -> ModelInfo:
        props = {k[len(META_PREFIX) :]: v for k, v in metadata.items() if k.startswith(META_PREFIX)}
        try:
            fixed = (
                (int(props["fixed_height"]), int(props["fixed_width"]))
                if "fixed_height" in props
                else None
            )
            geometry = (
                tuple(
                    int(props[k])
                    for k in (
                        "output_shrink_h",
                        "output_shrink_w",
                        "output_offset_h",
                        "output_offset_w",
                    )
                )
                if "output_shrink_h" in props
                else None
            )
            return cls(
                channels=int(props["channels"]),
                classes=int(props["classes"]),
                height=SizeRule(int(props["size_multiple_h"]), int(props["min_height"])),
                width=SizeRule(int(props["size_multiple_w"]), int(props["min_width"])),
                fixed_size=fixed,
                output_geometry=geometry,  # type: ignore[arg-type]
                threshold=float(props["threshold"]),
                mean=tuple(json.loads(props["mean"])),
                std=tuple(json.loads(props["std"])),
                source=props["source"],
                input_dtype=props.get("input_dtype", DEFAULT_INPUT_DTYPE),
            )
        except (KeyError, ValueError, TypeError) as e:
            raise UserError(f"the ONNX model lacks unetkit metadata ({e}): {_EXPORT_FIX}") from e


def load_onnx(path: Path) -> onnx.ModelProto:
    """An ONNX file, with one-line errors for what the user can fix."""
    import onnx

    if not path.is_file():
        raise UserError(f"{path}: no such ONNX file ({_EXPORT_FIX})")
    try:
        return onnx.load(str(path))
    except Exception as e:  # protobuf raises several unrelated types on damaged files
        raise UserError(
            f"{path}: not a readable ONNX file ({type(e).__name__}): {_EXPORT_FIX}"
        ) from e


def read_model_info(model: onnx.ModelProto | str | Path) -> ModelInfo:
    """The ModelInfo stored in an exported .onnx; UserError if it is not a kit export."""
    import onnx

    if not isinstance(model, onnx.ModelProto):
        model = load_onnx(Path(model))
    return ModelInfo.from_metadata({p.key: p.value for p in model.metadata_props})


def contract_info(model: onnx.ModelProto) -> ModelInfo:
    """The model's ModelInfo, after checking the IMAGE/PROB/MASK names and types."""
    import numpy as np
    import onnx

    info = read_model_info(model)
    expected = {
        INPUT_IMAGE: onnx.helper.np_dtype_to_tensor_dtype(np.dtype(info.input_dtype)),
        OUTPUT_PROB: onnx.TensorProto.FLOAT,
        OUTPUT_MASK: onnx.TensorProto.UINT8,
    }
    tensors = {v.name: v for v in (*model.graph.input, *model.graph.output)}
    for name, elem_type in expected.items():
        if name not in tensors:
            raise UserError(f"the ONNX model has no tensor {name!r}: {_EXPORT_FIX}")
        found = tensors[name].type.tensor_type.elem_type
        if found != elem_type:
            raise UserError(
                f"ONNX {name} is {onnx.TensorProto.DataType.Name(found)}, the contract says "
                f"{onnx.TensorProto.DataType.Name(elem_type)}: {_EXPORT_FIX}"
            )
    return info

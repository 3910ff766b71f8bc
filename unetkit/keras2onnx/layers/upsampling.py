"""UpSampling2D with every interpolation ONNX Resize reproduces exactly.

Keras resizes with tf.image.resize (antialias off, half-pixel centres), except nearest in
Keras 3 (a repeat). For an integer scale:
- nearest: Resize nearest/asymmetric/floor, which every runtime agrees on (tf2onnx's
  `tf_half_pixel_for_nn` is deprecated and TensorRT rejects it);
- bilinear: Resize linear/half_pixel;
- area: every output pixel lies inside one input pixel, so it is nearest;
- bicubic: Resize cubic/half_pixel with Keys' a = -0.5, outside taps excluded and the rest
  renormalized, as TensorFlow does; TensorFlow reads the weights from a 1024-entry table, which
  is exact only where the sample offsets are multiples of 1/1024: scales that are powers of 2.
lanczos3, lanczos5, gaussian and mitchellcubic resample with kernels ONNX Resize lacks: they
are refused, naming the mode.
"""

from __future__ import annotations

import numpy as np

from unetkit.keras2onnx.keras_file import KerasLayer
from unetkit.keras2onnx.layers.base import SAME_GRID, Alignment, Config, Op, Shape
from unetkit.keras2onnx.onnx_graph import GraphBuilder
from unetkit.keras2onnx.registry import register_layer

CONVERTED = ("nearest", "bilinear", "bicubic", "area")
REFUSED = ("lanczos3", "lanczos5", "gaussian", "mitchellcubic")


def _power_of_two(value: int) -> bool:
    return value & (value - 1) == 0


@register_layer("UpSampling2D")
class UpSampling2D(Op):
    def __init__(self, layer: KerasLayer, layout: str) -> None:
        c = Config(layer)
        self.size = c.pair("size", 2)
        interpolation = c.get("interpolation", "nearest")
        if isinstance(interpolation, str) and interpolation.lower() in REFUSED:
            raise c.fail(
                f"interpolation={interpolation.lower()!r} resamples with a kernel ONNX Resize "
                f"does not have; the kit converts {', '.join(CONVERTED)}: retrain with one of "
                "those, or register your own converter (docs/converter.md: 'Your own layers')"
            )
        self.interpolation = c.choice("interpolation", CONVERTED, "nearest")
        if self.interpolation == "bicubic" and not all(_power_of_two(s) for s in self.size):
            raise c.fail(
                f"bicubic upsampling by {self.size[0]}x{self.size[1]}: TensorFlow's tabulated "
                "cubic weights match ONNX Resize only for scales that are powers of 2"
            )
        super().__init__(layer, layout)

    def alignment(self) -> Alignment | None:
        return SAME_GRID if self.size == (1, 1) else None

    def output_shape(self, shapes: list[Shape]) -> Shape:
        channels, h, w = self.single(shapes)
        return (
            channels,
            None if h is None else h * self.size[0],
            None if w is None else w * self.size[1],
        )

    def emit(self, g: GraphBuilder, inputs: list[str], shapes: list[Shape]) -> str:
        scales = g.constant(f"{self.name}/scales", np.array([1, 1, *self.size], dtype=np.float32))
        if self.interpolation in ("nearest", "area"):
            # For integer scales every runtime agrees on asymmetric + floor, and it equals
            # Keras's repeat (Keras 3) and half-pixel nearest resize (tf.keras).
            return g.node(
                "Resize",
                [inputs[0], "", scales],
                self.name,
                mode="nearest",
                coordinate_transformation_mode="asymmetric",
                nearest_mode="floor",
            )
        if self.interpolation == "bicubic":
            return g.node(
                "Resize",
                [inputs[0], "", scales],
                self.name,
                mode="cubic",
                coordinate_transformation_mode="half_pixel",
                cubic_coeff_a=-0.5,
                exclude_outside=1,
            )
        # tf.image.resize(method="bilinear", antialias=False) samples at half-pixel centres.
        return g.node(
            "Resize",
            [inputs[0], "", scales],
            self.name,
            mode="linear",
            coordinate_transformation_mode="half_pixel",
        )

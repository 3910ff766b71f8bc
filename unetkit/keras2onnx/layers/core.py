"""Dense on the channel axis (a squeeze-and-excitation block's bottleneck)."""

from __future__ import annotations

from unetkit.keras2onnx.keras_file import KerasLayer
from unetkit.keras2onnx.layers.base import (
    SAME_GRID,
    Alignment,
    Config,
    Op,
    Shape,
    keras_axis,
    rank_of,
    with_rank,
)
from unetkit.keras2onnx.layers.functions import emit_activation
from unetkit.keras2onnx.onnx_graph import GraphBuilder, LazyTensor
from unetkit.keras2onnx.registry import register_layer


def dense_to_onnx(kernel: LazyTensor) -> LazyTensor:
    """Keras [in, out] -> a 1x1 ONNX Conv [out, in, 1, 1]."""
    c_in, c_out = kernel.shape
    return LazyTensor(
        (c_out, c_in, 1, 1), kernel.dtype, lambda: kernel.load().T.reshape(c_out, c_in, 1, 1)
    )


@register_layer("Dense")
class Dense(Op):
    """Dense acts on the last axis, which is the channel axis of every tensor the kit holds
    (a (batch, C) vector, or an image in channels_last): a 1x1 convolution."""

    def __init__(self, layer: KerasLayer, layout: str) -> None:
        c = Config(layer)
        self.units = c.integer("units", minimum=1)
        self.use_bias = c.flag("use_bias", True)
        self.activation = c.activation()
        self.config = c
        super().__init__(layer, layout)

    def alignment(self) -> Alignment:
        return SAME_GRID

    def output_shape(self, shapes: list[Shape]) -> Shape:
        shape = self.single(shapes)
        if rank_of(shape) == 4 and self.layout == "channels_first":
            raise self.config.fail(
                "Dense on a channels_first image acts on its width, not its channels; not supported"
            )
        return with_rank((self.units, shape[1], shape[2]), rank_of(shape))

    def emit(self, g: GraphBuilder, inputs: list[str], shapes: list[Shape]) -> str:
        channels = shapes[0][0]
        expected = [(channels, self.units)] + ([(self.units,)] if self.use_bias else [])
        weights = self.config.weights(expected)
        kernel = g.constant(f"{self.name}/kernel", dense_to_onnx(weights[0]))
        bias = [g.constant(f"{self.name}/bias", weights[1])] if self.use_bias else []
        y = g.node("Conv", [inputs[0], kernel, *bias], self.name, kernel_shape=[1, 1])
        return emit_activation(
            g, y, self.activation, self.name, keras_axis(self.config, -1, "channels_last")
        )

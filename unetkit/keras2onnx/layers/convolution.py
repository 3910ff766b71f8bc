"""Convolutions: Conv2D and Conv2DTranspose.

Weight layout is the other trap of Keras -> ONNX: Keras stores Conv2D kernels as
[h, w, in, out] and Conv2DTranspose kernels as [h, w, out, in]; ONNX wants Conv
[out, in, h, w] and ConvTranspose [in, out, h, w]: both are a transpose (3, 2, 0, 1).
"""

from __future__ import annotations

from unetkit.keras2onnx.keras_file import KerasLayer
from unetkit.keras2onnx.layers.base import (
    Alignment,
    Config,
    Op,
    Shape,
    keras_axis,
    window_attrs,
    window_offset,
    window_output,
)
from unetkit.keras2onnx.layers.functions import emit_activation
from unetkit.keras2onnx.onnx_graph import GraphBuilder, LazyTensor
from unetkit.keras2onnx.registry import register_layer


def kernel_to_onnx(kernel: LazyTensor) -> LazyTensor:
    """Keras [h, w, a, b] -> ONNX [b, a, h, w] (Conv: a=in, b=out; ConvTranspose: a=out, b=in)."""
    h, w, a, b = kernel.shape
    return LazyTensor((b, a, h, w), kernel.dtype, lambda: kernel.load().transpose(3, 2, 0, 1))


@register_layer("Conv2D")
class Conv2D(Op):
    def __init__(self, layer: KerasLayer, layout: str) -> None:
        c = Config(layer)
        self.filters = c.integer("filters", minimum=1)
        self.kernel = c.pair("kernel_size")
        strides = c.pair("strides", 1)
        self.dilation = c.pair("dilation_rate", 1)
        self.padding = c.choice("padding", ("same", "valid"), "valid")
        if c.get("groups", 1) != 1:
            raise c.fail("grouped convolution (groups != 1) is not supported")
        self.use_bias = c.flag("use_bias", True)
        self.activation = c.activation()
        self.config = c
        super().__init__(layer, layout, stride=strides)

    def _effective_kernel(self) -> tuple[int, int]:
        return tuple((k - 1) * d + 1 for k, d in zip(self.kernel, self.dilation, strict=True))

    def alignment(self) -> Alignment | None:
        if self.stride != (1, 1):
            return None
        kh, kw = self._effective_kernel()
        return window_offset(kh, self.padding), window_offset(kw, self.padding)

    def output_shape(self, shapes: list[Shape]) -> Shape:
        _, h, w = self.single(shapes)
        kh, kw = self._effective_kernel()
        return (
            self.filters,
            window_output(h, kh, self.stride[0], self.padding),
            window_output(w, kw, self.stride[1], self.padding),
        )

    def emit(self, g: GraphBuilder, inputs: list[str], shapes: list[Shape]) -> str:
        kernel_shape = (*self.kernel, shapes[0][0], self.filters)
        expected = [kernel_shape, (self.filters,)] if self.use_bias else [kernel_shape]
        weights = self.config.weights(expected)
        names = [g.constant(f"{self.name}/kernel", kernel_to_onnx(weights[0]))]
        if self.use_bias:
            names.append(g.constant(f"{self.name}/bias", weights[1]))
        y = g.node(
            "Conv",
            [inputs[0], *names],
            self.name,
            kernel_shape=list(self.kernel),
            strides=list(self.stride),
            dilations=list(self.dilation),
            **window_attrs(shapes[0], self._effective_kernel(), self.stride, self.padding),
        )
        return emit_activation(
            g, y, self.activation, self.name, keras_axis(self.config, -1, self.layout)
        )


@register_layer("Conv2DTranspose")
class Conv2DTranspose(Op):
    def __init__(self, layer: KerasLayer, layout: str) -> None:
        c = Config(layer)
        self.filters = c.integer("filters", minimum=1)
        self.kernel = c.pair("kernel_size")
        self.strides = c.pair("strides", 1)
        self.dilation = c.pair("dilation_rate", 1)
        self.padding = c.choice("padding", ("same", "valid"), "valid")
        self.use_bias = c.flag("use_bias", True)
        self.activation = c.activation()
        if c.get("output_padding") is not None:
            raise c.fail("output_padding is not supported; leave it None")
        self.config = c
        super().__init__(layer, layout)

    def _pads(self) -> tuple[list[int], list[int]]:
        """(pads, output_padding) giving Keras's output size.

        Keras: 'same' -> in*s, 'valid' -> in*s + max(k - s, 0), with k the dilated kernel.
        ONNX: (in - 1)*s + k + output_padding - pads. TensorFlow crops the odd extra pixel
        of 'same' at the bottom/right; a kernel smaller than the stride leaves zeros there.
        """
        begins, ends, extra = [], [], []
        for k, s, d in zip(self.kernel, self.strides, self.dilation, strict=True):
            surplus = (k - 1) * d + 1 - s
            crop = surplus if self.padding == "same" and surplus > 0 else 0
            begins.append(crop // 2)
            ends.append(crop - crop // 2)
            extra.append(max(-surplus, 0))
        return begins + ends, extra

    def alignment(self) -> Alignment | None:
        if self.strides != (1, 1):
            return None
        kh, kw = ((k - 1) * d + 1 for k, d in zip(self.kernel, self.dilation, strict=True))
        return -window_offset(kh, self.padding), -window_offset(kw, self.padding)

    def output_shape(self, shapes: list[Shape]) -> Shape:
        _, h, w = self.single(shapes)
        pads, extra = self._pads()
        out = []
        for i, size in enumerate((h, w)):
            k = (self.kernel[i] - 1) * self.dilation[i] + 1
            out.append(
                None
                if size is None
                else (size - 1) * self.strides[i] + k + extra[i] - pads[i] - pads[i + 2]
            )
        return self.filters, out[0], out[1]

    def emit(self, g: GraphBuilder, inputs: list[str], shapes: list[Shape]) -> str:
        channels = shapes[0][0]
        kernel_shape = (*self.kernel, self.filters, channels)
        expected = [kernel_shape, (self.filters,)] if self.use_bias else [kernel_shape]
        weights = self.config.weights(expected)
        names = [g.constant(f"{self.name}/kernel", kernel_to_onnx(weights[0]))]
        if self.use_bias:
            names.append(g.constant(f"{self.name}/bias", weights[1]))
        pads, extra = self._pads()
        y = g.node(
            "ConvTranspose",
            [inputs[0], *names],
            self.name,
            kernel_shape=list(self.kernel),
            strides=list(self.strides),
            dilations=list(self.dilation),
            pads=pads,
            output_padding=extra,
        )
        return emit_activation(
            g, y, self.activation, self.name, keras_axis(self.config, -1, self.layout)
        )

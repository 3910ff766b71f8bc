"""Convolutions: Conv2D (grouped too), DepthwiseConv2D, SeparableConv2D and Conv2DTranspose.

Weight layout is the other trap of Keras -> ONNX: Keras stores Conv2D kernels as
[h, w, in, out] and Conv2DTranspose kernels as [h, w, out, in]; ONNX wants Conv
[out, in, h, w] and ConvTranspose [in, out, h, w]: both are a transpose (3, 2, 0, 1).
A depthwise kernel [h, w, C, multiplier] becomes a grouped Conv (group = C).
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


class Windowed(Op):
    """What Conv2D, DepthwiseConv2D and SeparableConv2D share: a strided, dilated window."""

    def __init__(self, layer: KerasLayer, layout: str) -> None:
        c = Config(layer)
        self.kernel = c.pair("kernel_size")
        strides = c.pair("strides", 1)
        self.dilation = c.pair("dilation_rate", 1)
        self.padding = c.choice("padding", ("same", "valid"), "valid")
        self.use_bias = c.flag("use_bias", True)
        self.activation = c.activation()
        self.config = c
        super().__init__(layer, layout, stride=strides)

    def out_channels(self, channels: int) -> int:
        raise NotImplementedError

    def _effective_kernel(self) -> tuple[int, int]:
        return tuple((k - 1) * d + 1 for k, d in zip(self.kernel, self.dilation, strict=True))

    def alignment(self) -> Alignment | None:
        if self.stride != (1, 1):
            return None
        kh, kw = self._effective_kernel()
        return window_offset(kh, self.padding), window_offset(kw, self.padding)

    def output_shape(self, shapes: list[Shape]) -> Shape:
        channels, h, w = self.single(shapes)
        kh, kw = self._effective_kernel()
        return (
            self.out_channels(channels),
            window_output(h, kh, self.stride[0], self.padding),
            window_output(w, kw, self.stride[1], self.padding),
        )

    def conv(
        self, g: GraphBuilder, x: str, shape: Shape, kernel: str, bias: str | None, group: int
    ) -> str:
        """The windowed ONNX Conv of this layer (kernel already in ONNX layout)."""
        return g.node(
            "Conv",
            [x, kernel] + ([bias] if bias else []),
            self.name,
            kernel_shape=list(self.kernel),
            strides=list(self.stride),
            dilations=list(self.dilation),
            group=group,
            **window_attrs(shape, self._effective_kernel(), self.stride, self.padding),
        )

    def activate(self, g: GraphBuilder, y: str) -> str:
        return emit_activation(
            g, y, self.activation, self.name, keras_axis(self.config, -1, self.layout)
        )


@register_layer("Conv2D")
class Conv2D(Windowed):
    """A convolution, grouped when `groups` > 1 (ConvNeXt's depthwise 7x7 is Conv2D with
    groups equal to its channels): Keras's kernel [h, w, in / groups, out] is ONNX's grouped
    Conv weight [out, in / groups, h, w], output channel o in group o // (out / groups)."""

    def __init__(self, layer: KerasLayer, layout: str) -> None:
        c = Config(layer)
        self.filters = c.integer("filters", minimum=1)
        self.groups = c.integer("groups", 1, minimum=1)
        if self.filters % self.groups:
            raise c.fail(
                f"groups={self.groups} does not divide filters={self.filters} (Keras needs "
                "filters and input channels to be multiples of groups)"
            )
        super().__init__(layer, layout)

    def out_channels(self, channels: int) -> int:
        if channels % self.groups:
            raise self.config.fail(
                f"groups={self.groups} does not divide the {channels} input channels"
            )
        return self.filters

    def emit(self, g: GraphBuilder, inputs: list[str], shapes: list[Shape]) -> str:
        self.out_channels(shapes[0][0])
        kernel_shape = (*self.kernel, shapes[0][0] // self.groups, self.filters)
        expected = [kernel_shape, (self.filters,)] if self.use_bias else [kernel_shape]
        weights = self.config.weights(expected)
        kernel = g.constant(f"{self.name}/kernel", kernel_to_onnx(weights[0]))
        bias = g.constant(f"{self.name}/bias", weights[1]) if self.use_bias else None
        y = self.conv(g, inputs[0], shapes[0], kernel, bias, self.groups)
        return self.activate(g, y)


def depthwise_to_onnx(kernel: LazyTensor) -> LazyTensor:
    """Keras [h, w, C, M] -> ONNX grouped Conv [C*M, 1, h, w]: output channel c*M + m is input
    channel c through multiplier m, as in tf.nn.depthwise_conv2d."""
    h, w, c, m = kernel.shape
    return LazyTensor(
        (c * m, 1, h, w),
        kernel.dtype,
        lambda: kernel.load().transpose(2, 3, 0, 1).reshape(c * m, 1, h, w),
    )


@register_layer("DepthwiseConv2D")
class DepthwiseConv2D(Windowed):
    def __init__(self, layer: KerasLayer, layout: str) -> None:
        self.multiplier = Config(layer).integer("depth_multiplier", 1, minimum=1)
        super().__init__(layer, layout)

    def out_channels(self, channels: int) -> int:
        return channels * self.multiplier

    def emit(self, g: GraphBuilder, inputs: list[str], shapes: list[Shape]) -> str:
        channels = shapes[0][0]
        kernel_shape = (*self.kernel, channels, self.multiplier)
        out = channels * self.multiplier
        expected = [kernel_shape, (out,)] if self.use_bias else [kernel_shape]
        weights = self.config.weights(expected)
        kernel = g.constant(f"{self.name}/kernel", depthwise_to_onnx(weights[0]))
        bias = g.constant(f"{self.name}/bias", weights[1]) if self.use_bias else None
        return self.activate(g, self.conv(g, inputs[0], shapes[0], kernel, bias, channels))


@register_layer("SeparableConv2D")
class SeparableConv2D(Windowed):
    """A depthwise convolution (the window, strides and dilation), then a 1x1 convolution."""

    def __init__(self, layer: KerasLayer, layout: str) -> None:
        c = Config(layer)
        self.filters = c.integer("filters", minimum=1)
        self.multiplier = c.integer("depth_multiplier", 1, minimum=1)
        super().__init__(layer, layout)

    def out_channels(self, channels: int) -> int:
        return self.filters

    def emit(self, g: GraphBuilder, inputs: list[str], shapes: list[Shape]) -> str:
        channels = shapes[0][0]
        middle = channels * self.multiplier
        expected = [(*self.kernel, channels, self.multiplier), (1, 1, middle, self.filters)]
        if self.use_bias:
            expected.append((self.filters,))
        weights = self.config.weights(expected)
        depthwise = g.constant(f"{self.name}/depthwise_kernel", depthwise_to_onnx(weights[0]))
        y = self.conv(g, inputs[0], shapes[0], depthwise, None, channels)
        pointwise = g.constant(f"{self.name}/pointwise_kernel", kernel_to_onnx(weights[1]))
        bias = [g.constant(f"{self.name}/bias", weights[2])] if self.use_bias else []
        y = g.node("Conv", [y, pointwise, *bias], self.name, kernel_shape=[1, 1])
        return self.activate(g, y)


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
        self.output_padding = (
            None if c.get("output_padding") is None else c.pair("output_padding", minimum=0)
        )
        if self.output_padding is not None and any(
            p >= s for p, s in zip(self.output_padding, self.strides, strict=True)
        ):
            raise c.fail(f"output_padding {self.output_padding} must be smaller than the strides")
        self.config = c
        super().__init__(layer, layout)

    def _pads(self) -> tuple[list[int], list[int]]:
        """(pads, output_padding) giving Keras's output size.

        Keras, k the dilated kernel: without output_padding 'same' -> in*s and 'valid' ->
        in*s + max(k - s, 0); with output_padding p, (in - 1)*s + k - 2*pad + p where pad is
        k // 2 for 'same' and 0 for 'valid'. ONNX: (in - 1)*s + k + output_padding - pads.
        The full transposed convolution is (in - 1)*s + k long; TensorFlow crops what Keras
        does not keep (the odd pixel at the bottom/right) and leaves zeros (plus the bias)
        where Keras asks for more.
        """
        begins, ends, extra = [], [], []
        for i, (k, s, d) in enumerate(zip(self.kernel, self.strides, self.dilation, strict=True)):
            k = (k - 1) * d + 1
            if self.output_padding is None:
                surplus = k - s if self.padding == "same" else min(k - s, 0)
            else:
                pad = k // 2 if self.padding == "same" else 0
                surplus = 2 * pad - self.output_padding[i]
            crop = max(surplus, 0)
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

"""EinsumDense: an einsum of the input with a kernel, plus a bias over some output axes.

It computes in Keras's element order (ONNX Einsum, opset 12), the ellipsis spelled out as
letters for the input's rank (TensorRT's einsum takes no '...'). The output has the batch
first and rank 2 to 4 like every tensor the kit holds.
"""

from __future__ import annotations

import re
import string

from unetkit.keras2onnx.keras_file import KerasLayer
from unetkit.keras2onnx.layers.base import (
    Config,
    Dim,
    Op,
    Shape,
    ShapeMismatch,
    keras_dims,
    rank_of,
    tokens,
    with_rank,
)
from unetkit.keras2onnx.layers.functions import emit_activation
from unetkit.keras2onnx.layers.tensors import from_keras_order, to_keras_order
from unetkit.keras2onnx.onnx_graph import GraphBuilder, LazyTensor
from unetkit.keras2onnx.registry import register_layer

EQUATION = re.compile(r"^([a-zA-Z.]+),([a-zA-Z]+)->([a-zA-Z.]+)$")


@register_layer("EinsumDense")
class EinsumDense(Op):
    def __init__(self, layer: KerasLayer, layout: str) -> None:
        c = Config(layer)
        equation = c.get("equation")
        match = EQUATION.match(equation.replace(" ", "")) if isinstance(equation, str) else None
        if match is None:
            raise c.fail(f"equation={equation!r} is not 'input,kernel->output'")
        self.spec = match.groups()
        self.bias_axes = c.get("bias_axes") or ""
        self.activation = c.activation()
        if c.get("lora_rank"):
            raise c.fail(
                f"lora_rank={c.get('lora_rank')!r} is not supported (supported: the merged "
                "kernel, lora_rank=None: merge the LoRA weights before saving)"
            )
        if len(layer.weights) != (2 if self.bias_axes else 1):
            raise c.fail(
                f"expected {2 if self.bias_axes else 1} weights, found {len(layer.weights)}"
            )
        self.config = c
        super().__init__(layer, layout)

    def _letters(self, rank: int) -> tuple[str, str, str]:
        """The equation with '...' spelled out for an input of Keras rank `rank`."""
        inputs, kernel, output = self.spec
        if "..." not in inputs:
            if len(inputs) != rank:
                raise self.config.fail(f"equation for a rank-{len(inputs)} input, got rank {rank}")
            return inputs, kernel, output
        used = set(inputs + kernel + output)
        free = [ch for ch in string.ascii_letters if ch not in used]
        elided = "".join(free[: rank - (len(inputs) - 3)])
        return inputs.replace("...", elided), kernel, output.replace("...", elided)

    def _sizes(self, shape: Shape) -> tuple[tuple[str, str, str], dict[str, Dim]]:
        letters = self._letters(rank_of(shape))
        sizes: dict[str, Dim] = dict(
            zip(letters[0][1:], keras_dims(shape, self.layout), strict=True)
        )
        kernel_shape = self.layer.weights[0].shape
        if len(kernel_shape) != len(letters[1]):
            raise self.config.fail(f"a kernel of shape {kernel_shape} for {letters[1]!r}")
        for ch, size in zip(letters[1], kernel_shape, strict=True):
            if sizes.get(ch) not in (None, size):
                raise ShapeMismatch(
                    f"layer {self.name!r} (EinsumDense) sums {ch} over {sizes[ch]} and {size}"
                )
            sizes[ch] = size
        return letters, sizes

    def output_shape(self, shapes: list[Shape]) -> Shape:
        shape = self.single(shapes)
        letters, sizes = self._sizes(shape)
        output = letters[2]
        if output[0] != letters[0][0] or not 2 <= len(output) <= 4:
            raise self.config.fail(
                f"equation={self.config.get('equation')!r} must keep the batch first and give "
                "a tensor of rank 2 to 4"
            )
        dims = tuple(sizes[ch] for ch in output[1:])
        if self.bias_axes:
            self._bias(output, sizes)
        if dims[-1] is None:
            raise self.config.fail("its last output axis is known only at run time")
        if len(dims) == 1:
            return with_rank((dims[0], 1, 1), 2)  # type: ignore[arg-type]
        if len(dims) == 2:
            same = rank_of(shape) == 3 and output[1] == letters[0][1]
            grid = shape[1:] if same else (dims[0], 1)
            return with_rank((dims[1], *grid), 3)  # type: ignore[arg-type]
        h, w, ch = dims if self.layout == "channels_last" else (dims[1], dims[2], dims[0])
        return (ch, h, w)  # type: ignore[return-value]

    def _bias(self, output: str, sizes: dict[str, Dim]) -> LazyTensor:
        """Keras's bias has the output's shape from the first bias axis on, 1 on the axes
        without a bias: it broadcasts against the output as it is."""
        first = min(output.find(ch) for ch in self.bias_axes)
        bias = self.config.weights([w.shape for w in self.layer.weights])[1]
        expected = [sizes[ch] if ch in self.bias_axes else 1 for ch in output[first:]]
        if len(bias.shape) != len(expected) or any(
            e is not None and e != b for e, b in zip(expected, bias.shape, strict=True)
        ):
            raise ShapeMismatch(
                f"layer {self.name!r} (EinsumDense) has a bias of shape {bias.shape} where "
                f"the output has {tuple(expected)}"
            )
        return bias

    def emit(self, g: GraphBuilder, inputs: list[str], shapes: list[Shape]) -> str:
        shape = shapes[0]
        out = self.output_shape(shapes)
        letters, sizes = self._sizes(shape)
        kernel = self.config.weights([w.shape for w in self.layer.weights])[0]
        x = to_keras_order(g, inputs[0], shape, self.layout, self.name)
        equation = f"{letters[0]},{letters[1]}->{letters[2]}"
        y = g.node(
            "Einsum", [x, g.constant(f"{self.name}/kernel", kernel)], self.name, equation=equation
        )
        if self.bias_axes:
            y = g.node(
                "Add",
                [y, g.constant(f"{self.name}/bias", self._bias(letters[2], sizes))],
                self.name,
            )
        y = emit_activation(g, y, self.activation, self.name, len(letters[2]) - 1)
        like = (
            inputs[0] if rank_of(out) == rank_of(shape) and tokens(out) == tokens(shape) else None
        )
        return from_keras_order(g, y, out, self.layout, self.name, like=like)

"""keras-unet-collection's patch layers (TransUNet, Swin-UNet): patch_extract,
patch_embedding, patch_merging and patch_expanding.

Their tokens live on the patch grid (see base), so each is a few NCHW ops:
- patch_extract(p): tf.image.extract_patches with p x p windows; each token is its patch's
  pixels in (row, column, channel) order, which is ONNX SpaceToDepth. The library reads
  patch_size[0] for both sides, and so does the kit.
- patch_embedding(num_patch, embed_dim): a Dense on each token plus a learned position
  embedding per token (Embedding(num_patch) of range(num_patch)): it pins the input size.
- patch_merging: the 2x2 neighbours (0,0), (1,0), (0,1), (1,1) concatenated, then a Dense
  without bias: half the grid, twice the features.
- patch_expanding(rate): a 1x1 Conv to rate x the features, then depth_to_space(rate)
  (ONNX DepthToSpace, DCR order as TensorFlow's); a sequence or a map (return_vector).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from unetkit.keras2onnx.keras_file import KerasLayer
from unetkit.keras2onnx.layers.base import (
    INT64_MAX,
    Dim,
    Shape,
    ShapeMismatch,
    describe,
    rank_of,
    tokens,
    with_rank,
)
from unetkit.keras2onnx.layers.library import LibraryLayer
from unetkit.keras2onnx.layers.tensors import dims_of, int64s, regrid
from unetkit.keras2onnx.onnx_graph import GraphBuilder, LazyTensor
from unetkit.keras2onnx.registry import register_layer


def dense_kernel(kernel: LazyTensor) -> LazyTensor:
    """Keras Dense [in, out] -> a 1x1 ONNX Conv [out, in, 1, 1]."""
    c_in, c_out = kernel.shape
    return LazyTensor(
        (c_out, c_in, 1, 1), kernel.dtype, lambda: kernel.load().T.reshape(c_out, c_in, 1, 1)
    )


class OnPatchGrid(LibraryLayer):
    """A layer that reshapes its tokens to its `num_patch` grid (H, W) first, as the library
    does with tf.reshape(x, (-1, H, W, C))."""

    def grid(self) -> tuple[int, int]:
        return self.pair("num_patch")

    def check_grid(self, shape: Shape) -> None:
        h, w = self.grid()
        if rank_of(shape) != 3:
            raise self.config.fail(f"expects a (batch, L, C) sequence, got rank {rank_of(shape)}")
        length = tokens(shape)
        if length is not None:
            fits = length == h * w
        else:  # the size search: one side known
            fits = all(d is None or d == want for d, want in zip(shape[1:], (h, w), strict=True))
        if not fits:
            raise ShapeMismatch(
                f"layer {self.name!r} ({self.layer.class_name}) works on a {h}x{w} patch grid "
                f"and got tokens {describe(shape)} (C, h, w)"
            )

    def on_grid(self, g: GraphBuilder, x: str, shape: Shape) -> str:
        h, w = self.grid()
        return x if (shape[1], shape[2]) == (h, w) else regrid(g, x, (h, w), x, self.name)

    def pins_size(self, shapes: list[Shape]) -> str | None:
        h, w = self.grid()
        return f"layer {self.name!r} ({self.layer.class_name}) is built for a {h}x{w} patch grid"


@register_layer("patch_extract")
class PatchExtract(LibraryLayer):
    FIELDS: ClassVar[frozenset[str]] = frozenset({"patch_size"})

    def __init__(self, layer: KerasLayer, layout: str) -> None:
        super().__init__(layer, layout)
        self.patch = self.pair("patch_size")[0]
        self.stride = (self.patch, self.patch)

    def output_shape(self, shapes: list[Shape]) -> Shape:
        channels, h, w = self.single(shapes)
        if rank_of(shapes[0]) != 4:
            raise self.config.fail("expects an image (batch, H, W, C)")
        sides: list[Dim] = []
        for size in (h, w):
            if size is not None and size < self.patch:
                raise ShapeMismatch(f"size {size} is smaller than a patch of {self.patch}")
            sides.append(None if size is None else size // self.patch)
        return with_rank((channels * self.patch**2, sides[0], sides[1]), 3)

    def emit(self, g: GraphBuilder, inputs: list[str], shapes: list[Shape]) -> str:
        x, p = inputs[0], self.patch
        _, h, w = shapes[0]
        if h is None or w is None or h % p or w % p:  # 'VALID': the remainder is dropped
            if h is not None and w is not None:
                ends = int64s(g, f"{self.name}/ends", [h - h % p, w - w % p])
            else:
                sides = dims_of(g, x, 2, 4, self.name)
                step = int64s(g, f"{self.name}/patch", [p])
                ends = g.node("Mul", [g.node("Div", [sides, step], self.name), step], self.name)
            starts = int64s(g, f"{self.name}/starts", [0, 0])
            axes = int64s(g, f"{self.name}/axes", [2, 3])
            x = g.node("Slice", [x, starts, ends, axes], self.name)
        return g.node("SpaceToDepth", [x], self.name, blocksize=p) if p > 1 else x


@register_layer("patch_embedding")
class PatchEmbedding(LibraryLayer):
    FIELDS: ClassVar[frozenset[str]] = frozenset({"num_patch", "embed_dim"})

    def __init__(self, layer: KerasLayer, layout: str) -> None:
        super().__init__(layer, layout)
        self.count = self.config.integer("num_patch", minimum=1)
        self.dim = self.config.integer("embed_dim", minimum=1)

    def output_shape(self, shapes: list[Shape]) -> Shape:
        shape = self.single(shapes)
        if rank_of(shape) != 3:
            raise self.config.fail(f"expects a (batch, L, C) sequence, got rank {rank_of(shape)}")
        length = tokens(shape)
        partial = [d for d in shape[1:] if d is not None]
        if (length is not None and length != self.count) or any(self.count % d for d in partial):
            raise ShapeMismatch(
                f"layer {self.name!r} (patch_embedding) embeds {self.count} patches and got "
                f"tokens {describe(shape)} (C, h, w)"
            )
        return with_rank((self.dim, shape[1], shape[2]), 3)

    def pins_size(self, shapes: list[Shape]) -> str | None:
        return f"layer {self.name!r} (patch_embedding) has one position embedding per patch"

    def emit(self, g: GraphBuilder, inputs: list[str], shapes: list[Shape]) -> str:
        shape = self.output_shape(shapes)
        c = self.config
        kernel = c.weight((shapes[0][0], self.dim), "kernel", "proj/vars/0")
        bias = c.weight((self.dim,), "bias", "proj/vars/1")
        table = c.weight((self.count, self.dim), "embeddings", "pos_embed/vars/0")
        h, w = shape[1], shape[2]
        if h is None or w is None:
            raise ShapeMismatch(f"layer {self.name!r} (patch_embedding) needs a known patch grid")
        positions = LazyTensor(
            (self.dim, h, w),
            table.dtype,
            lambda: np.ascontiguousarray(table.load().T).reshape(self.dim, h, w),
        )
        names = [inputs[0], g.constant(f"{self.name}/kernel", dense_kernel(kernel))]
        y = g.node(
            "Conv", [*names, g.constant(f"{self.name}/bias", bias)], self.name, kernel_shape=[1, 1]
        )
        return g.node("Add", [y, g.constant(f"{self.name}/positions", positions)], self.name)


@register_layer("patch_merging")
class PatchMerging(OnPatchGrid):
    FIELDS: ClassVar[frozenset[str]] = frozenset({"num_patch", "embed_dim"})

    def __init__(self, layer: KerasLayer, layout: str) -> None:
        super().__init__(layer, layout)
        self.dim = self.config.integer("embed_dim", minimum=1)
        h, w = self.grid()
        if h % 2 or w % 2:
            raise self.config.fail(f"num_patch=({h}, {w}) is not even (supported: an even grid)")
        self.stride = (2, 2)

    def output_shape(self, shapes: list[Shape]) -> Shape:
        shape = self.single(shapes)
        self.check_grid(shape)
        h, w = self.grid()
        return with_rank((2 * self.dim, h // 2, w // 2), 3)

    def emit(self, g: GraphBuilder, inputs: list[str], shapes: list[Shape]) -> str:
        x = self.on_grid(g, inputs[0], shapes[0])
        axes = int64s(g, f"{self.name}/axes", [2, 3])
        step = int64s(g, f"{self.name}/step", [2, 2])
        end = int64s(g, f"{self.name}/end", [INT64_MAX, INT64_MAX])
        quarters = []
        for row, col in ((0, 0), (1, 0), (0, 1), (1, 1)):
            start = int64s(g, f"{self.name}/start", [row, col])
            quarters.append(g.node("Slice", [x, start, end, axes, step], self.name))
        merged = g.node("Concat", quarters, self.name, axis=1)
        kernel = self.config.weight(
            (4 * self.dim, 2 * self.dim), "linear_trans/kernel", "linear_trans/vars/0"
        )
        weight = g.constant(f"{self.name}/kernel", dense_kernel(kernel))
        return g.node("Conv", [merged, weight], self.name, kernel_shape=[1, 1])


@register_layer("patch_expanding")
class PatchExpanding(OnPatchGrid):
    FIELDS: ClassVar[frozenset[str]] = frozenset(
        {"num_patch", "embed_dim", "upsample_rate", "return_vector"}
    )

    def __init__(self, layer: KerasLayer, layout: str) -> None:
        super().__init__(layer, layout)
        c = self.config
        self.dim = c.integer("embed_dim", minimum=1)
        self.rate = c.integer("upsample_rate", minimum=1)
        self.vector = c.flag("return_vector", True)
        if self.vector and self.rate != 2:
            raise c.fail(
                f"upsample_rate={self.rate} with return_vector=True (the library reshapes to "
                "half the features: supported with upsample_rate=2, or return_vector=False)"
            )
        if self.dim % self.rate:
            raise c.fail(f"embed_dim={self.dim} is not a multiple of upsample_rate={self.rate}")

    def output_shape(self, shapes: list[Shape]) -> Shape:
        shape = self.single(shapes)
        self.check_grid(shape)
        h, w = self.grid()
        out = (self.dim // self.rate, h * self.rate, w * self.rate)
        return with_rank(out, 3 if self.vector else 4)

    def emit(self, g: GraphBuilder, inputs: list[str], shapes: list[Shape]) -> str:
        x = self.on_grid(g, inputs[0], shapes[0])
        shape = (1, 1, self.dim, self.rate * self.dim)
        kernel = self.config.weight(shape, "linear_trans1/kernel", "linear_trans1/vars/0")
        conv_kernel = LazyTensor(
            (self.rate * self.dim, self.dim, 1, 1),
            kernel.dtype,
            lambda: kernel.load().transpose(3, 2, 0, 1),
        )
        y = g.node(
            "Conv",
            [x, g.constant(f"{self.name}/kernel", conv_kernel)],
            self.name,
            kernel_shape=[1, 1],
        )
        return g.node("DepthToSpace", [y], self.name, blocksize=self.rate, mode="DCR")

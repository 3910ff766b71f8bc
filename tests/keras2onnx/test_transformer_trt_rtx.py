"""Transformer U-Nets through a real TensorRT-family parser and builder (`make check-trt-rtx`):
TensorRT-RTX, ahead of time, no GPU. The fp32 ONNX the converter writes for the zoo's
Swin-UNet (keras-unet-collection) and ViT U-Net (keras.layers.MultiHeadAttention) parses
into TensorRT's own layers (no plugin), keeps the model's pinned size in its profile, and
builds into a plan. The plan itself cannot run here (TensorRT-RTX's runtime needs an RTX GPU).
"""

from __future__ import annotations

from types import ModuleType

import pytest

from tests.helpers.engine import AOT_COMPUTE_CAPABILITY
from tests.keras2onnx.zoo.specs import COMMITTED
from unetkit import tensorrt
from unetkit.core import default_profile
from unetkit.keras2onnx import export_onnx

pytestmark = pytest.mark.trt_rtx

TARGET = tensorrt.Gpu("NVIDIA GeForce RTX 4090", AOT_COMPUTE_CAPABILITY)
MODELS = {
    "swin_unet": COMMITTED / "kuc_swin_unet_2d__tfkeras.h5",
    "vit_unet": COMMITTED / "vit_unetr__tfkeras.h5",
}


@pytest.fixture(scope="module")
def trt() -> ModuleType:
    return tensorrt.import_tensorrt("tensorrt_rtx")


@pytest.mark.parametrize("name", sorted(MODELS))
def test_transformer_unet_parses_and_builds_in_tensorrt_rtx(trt: ModuleType, name: str) -> None:
    model, info = export_onnx(MODELS[name])
    assert info.fixed_size == (64, 64)  # attention pins the size: the profile keeps it
    profile = default_profile(info)
    setup = tensorrt.prepare_build(
        trt, model.SerializeToString(), profile, info.channels, "fp32", TARGET
    )
    network = setup.network
    kinds = {network.get_layer(i).type for i in range(network.num_layers)}
    assert trt.LayerType.PLUGIN_V3 not in kinds
    assert trt.LayerType.MATRIX_MULTIPLY in kinds  # the attention's q k^T and weights
    assert trt.LayerType.SOFTMAX in kinds
    shapes = [tuple(s) for s in setup.optimization_profile.get_shape("IMAGE")]
    assert shapes == [(1, 64, 64, 3), (8, 64, 64, 3), (32, 64, 64, 3)]
    built = tensorrt.build_serialized(setup)
    assert len(built.plan) > 100_000

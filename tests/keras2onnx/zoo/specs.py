"""The zoo: U-Nets built the way users build them, by the public libraries themselves.

This module only describes the models (no TensorFlow import): make_zoo.py builds them with
the Keras environment, test_zoo.py converts them. Each spec names the library function and
its arguments, the sizes of the two golden batches (the canonical size and another one the
network takes), the formats to write, and where the files live:
- `committed`: small models (few filters, small inputs), stored in models/ beside this file
  as tf-keras .h5 (the other formats are built in the cache; `make test` checks Keras 3
  .keras too);
- otherwise the cache (~/.cache/unetkit/zoo/<key>), built in the test set-up from a fixed seed.
`ci`: part of `make test`; the whole zoo is `make test-models`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
COMMITTED = HERE / "models"

# Backends: tf-keras 2.21 (TF_USE_LEGACY_KERAS=1) and Keras 3; each saves .h5 and .keras.
FORMATS = ("tfkeras.h5", "tfkeras.keras", "keras3.keras", "keras3.h5")
COMMITTED_FORMATS = ("tfkeras.h5",)


@dataclass(frozen=True)
class Spec:
    name: str
    library: str  # segmentation_models, keras_unet, keras_unet_collection, keras.applications,
    # keras (written by hand on keras.layers)
    builder: str
    kwargs: dict[str, Any]
    size: int  # the canonical size (square): the Keras input size, or the one the tests use
    other: int  # another size it takes (== size for a network that takes one size only)
    size_key: str = "input_shape"  # the builder's argument for the input shape
    formats: tuple[str, ...] = FORMATS
    committed: bool = False
    ci: tuple[str, ...] = ()  # the formats `make test` checks (besides the committed ones)
    note: str = ""
    family: str = ""  # the encoder family it stands for (ResNet, VGG, ...)
    # backend -> the error the library raises building it there (checked: still true)
    library_errors: dict[str, str] = field(default_factory=dict)
    sizes: str | None = None  # the sizes the export serves (ModelInfo.describe_sizes)

    def key(self) -> str:
        """What the files built from this spec depend on: how it is built, the generator, the
        pinned Keras environment (library versions). A new key is a new cache folder."""
        built = (self.name, self.library, self.builder, self.kwargs, self.size, self.other)
        digest = hashlib.sha256(repr((*built, self.size_key, self.formats)).encode())
        for source in (HERE / "make_zoo.py", HERE.parents[2] / "requirements-keras.txt"):
            digest.update(source.read_bytes())
        return digest.hexdigest()[:12]


def _sm(kind: str, encoder: str, **kwargs: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"backbone_name": encoder, "encoder_weights": None}
    if kind in ("Unet", "Linknet"):
        base.update(classes=1, activation="sigmoid", decoder_filters=(32, 16, 16, 8, 8))
    elif kind == "FPN":
        base.update(classes=3, activation="softmax", pyramid_block_filters=16)
    base.update(kwargs)
    return base


ENCODERS = {
    "resnet18": "ResNet",
    "resnet34": "ResNet",
    "seresnet18": "SE-ResNet",
    "vgg16": "VGG",
    "densenet121": "DenseNet",
    "inceptionv3": "Inception",
    "mobilenetv2": "MobileNet",
    "efficientnetb0": "EfficientNet",
}
# `make test` converts one segmentation-models model per encoder family (smallest file).
CI_SM = {
    "sm_unet_resnet18": ("tfkeras.h5", "keras3.keras"),
    "sm_unet_seresnet18": ("tfkeras.h5",),
    "sm_fpn_vgg16": ("tfkeras.h5",),
    "sm_fpn_densenet121": ("tfkeras.h5",),
    "sm_fpn_inceptionv3": ("tfkeras.h5",),
    "sm_linknet_mobilenetv2": ("keras3.keras",),
    "sm_unet_efficientnetb0": ("tfkeras.h5", "keras3.h5"),
}

SPECS: list[Spec] = []
for kind in ("Unet", "Linknet", "FPN"):
    for encoder, family in ENCODERS.items():
        name = f"sm_{kind.lower()}_{encoder}"
        SPECS.append(
            Spec(
                name,
                "segmentation_models",
                kind,
                _sm(kind, encoder),
                64,
                96,
                family=family,
                ci=CI_SM.get(name, ()),
                note="the library's default input (None, None, 3)",
            )
        )
SPECS += [
    Spec(
        "sm_unet_mobilenetv2_transpose",
        "segmentation_models",
        "Unet",
        _sm("Unet", "mobilenetv2", classes=3, activation="softmax", decoder_block_type="transpose"),
        64,
        96,
        family="MobileNet",
        ci=("tfkeras.h5",),
    ),
    Spec(
        "sm_linknet_resnet18_transpose",
        "segmentation_models",
        "Linknet",
        _sm("Linknet", "resnet18", decoder_block_type="transpose"),
        64,
        96,
        family="ResNet",
    ),
    Spec(
        "sm_unet_resnet18_fixed64",
        "segmentation_models",
        "Unet",
        _sm("Unet", "resnet18", input_shape=(64, 64, 3)),
        64,
        96,
        family="ResNet",
    ),
    Spec(
        "sm_unet_efficientnetb0_transpose_fixed64",
        "segmentation_models",
        "Unet",
        _sm(
            "Unet",
            "efficientnetb0",
            input_shape=(64, 64, 3),
            classes=2,
            activation="softmax",
            decoder_block_type="transpose",
        ),
        64,
        96,
        family="EfficientNet",
    ),
    Spec(
        "sm_fpn_mobilenetv2_sum",
        "segmentation_models",
        "FPN",
        _sm("FPN", "mobilenetv2", pyramid_aggregation="sum"),
        64,
        96,
        family="MobileNet",
    ),
    Spec(
        "sm_pspnet_resnet18",
        "segmentation_models",
        "PSPNet",
        {
            "backbone_name": "resnet18",
            "encoder_weights": None,
            "input_shape": (96, 96, 3),
            "classes": 2,
            "activation": "softmax",
            "downsample_factor": 8,
            "psp_conv_filters": 32,
        },
        96,
        96,
        family="ResNet",
        ci=("tfkeras.h5", "keras3.keras"),
        note="PSPNet sizes its pyramid's pooling windows from the input: pinned to 96x96",
    ),
]

F3 = [4, 8, 16]
SPECS += [
    Spec(
        "ku_custom_unet",
        "keras_unet",
        "custom_unet",
        {
            "input_shape": (48, 48, 3),
            "num_classes": 1,
            "use_batch_norm": True,
            "filters": 4,
            "num_layers": 3,
            "upsample_mode": "deconv",
            "dropout": 0.1,
            "output_activation": "sigmoid",
        },
        48,
        64,
        committed=True,
    ),
    Spec(
        "ku_custom_unet_attention",
        "keras_unet",
        "custom_unet",
        {
            "input_shape": (48, 48, 3),
            "num_classes": 3,
            "use_batch_norm": True,
            "filters": 4,
            "num_layers": 3,
            "upsample_mode": "simple",
            "use_attention": True,
            "dropout": 0.1,
            "output_activation": "softmax",
        },
        48,
        64,
        committed=True,
        note="attention gates multiply a one-channel map into C channels",
    ),
    Spec(
        "ku_vanilla_unet",
        "keras_unet",
        "vanilla_unet",
        {"input_shape": (92, 92, 3), "num_classes": 1, "filters": 4, "num_layers": 2},
        92,
        100,
        committed=True,
        note="'valid' convolutions: the output is smaller than the input",
    ),
    Spec(
        "ku_satellite_unet",
        "keras_unet",
        "satellite_unet",
        {"input_shape": (32, 32, 3), "num_classes": 1, "num_layers": 2},
        32,
        48,
        ci=("tfkeras.h5", "keras3.keras"),
        note="fixed 64 filters; its Conv2DTranspose output_padding=(1, 1) changes nothing",
    ),
]


def _kuc(builder: str, **kwargs: Any) -> dict[str, Any]:
    return {"input_size": (48, 48, 3), "n_labels": 1, "batch_norm": True, **kwargs}


SPECS += [
    Spec(
        "kuc_unet_2d",
        "keras_unet_collection",
        "unet_2d",
        _kuc("unet_2d", filter_num=F3, output_activation="Sigmoid"),
        48,
        64,
        "input_size",
        committed=True,
    ),
    Spec(
        "kuc_unet_2d_dynamic_gelu",
        "keras_unet_collection",
        "unet_2d",
        _kuc(
            "unet_2d",
            input_size=(None, None, 3),
            filter_num=F3,
            n_labels=3,
            activation="GELU",
            output_activation="Softmax",
            pool=False,
            unpool=False,
        ),
        48,
        64,
        "input_size",
        committed=True,
        note="(None, None, 3) input; the library's own GELU layer; strided-conv pooling",
    ),
    Spec(
        "kuc_unet_2d_prelu",
        "keras_unet_collection",
        "unet_2d",
        _kuc(
            "unet_2d",
            input_size=(32, 32, 3),
            filter_num=F3,
            n_labels=2,
            activation="PReLU",
            output_activation="Softmax",
            pool="ave",
            unpool="bilinear",
        ),
        32,
        32,
        "input_size",
        committed=True,
        note="PReLU with one alpha per pixel: the network takes 32x32 only",
    ),
    Spec(
        "kuc_att_unet_2d",
        "keras_unet_collection",
        "att_unet_2d",
        _kuc(
            "att_unet_2d",
            filter_num=F3,
            n_labels=2,
            activation="ELU",
            atten_activation="ReLU",
            attention="add",
            output_activation="Softmax",
        ),
        48,
        64,
        "input_size",
        committed=True,
    ),
    Spec(
        "kuc_unet_plus_2d",
        "keras_unet_collection",
        "unet_plus_2d",
        _kuc("unet_plus_2d", filter_num=F3, output_activation="Sigmoid"),
        48,
        64,
        "input_size",
        committed=True,
    ),
    Spec(
        "kuc_r2_unet_2d",
        "keras_unet_collection",
        "r2_unet_2d",
        _kuc("r2_unet_2d", filter_num=F3, output_activation="Sigmoid"),
        48,
        64,
        "input_size",
        committed=True,
    ),
    Spec(
        "kuc_unet_3plus_2d",
        "keras_unet_collection",
        "unet_3plus_2d",
        {
            "input_size": (48, 48, 3),
            "n_labels": 1,
            "filter_num_down": F3,
            "filter_num_skip": [4, 4],
            "filter_num_aggregate": 12,
            "batch_norm": True,
            "output_activation": "Sigmoid",
        },
        48,
        64,
        "input_size",
        committed=True,
        note="takes 8, 9, 16, 17, ...: the multiples of 4 are served",
    ),
    Spec(
        "kuc_resunet_a_2d",
        "keras_unet_collection",
        "resunet_a_2d",
        _kuc(
            "resunet_a_2d",
            filter_num=F3,
            dilation_num=[1, 3, 15, 31],
            aspp_num_down=8,
            aspp_num_up=4,
            output_activation="Sigmoid",
        ),
        48,
        48,
        "input_size",
        committed=True,
        note="TFOpLambda expand_dims and the library's ASPP resize Lambda (fixed size)",
    ),
    Spec(
        "kuc_u2net_2d",
        "keras_unet_collection",
        "u2net_2d",
        {
            "input_size": (48, 48, 3),
            "n_labels": 1,
            "filter_num_down": F3,
            "batch_norm": True,
            "output_activation": "Sigmoid",
        },
        48,
        64,
        "input_size",
        ci=("tfkeras.h5",),
    ),
    Spec(
        "kuc_vnet_2d",
        "keras_unet_collection",
        "vnet_2d",
        _kuc(
            "vnet_2d",
            filter_num=[8, 8, 8],
            res_num_ini=1,
            res_num_max=2,
            output_activation="Sigmoid",
        ),
        48,
        64,
        "input_size",
        committed=True,
        note="the default unpool=True builds only when all filter_num are equal",
    ),
    Spec(
        "kuc_vnet_2d_unequal",
        "keras_unet_collection",
        "vnet_2d",
        _kuc("vnet_2d", filter_num=F3, res_num_ini=1, res_num_max=2, output_activation="Sigmoid"),
        48,
        64,
        "input_size",
        note="the library's own bug: the default unpool=True fails when filter_num differ",
    ),
    Spec(
        "kuc_vnet_2d_transpose",
        "keras_unet_collection",
        "vnet_2d",
        _kuc(
            "vnet_2d",
            filter_num=F3,
            res_num_ini=1,
            res_num_max=2,
            unpool=False,
            output_activation="Sigmoid",
        ),
        48,
        64,
        "input_size",
        committed=True,
    ),
    Spec(
        "kuc_unet_2d_vgg16",
        "keras_unet_collection",
        "unet_2d",
        _kuc(
            "unet_2d",
            input_size=(64, 64, 3),
            filter_num=[16, 32, 64, 128],
            backbone="VGG16",
            weights=None,
            freeze_backbone=False,
            batch_norm=False,
            output_activation="Sigmoid",
        ),
        64,
        96,
        "input_size",
        family="VGG",
        ci=("keras3.keras",),
        note="a Keras Applications backbone as a nested model",
    ),
    Spec(
        "kuc_unet_2d_resnet50",
        "keras_unet_collection",
        "unet_2d",
        _kuc(
            "unet_2d",
            input_size=(64, 64, 3),
            filter_num=[16, 32, 64, 128],
            backbone="ResNet50",
            weights=None,
            freeze_backbone=False,
            output_activation="Sigmoid",
        ),
        64,
        96,
        "input_size",
        family="ResNet",
        ci=("tfkeras.h5",),
    ),
    Spec(
        "kuc_transunet_2d",
        "keras_unet_collection",
        "transunet_2d",
        _kuc(
            "transunet_2d",
            filter_num=F3,
            embed_dim=16,
            num_mlp=32,
            num_heads=2,
            num_transformer=1,
            output_activation="Sigmoid",
        ),
        48,
        48,
        "input_size",
        committed=True,
        ci=("tfkeras.keras",),
        family="TransUNet",
        note="a ViT bottleneck: patch_extract, patch_embedding, LayerNormalization, "
        "MultiHeadAttention, Dense on tokens, tf.reshape back to a map",
    ),
    Spec(
        "kuc_swin_unet_2d",
        "keras_unet_collection",
        "swin_unet_2d",
        {
            "input_size": (64, 64, 3),
            "filter_num_begin": 16,
            "n_labels": 1,
            "depth": 3,
            "stack_num_down": 2,
            "stack_num_up": 2,
            "patch_size": (2, 2),
            "num_heads": [2, 2, 2],
            "window_size": [4, 2, 2],
            "num_mlp": 32,
            "output_activation": "Sigmoid",
        },
        64,
        64,
        "input_size",
        committed=True,
        ci=("tfkeras.keras",),
        family="Swin-UNet",
        note="Swin blocks (window attention, shifted windows every second block, relative "
        "position bias), patch merging and expanding",
    ),
]

# Transformer U-Nets of other sizes: keras-unet-collection's in several settings, and a
# ViT-encoder U-Net written on keras.layers.MultiHeadAttention (UNETR's layout).
SPECS += [
    Spec(
        "kuc_transunet_2d_heads4",
        "keras_unet_collection",
        "transunet_2d",
        {
            "input_size": (32, 32, 3),
            "filter_num": [8, 16, 32],
            "n_labels": 3,
            "embed_dim": 32,
            "num_mlp": 64,
            "num_heads": 4,
            "num_transformer": 2,
            "batch_norm": True,
            "output_activation": "Softmax",
        },
        32,
        32,
        "input_size",
        family="TransUNet",
        note="4 heads, 2 transformer blocks, 3 classes",
    ),
    Spec(
        "kuc_swin_unet_2d_patch4",
        "keras_unet_collection",
        "swin_unet_2d",
        {
            "input_size": (64, 64, 3),
            "filter_num_begin": 32,
            "n_labels": 2,
            "depth": 2,
            "stack_num_down": 2,
            "stack_num_up": 2,
            "patch_size": (4, 4),
            "num_heads": [4, 4],
            "window_size": [4, 4],
            "num_mlp": 64,
            "output_activation": "Softmax",
        },
        64,
        64,
        "input_size",
        family="Swin-UNet",
        ci=("tfkeras.h5",),
        note="4x4 patches, 4 heads, the deepest window as large as its 8x8 grid halves",
    ),
    Spec(
        "kuc_swin_unet_2d_noshift",
        "keras_unet_collection",
        "base.swin_unet_2d_base",
        {
            "input_size": (32, 32, 3),
            "n_labels": 1,
            "output_activation": "Sigmoid",
            "filter_num_begin": 16,
            "depth": 2,
            "stack_num_down": 1,
            "stack_num_up": 1,
            "patch_size": (2, 2),
            "num_heads": [2, 4],
            "window_size": [4, 8],
            "num_mlp": 32,
            "shift_window": False,
        },
        32,
        32,
        "input_size",
        family="Swin-UNet",
        note="windows never shifted (the library's swin_unet_2d always shifts: its base "
        "function is called with shift_window=False); an 8x8 window over the whole 8x8 grid",
    ),
]
VIT = {"input_shape": (64, 64, 3), "patch": 8, "dim": 32, "depth": 4, "heads": 4, "mlp": 64}
SPECS += [
    Spec(
        "vit_unetr",
        "keras",
        "vit_unet",
        {**VIT, "classes": 1},
        64,
        64,
        committed=True,
        ci=("tfkeras.keras", "keras3.h5"),
        family="ViT",
        note="UNETR-like: patch embedding by a strided Conv2D, a position table added as a "
        "constant, pre-norm MultiHeadAttention blocks, maps decoded by transposed convolutions",
    ),
    Spec(
        "vit_unetr_cross_causal",
        "keras",
        "vit_unet",
        {**VIT, "classes": 3, "cross": True, "causal": True, "dim": 48, "heads": 3},
        64,
        64,
        ci=("tfkeras.h5", "keras3.keras"),
        family="ViT",
        note="the decoder's 16x16 map attends to the encoder's 64 tokens (cross-attention); "
        "the first block's attention is causal (an attention mask)",
    ),
]

# Hand-written U-Nets on Keras Applications encoders: the backbone called as a nested model
# on a new input, or its layers used in place ("flat").
KAPP = {
    "MobileNetV2": (
        "MobileNet",
        (
            "block_1_expand_relu",
            "block_3_expand_relu",
            "block_6_expand_relu",
            "block_13_expand_relu",
        ),
        "out_relu",
    ),
    "EfficientNetB0": (
        "EfficientNet",
        (
            "block2a_expand_activation",
            "block3a_expand_activation",
            "block4a_expand_activation",
            "block6a_expand_activation",
        ),
        "top_activation",
    ),
    # ResNet50 up to stride 16 keeps the file near 35 MB instead of 95 MB.
    "ResNet50": (
        "ResNet",
        ("conv1_relu", "conv2_block3_out", "conv3_block4_out"),
        "conv4_block6_out",
    ),
}
CI_KAPP = {
    "kapp_mobilenetv2_nested": ("tfkeras.h5", "keras3.keras"),
    "kapp_efficientnetb0_flat": ("keras3.keras", "tfkeras.h5"),
    "kapp_resnet50_nested": ("keras3.h5",),
}
for backbone, (family, _, _) in KAPP.items():
    for style in ("nested", "flat"):
        name = f"kapp_{backbone.lower()}_{style}"
        SPECS.append(
            Spec(
                name,
                "keras.applications",
                "unet_on_backbone",
                {
                    "backbone": backbone,
                    "style": style,
                    "input_shape": (None, None, 3) if style == "nested" else (64, 64, 3),
                    "classes": 2 if style == "nested" else 1,
                    "upsample": "transpose" if style == "nested" else "upsampling",
                },
                64,
                96,
                family=family,
                ci=CI_KAPP.get(name, ()),
            )
        )
SPECS += [
    Spec(
        "kapp_convnexttiny_stage1",
        "keras.applications",
        "unet_on_backbone",
        {
            "backbone": "ConvNeXtTiny",
            "style": "nested",
            "input_shape": (None, None, 3),
            "classes": 2,
            "upsample": "upsampling",
            "features": (
                "convnext_tiny_downsampling_block_0:before",
                "convnext_tiny_downsampling_block_1:before",
            ),
            "final_up": 4,
        },
        64,
        96,
        family="ConvNeXt",
        ci=("tfkeras.h5", "keras3.keras"),
        note="ConvNeXt-Tiny up to stage 1 (stride 8): grouped 7x7 Conv2D, LayerNormalization, "
        "Dense on pixels, GELU, LayerScale; the stem is stride 4",
    ),
    Spec(
        "kapp_convnexttiny",
        "keras.applications",
        "unet_on_backbone",
        {
            "backbone": "ConvNeXtTiny",
            "style": "flat",
            "input_shape": (64, 64, 3),
            "classes": 1,
            "upsample": "transpose",
            "features": (
                "convnext_tiny_downsampling_block_0:before",
                "convnext_tiny_downsampling_block_1:before",
                "convnext_tiny_downsampling_block_2:before",
                "",
            ),
            "final_up": 4,
        },
        64,
        96,
        family="ConvNeXt",
        note="the whole ConvNeXt-Tiny (28 M parameters)",
    ),
]
SPECS.append(
    Spec(
        "kapp_mobilenetv2_separable",
        "keras.applications",
        "unet_on_backbone",
        {
            "backbone": "MobileNetV2",
            "style": "flat",
            "input_shape": (None, None, 3),
            "classes": 4,
            "upsample": "upsampling",
            "conv": "separable",
            "alpha": 0.35,
        },
        64,
        96,
        family="MobileNet",
        committed=False,
        ci=("keras3.keras",),
        note="SeparableConv2D + PReLU(shared_axes=[1, 2]) decoder",
    )
)

# What the libraries themselves fail to build (measured; the test checks it still fails).
LIBRARY_ERRORS = {
    "densenet121": {"keras3": "must be a string and cannot contain character `/`"},
    "ku_custom_unet_attention": {"keras3": "'KerasTensor' object has no attribute 'get_shape'"},
    "kuc_resunet_a_2d": {"keras3": "'KerasTensor' object has no attribute 'get_shape'"},
    "kuc_vnet_2d_unequal": {
        "tfkeras": "Inputs have incompatible shapes",
        "keras3": "Inputs have incompatible shapes",
    },
    "kuc_transunet_2d": {
        "keras3": "A KerasTensor cannot be used as input to a TensorFlow function"
    },
    "kuc_swin_unet_2d": {"keras3": "'tuple' object has no attribute 'as_list'"},
    "kuc_transunet_2d_heads4": {
        "keras3": "A KerasTensor cannot be used as input to a TensorFlow function"
    },
    "kuc_swin_unet_2d_patch4": {"keras3": "'tuple' object has no attribute 'as_list'"},
    "kuc_swin_unet_2d_noshift": {"keras3": "'tuple' object has no attribute 'as_list'"},
}
# The sizes the export serves, worked out from the architectures (the table).
MULTIPLES = {
    "sm_": 32,
    "kapp_resnet50": 16,
    "kapp_convnexttiny_stage1": 8,
    "kapp_": 32,
    "kuc_unet_2d_vgg16": 8,
}
SIZES = {
    "kuc_transunet_2d": "48x48 only",
    "kuc_transunet_2d_heads4": "32x32 only",
    "kuc_swin_unet_2d": "64x64 only",
    "kuc_swin_unet_2d_patch4": "64x64 only",
    "kuc_swin_unet_2d_noshift": "32x32 only",
    "vit_unetr": "64x64 only",
    "vit_unetr_cross_causal": "64x64 only",
    "sm_pspnet_resnet18": "96x96 only",
    "kuc_unet_2d_prelu": "32x32 only",
    "kuc_resunet_a_2d": "48x48 only",
    "ku_vanilla_unet": "H 44 + k*4 (k >= 0), W 44 + k*4 (k >= 0)",
    "kuc_unet_3plus_2d": "H a multiple of 4, W a multiple of 4",
}


def _sizes(name: str) -> str | None:
    if name in SIZES:
        return SIZES[name]
    multiple = next((m for prefix, m in MULTIPLES.items() if name.startswith(prefix)), None)
    return None if multiple is None else f"H a multiple of {multiple}, W a multiple of {multiple}"


SPECS = [
    replace(
        spec,
        library_errors=next(
            (e for key, e in LIBRARY_ERRORS.items() if key == spec.name or spec.name.endswith(key)),
            {},
        ),
        sizes=_sizes(spec.name),
    )
    for spec in SPECS
]

BY_NAME = {spec.name: spec for spec in SPECS}
assert len(BY_NAME) == len(SPECS)

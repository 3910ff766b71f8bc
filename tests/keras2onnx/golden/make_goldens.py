"""Make the converter's test models and their golden outputs with real Keras.

Run with the Keras dev environment (TensorFlow + tf-keras + Keras 3):
    .venv-keras/bin/python tests/keras2onnx/golden/make_goldens.py [CASE ...]
It rewrites models/ and manifest.json beside it (only the named cases, if any; "unsupported"
names the models that have no goldens). Every model gets random (seeded) weights,
BatchNormalization statistics included, and golden PROB outputs that Keras itself computes
on random uint8 images normalized as the exported graph does.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import keras
import numpy as np
import tf_keras

HERE = Path(__file__).resolve().parent
MODELS = HERE / "models"


def leaves(model: Any) -> list[Any]:
    """The model's layers, those of nested models included."""
    found = []
    for layer in model.layers:
        found.extend(leaves(layer) if hasattr(layer, "layers") else [layer])
    return found


def randomize(model: Any, rng: np.random.Generator) -> None:
    """Give every weight a random value so that no bias or BN statistic is trivial."""
    for layer in leaves(model):
        weights = layer.get_weights()
        if not weights:
            continue
        if type(layer).__name__ == "PReLU":
            new = [rng.uniform(0.05, 0.3, w.shape) for w in weights]
        elif type(layer).__name__ == "BatchNormalization":
            new = []
            for w, var in zip(weights, layer.weights, strict=True):
                name = var.name.split("/")[-1].split(":")[0]
                if name == "gamma":
                    new.append(rng.uniform(0.5, 1.5, w.shape))
                elif name == "moving_variance":
                    new.append(rng.uniform(0.1, 1.0, w.shape))
                else:
                    new.append(rng.normal(0.0, 0.2, w.shape))
        else:
            new = []
            for w in weights:
                fan_in = np.prod(w.shape[:-1]) if w.ndim > 1 else 1
                scale = 1.2 / np.sqrt(fan_in) if w.ndim > 1 else 0.1
                new.append(rng.normal(0.0, scale, w.shape))
        layer.set_weights([np.asarray(w, dtype=np.float32) for w in new])


def zhixuhao_unet(k: Any, shape: tuple[Any, ...], base: int = 2) -> Any:
    """The layout of github.com/zhixuhao/unet: UpSampling2D + 2x2 conv + concat, Dropout."""
    L = k.layers

    def conv(x: Any, filters: int, kernel: int = 3) -> Any:
        return L.Conv2D(filters, kernel, activation="relu", padding="same")(x)

    inputs = L.Input(shape)
    skips = []
    x = inputs
    for level in range(4):
        x = conv(conv(x, base << level), base << level)
        if level == 3:
            x = L.Dropout(0.5)(x)
        skips.append(x)
        x = L.MaxPooling2D(2)(x)
    x = L.Dropout(0.5)(conv(conv(x, base << 4), base << 4))
    for level in reversed(range(4)):
        x = conv(L.UpSampling2D(2)(x), base << level, kernel=2)
        x = L.Concatenate(axis=3)([skips[level], x])
        x = conv(conv(x, base << level), base << level)
    x = conv(x, 2)
    outputs = L.Conv2D(1, 1, activation="sigmoid")(x)
    return k.Model(inputs, outputs)


def transpose_bn_unet(k: Any, shape: tuple[Any, ...]) -> Any:
    """Conv2DTranspose + BatchNorm + strided 'same' convs, non-square RGB, softmax over 3."""
    L = k.layers

    def block(x: Any, filters: int, strides: int = 1) -> Any:
        x = L.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False)(x)
        x = L.BatchNormalization()(x)
        return L.Activation("relu")(x)

    inputs = L.Input(shape)
    s1 = block(inputs, 6)
    s2 = block(block(s1, 8, strides=2), 8)
    s3 = block(block(s2, 12, strides=2), 12)
    x = block(s3, 16, strides=2)
    for skip, filters in ((s3, 12), (s2, 8), (s1, 6)):
        x = L.Conv2DTranspose(filters, 3, strides=2, padding="same")(x)
        x = L.BatchNormalization()(x)
        x = L.Concatenate()([skip, L.ReLU()(x)])
        x = block(x, filters)
    outputs = L.Conv2D(3, 1, activation="softmax")(x)
    return k.Model(inputs, outputs)


def valid_unet(k: Any, shape: tuple[Any, ...]) -> Any:
    """'valid' padding everywhere; the skip is cropped to the upsampled size."""
    L = k.layers
    inputs = L.Input(shape)
    x = L.Conv2D(4, 3, activation="relu")(inputs)
    skip = L.Conv2D(4, 3, activation="relu")(x)  # 40
    x = L.MaxPooling2D(2)(skip)  # 20
    x = L.Conv2D(8, 3, activation="relu")(x)
    x = L.Conv2D(8, 3, activation="relu")(x)  # 16
    x = L.Conv2DTranspose(4, 2, strides=2)(x)  # 32
    x = L.Concatenate()([L.Cropping2D(4)(skip), x])
    x = L.Conv2D(4, 3, activation="relu")(x)
    x = L.Conv2D(4, 3, activation="relu")(x)  # 28
    outputs = L.Conv2D(1, 1, activation="sigmoid")(x)
    return k.Model(inputs, outputs)


def ronneberger_unet(k: Any, shape: tuple[Any, ...], base: int = 2) -> Any:
    """Ronneberger et al. (2015) at a few channels: 4 levels of two unpadded 3x3 convs,
    2x2 max pooling, 2x2 up-convolution, skips cropped to the up-convolved size; valid
    sizes 188 + k*16, output 184 pixels smaller (the client's overlap-tile test model).
    ELU instead of the paper's ReLU: with random weights, 23 ReLU layers leave a constant
    output, and the client's tests need a mask that follows the image."""
    L = k.layers

    def convs(x: Any, filters: int) -> Any:
        x = L.Conv2D(filters, 3, activation="elu")(x)
        return L.Conv2D(filters, 3, activation="elu")(x)

    inputs = L.Input(shape)
    skips = []
    x = inputs
    for level in range(4):
        x = convs(x, base << level)
        skips.append(x)
        x = L.MaxPooling2D(2)(x)
    x = convs(x, base << 4)
    # skip minus up-convolved size, per side: the same for every valid input size
    for level, crop in zip(reversed(range(4)), (4, 16, 40, 88), strict=True):
        x = L.Conv2DTranspose(base << level, 2, strides=2)(x)
        x = L.Concatenate()([L.Cropping2D(crop)(skips[level]), x])
        x = convs(x, base << level)
    outputs = L.Conv2D(1, 1, activation="sigmoid")(x)
    return k.Model(inputs, outputs)


def extras_tf(k: Any, shape: tuple[Any, ...]) -> Any:
    """Everything else the converter supports, as tf.keras 2.x writes it."""
    L = k.layers
    inputs = L.Input(shape)
    x = L.ZeroPadding2D(((1, 2), (0, 3)))(inputs)
    x = L.Cropping2D(((1, 2), (0, 3)))(x)
    a = L.Conv2D(6, 4, strides=2, padding="same", activation="tanh")(x)  # even kernel, stride 2
    b = L.Conv2D(6, 3, dilation_rate=2, padding="same", activation="elu")(L.AveragePooling2D(2)(x))
    x = L.Add()([a, b])
    x = L.LeakyReLU(alpha=0.2)(x)
    x = L.Conv2D(6, 3, padding="same", activation="selu", use_bias=False)(x)
    x = L.BatchNormalization(center=False)(x)
    x = L.SpatialDropout2D(0.3)(x)
    y = L.AveragePooling2D(3, strides=2, padding="same")(x)  # excludes padding from the mean
    y = L.MaxPooling2D(3, strides=2, padding="same")(L.Activation("swish")(y))
    y = L.UpSampling2D(4, interpolation="bilinear")(y)
    x = L.Multiply()([x, L.Activation("sigmoid")(L.Conv2D(6, 1)(y))])
    x = L.ReLU(max_value=6.0)(L.Conv2D(6, 3, padding="same")(x))
    x = L.ReLU(negative_slope=0.1)(L.Conv2D(5, 3, padding="same")(x))
    x = L.Conv2DTranspose(4, 4, strides=2, padding="same", activation="relu")(x)
    x = L.Conv2DTranspose(4, 1, strides=2, padding="valid")(x)  # kernel < stride
    x = L.AveragePooling2D(4)(x)
    x = L.Conv2D(4, 1, activation="softmax")(x)
    outputs = L.Softmax()(L.Conv2D(4, 1)(x))
    return k.Model(inputs, outputs)


def extras_keras3(k: Any, shape: tuple[Any, ...]) -> Any:
    """Keras 3 schema: negative_slope, silu, 'same' pooling on odd sizes, Add of three."""
    L = k.layers
    inputs = L.Input(shape)
    x = L.Conv2D(5, 3, padding="same", activation="silu")(inputs)
    x = L.BatchNormalization(scale=False, epsilon=0.01)(x)
    x = L.LeakyReLU(negative_slope=0.05)(x)
    p = L.MaxPooling2D(3, strides=2, padding="same")(x)
    q = L.Conv2D(5, 2, strides=2, padding="same", activation="relu")(x)
    r = L.Conv2D(5, 5, strides=2, padding="same", dilation_rate=1)(x)
    x = L.Add()([p, q, r])
    x = L.Conv2DTranspose(4, 3, strides=2, padding="valid", activation="tanh")(x)
    x = L.Cropping2D(((0, 1), (1, 0)))(x)
    x = L.UpSampling2D((1, 2))(x)
    x = L.Conv2D(2, 3, padding="valid", activation="softmax")(x)
    outputs = L.Activation("linear")(x)
    return k.Model(inputs, outputs)


def sequential(k: Any, shape: tuple[Any, ...]) -> Any:
    L = k.layers
    return k.Sequential(
        [
            k.Input(shape),
            L.Conv2D(4, 3, padding="same", activation="relu"),
            L.MaxPooling2D(2),
            L.Conv2D(4, 3, padding="same", activation="relu"),
            L.Dropout(0.2),
            L.UpSampling2D(2),
            L.Conv2D(1, 3, padding="same", activation="sigmoid"),
        ]
    )


def two_formats(k: Any, shape: tuple[Any, ...], data_format: str = "channels_first") -> Any:
    """The same small U-Net in either data format (weights are layout-independent)."""
    L = k.layers
    axis = 1 if data_format == "channels_first" else 3
    inputs = L.Input(shape)
    x = L.Conv2D(4, 3, padding="same", activation="relu", data_format=data_format)(inputs)
    x = L.BatchNormalization(axis=axis)(x)
    skip = x
    x = L.MaxPooling2D(2, data_format=data_format)(x)
    x = L.Conv2D(4, 3, padding="same", activation="relu", data_format=data_format)(x)
    x = L.UpSampling2D(2, data_format=data_format)(x)
    x = L.Concatenate(axis=axis)([x, skip])
    x = L.Conv2D(2, 1, activation="sigmoid", data_format=data_format)(x)
    return k.Model(inputs, x)


def custom_layer(k: Any, shape: tuple[Any, ...]) -> Any:
    """A layer class of the user's own (one weight per channel): converts only after a
    converter for it is registered (docs/converter.md, "Your own layers")."""

    class ChannelScale(k.layers.Layer):
        def build(self, input_shape: Any) -> None:
            self.scale = self.add_weight(name="scale", shape=(input_shape[-1],))

        def call(self, x: Any) -> Any:
            return x * self.scale

    if k is keras:
        ChannelScale = keras.saving.register_keras_serializable("unetkit_test")(ChannelScale)
    L = k.layers
    inputs = L.Input(shape)
    x = L.Conv2D(3, 3, padding="same", activation="relu")(inputs)
    x = ChannelScale(name="channel_scale")(x)
    return k.Model(inputs, L.Conv2D(1, 1, activation="sigmoid")(x))


def new_layers(k: Any, shape: tuple[Any, ...]) -> Any:
    """The layers and activations the libraries' U-Nets use beyond a plain U-Net: in-model
    preprocessing, depthwise/separable convolutions, squeeze-and-excitation (global pooling,
    Reshape, Dense, Multiply by a vector), a broadcast attention map, Permute, the other
    merges, bicubic upsampling, Conv2DTranspose with output_padding, a Dropout subclass of the
    user's own, and the activations that differ between Keras versions."""
    L = k.layers
    keras3 = k is keras

    class FixedDropout(L.Dropout):  # efficientnet's pattern: a Dropout subclass
        pass

    if keras3:
        FixedDropout = keras.saving.register_keras_serializable("unetkit_test")(FixedDropout)

    def swish(x: Any) -> Any:  # a function activation: Keras 3 saves it as a dict
        return x * k.activations.sigmoid(x)

    inputs = L.Input(shape)
    x = L.Rescaling([0.5, 1.0, 2.0], offset=0.1)(inputs)
    x = L.Normalization(mean=[0.4, 0.5, 0.6], variance=[0.05, 0.06, 0.07])(x)
    x = L.Conv2D(8, 3, padding="same", activation=swish)(x)
    x = L.BatchNormalization()(x)
    x = L.ELU(alpha=0.5)(x)
    d = L.DepthwiseConv2D(3, strides=2, padding="same", depth_multiplier=2)(x)
    d = L.PReLU(shared_axes=[1, 2])(d)
    d = FixedDropout(0.3, name="fixed_dropout")(d)
    s = L.SeparableConv2D(8, 3, padding="same", depth_multiplier=2, activation="gelu")(d)
    se = L.GlobalAveragePooling2D()(s)
    se = L.Reshape((1, 1, 8))(se)
    se = L.Dense(4, activation="relu")(se)
    se = L.Dense(8, activation="hard_sigmoid")(se)
    s = L.Multiply()([s, se])
    s = L.Subtract()([s, L.GlobalMaxPooling2D(keepdims=True)(s)])
    s = L.Multiply()([s, L.Conv2D(1, 1, activation="sigmoid")(s)])  # an attention map
    p = L.Permute((2, 1, 3))(L.Permute((2, 1, 3))(s))
    s = L.Add()([L.Average()([s, p]), L.Maximum()([s, p]), L.Minimum()([s, p])])
    s = L.Activation("mish" if keras3 else "softplus")(s)
    up = L.UpSampling2D(2, interpolation="bicubic")(s)
    same = L.Conv2DTranspose(8, 3, strides=2, padding="same", output_padding=1)(s)
    valid = L.Conv2DTranspose(8, 3, strides=2, padding="valid", output_padding=1)(s)
    tight = L.Conv2DTranspose(8, 4, strides=2, padding="same", output_padding=1)(s)
    x = L.Concatenate()(
        [
            up,
            same,
            L.Cropping2D(((1, 1), (2, 0)))(valid),
            L.ZeroPadding2D(((0, 1), (0, 1)))(tight),
            x,
        ]
    )
    if keras3:
        x = L.Activation("hard_swish")(L.Conv2D(8, 3, padding="same", activation="relu6")(x))
    else:
        x = L.ThresholdedReLU(theta=0.1)(L.Conv2D(8, 3, padding="same", activation="softsign")(x))
        x = L.UpSampling2D(1, interpolation="area")(x)
    x = L.Activation("hard_sigmoid")(L.Conv2D(6, 3, padding="same")(x))
    outputs = L.Conv2D(3, 1, activation="softmax")(x)
    return k.Model(inputs, outputs)


def nested(k: Any, shape: tuple[Any, ...]) -> Any:
    """A functional encoder called as a layer, and a Sequential block called twice (shared
    weights): what the converter flattens."""
    L = k.layers
    enc_in = L.Input(shape)
    a = L.Conv2D(4, 3, padding="same", activation="relu", name="conv")(enc_in)
    b = L.BatchNormalization(name="bn")(L.Conv2D(6, 3, strides=2, padding="same")(a))
    encoder = k.Model(enc_in, [a, b], name="encoder")
    block = k.Sequential(
        [L.Input((None, None, 6)), L.Conv2D(6, 3, padding="same", name="conv"), L.ReLU()],
        name="block",
    )
    inputs = L.Input(shape)
    skip, x = encoder(inputs)
    x = block(block(x))  # the same block twice: shared weights
    x = L.UpSampling2D(2)(x)
    x = L.Concatenate()([x, skip])
    return k.Model(inputs, L.Conv2D(1, 1, activation="sigmoid", name="conv")(x))


def tf_functions(k: Any, shape: tuple[Any, ...]) -> Any:
    """TensorFlow functions called on Keras tensors (tf.keras saves them as TFOpLambda)."""
    import tensorflow as tf

    L = k.layers
    inputs = L.Input(shape)
    x = L.Conv2D(6, 3, padding="same")(inputs)
    y = L.Conv2D(6, 3, padding="same")(inputs)
    x = tf.nn.relu(x + y) * 0.5 + tf.math.sigmoid(y)
    x = 1.0 - tf.maximum(x, y) / 3.0
    squeeze = tf.expand_dims(tf.expand_dims(tf.reduce_mean(x, axis=[1, 2]), 1), 1)
    x = x * tf.math.sigmoid(L.Conv2D(6, 1)(squeeze))
    x = x - tf.reduce_max(x, axis=[1, 2], keepdims=True)
    x = tf.transpose(tf.transpose(x, [0, 2, 1, 3]), [0, 2, 1, 3])
    x = tf.concat([x, tf.nn.relu6(inputs)], axis=-1)
    x = tf.nn.softmax(L.Conv2D(3, 1)(x), axis=-1)
    return k.Model(inputs, x)


def tf_resize(k: Any, shape: tuple[Any, ...]) -> Any:
    """TensorFlow resizes to fixed sizes and a reshape: the network takes its input size only."""
    import tensorflow as tf

    L = k.layers
    inputs = L.Input(shape)
    x = L.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    a = tf.image.resize(x, (24, 24))
    b = tf.compat.v1.image.resize(x, (24, 24), align_corners=True)
    c = tf.image.resize(x, (24, 24), method="nearest")
    x = tf.concat([a, b, c, L.UpSampling2D(2)(x)], axis=-1)  # 24x24 only from 12x12
    x = tf.reshape(tf.transpose(x, [0, 2, 1, 3]), [-1, 24, 24, 16])
    return k.Model(inputs, L.Conv2D(1, 1, activation="sigmoid")(x))


def user_lambda(k: Any, shape: tuple[Any, ...]) -> Any:
    """A Lambda of the user's own: converts only once a converter is registered for it."""
    L = k.layers
    inputs = L.Input(shape)
    x = L.Conv2D(3, 3, padding="same")(inputs)
    x = L.Lambda(lambda t: t * 2.0 + 1.0, name="scale_shift")(x)
    return k.Model(inputs, L.Conv2D(1, 1, activation="sigmoid")(x))


def unsupported(k: Any) -> Any:
    L = k.layers
    inputs = L.Input((16, 16, 1))
    x = L.GroupNormalization(groups=2)(L.Conv2D(4, 3, padding="same")(inputs))
    return k.Model(inputs, L.Conv2D(1, 1, activation="sigmoid")(x))


def attention(k: Any, shape: tuple[Any, ...]) -> Any:
    """Transformer layers and the functions hand-written attention uses: grouped Conv2D,
    LayerNormalization of a map and of tokens, MultiHeadAttention (causal self-attention with
    value_dim and output_shape; cross-attention to pooled tokens, no bias), Softmax over the
    tokens, EinsumDense, Permute of a sequence, q @ k^T attention (tf.matmul/tf.nn.softmax in
    tf.keras; ops.matmul/ops.softmax/ops.einsum in Keras 3), a position table added, a roll."""
    L = k.layers
    if k is keras:
        ops = keras.ops
        matmul_t = lambda a, b: ops.matmul(a, ops.transpose(b, (0, 2, 1)))  # noqa: E731
        weigh = lambda p, v: ops.einsum("bts,bsd->btd", p, v)  # noqa: E731
        softmax, roll, arange = ops.softmax, ops.roll, ops.arange
    else:
        import tensorflow as tf

        matmul_t = lambda a, b: tf.matmul(a, b, transpose_b=True)  # noqa: E731
        weigh, roll, arange = tf.matmul, tf.roll, tf.range
        softmax = tf.nn.softmax
    inputs = L.Input(shape)
    x = L.Conv2D(8, 2, strides=2, padding="same")(inputs)
    x = L.Conv2D(8, 3, padding="same", groups=4, activation="gelu")(x)
    x = L.LayerNormalization(epsilon=1e-6)(x)
    grid = (shape[0] // 2, shape[1] // 2)
    t = L.Reshape((grid[0] * grid[1], 8))(x)
    t = t + L.Embedding(grid[0] * grid[1], 8)(arange(grid[0] * grid[1]))
    a = L.MultiHeadAttention(2, 4, value_dim=3, output_shape=8)(t, t, use_causal_mask=True)
    t = L.LayerNormalization(center=False)(L.Add()([t, a]))
    pooled = L.Reshape((-1, 8))(L.MaxPooling2D(2)(x))
    t = L.Add()([t, L.MultiHeadAttention(1, 8, use_bias=False)(t, pooled)])
    t = L.Multiply()([t, L.Softmax(axis=1)(L.Dense(8)(t))])
    count = grid[0] * grid[1]
    t = L.EinsumDense("abc,cd->abd", output_shape=(count, 8), bias_axes="d", activation="relu")(t)
    t = L.Permute((2, 1))(L.Dense(grid[0] * grid[1])(L.Permute((2, 1))(t)))
    q, key, v = L.Dense(4)(t), L.Dense(4)(t), L.Dense(8)(t)
    t = L.Add()([t, weigh(softmax(matmul_t(q, key) * 0.5, axis=-1), v)])
    x = L.Concatenate()([L.Reshape((*grid, 8))(t), roll(x, shift=[1, -2], axis=[1, 2])])
    x = L.UpSampling2D(2)(x)
    return k.Model(inputs, L.Conv2D(3, 1, activation="softmax")(x))


def finite_dynamic(k: Any) -> Any:
    """Built for any size, but a resize to 16x16 concatenated with the input: the network runs
    at 16x16 only (the converter asks for --input-size)."""
    import tensorflow as tf

    L = k.layers
    inputs = L.Input((None, None, 2))
    x = tf.concat([tf.image.resize(inputs, (16, 16)), inputs], axis=-1)
    return k.Model(inputs, L.Conv2D(1, 1, activation="sigmoid")(x))


CASES: list[dict[str, Any]] = [
    # shape: the saved model's input; sizes: (H, W) of the golden images (batch 2, then 3);
    # rule: the valid input sizes worked out by hand [multiple_h, min_h, multiple_w, min_w].
    {
        "name": "zhixuhao_tf",
        "build": zhixuhao_unet,
        "writer": "tf_keras",
        "suffix": ".h5",
        "shape": (64, 64, 1),
        "sizes": [(64, 64), (48, 80)],
        "rule": [16, 16, 16, 16],
    },
    {
        "name": "zhixuhao_k3",
        "build": zhixuhao_unet,
        "writer": "keras3",
        "suffix": ".keras",
        "shape": (None, None, 1),
        "sizes": [(32, 32), (64, 48)],
        "rule": [16, 16, 16, 16],
    },
    {
        "name": "transpose_bn_k3",
        "build": transpose_bn_unet,
        "writer": "keras3",
        "suffix": ".keras",
        "shape": (48, 80, 3),
        "sizes": [(48, 80), (32, 40)],
        "rule": [8, 8, 8, 8],
        "mean": [123.675, 116.28, 103.53],
        "std": [58.395, 57.12, 57.375],
    },
    {
        "name": "transpose_bn_k3h5",
        "build": transpose_bn_unet,
        "writer": "keras3",
        "suffix": ".h5",
        "shape": (48, 80, 3),
        "sizes": [(48, 80), (24, 16)],
        "rule": [8, 8, 8, 8],
    },
    {
        "name": "valid_tf",
        "build": valid_unet,
        "writer": "tf_keras",
        "suffix": ".h5",
        "shape": (44, 44, 1),
        "sizes": [(44, 44), (52, 46)],
        "rule": [2, 18, 2, 18],
    },
    {
        "name": "extras_tf",
        "build": extras_tf,
        "writer": "tf_keras",
        "suffix": ".h5",
        "shape": (None, None, 2),
        "sizes": [(24, 40), (16, 8)],
        "rule": [8, 8, 8, 8],
    },
    {
        "name": "extras_k3",
        "build": extras_keras3,
        "writer": "keras3",
        "suffix": ".keras",
        "shape": (None, None, 3),
        "sizes": [(20, 17), (9, 30)],
        "rule": [1, 3, 1, 1],
    },
    {
        "name": "sequential_tf",
        "build": sequential,
        "writer": "tf_keras",
        "suffix": ".h5",
        "shape": (32, 32, 1),
        "sizes": [(32, 32), (16, 24)],
        "rule": [1, 2, 1, 2],
    },
    {
        "name": "sequential_k3",
        "build": sequential,
        "writer": "keras3",
        "suffix": ".keras",
        "shape": (32, 32, 1),
        "sizes": [(32, 32), (8, 6)],
        "rule": [1, 2, 1, 2],
    },
    # TensorFlow's CPU kernels cannot run NCHW convolutions, so this model's goldens come
    # from its channels_last twin with the same weights.
    {
        "name": "channels_first_k3",
        "build": two_formats,
        "writer": "keras3",
        "suffix": ".keras",
        "shape": (3, 32, 32),
        "sizes": [(32, 32), (16, 8)],
        "rule": [2, 2, 2, 2],
        "twin": lambda k, shape: two_formats(k, shape, "channels_last"),
    },
    # Convert only once a converter for ChannelScale is registered (test_registry.py).
    {
        "name": "custom_layer_k3",
        "build": custom_layer,
        "writer": "keras3",
        "suffix": ".keras",
        "shape": (None, None, 2),
        "sizes": [(8, 12), (5, 7)],
        "rule": [1, 1, 1, 1],
        "needs_converter": "ChannelScale",
    },
    {
        "name": "custom_layer_tf",
        "build": custom_layer,
        "writer": "tf_keras",
        "suffix": ".h5",
        "shape": (None, None, 2),
        "sizes": [(8, 12), (5, 7)],
        "rule": [1, 1, 1, 1],
        "needs_converter": "ChannelScale",
    },
    {
        "name": "new_layers_tf",
        "build": new_layers,
        "writer": "tf_keras",
        "suffix": ".h5",
        "shape": (None, None, 3),
        "sizes": [(16, 24), (10, 8)],
        "rule": [2, 2, 2, 2],
    },
    {
        "name": "new_layers_k3",
        "build": new_layers,
        "writer": "keras3",
        "suffix": ".keras",
        "shape": (None, None, 3),
        "sizes": [(16, 24), (10, 8)],
        "rule": [2, 2, 2, 2],
    },
    *[
        {
            "name": f"attention_{tag}",
            "build": attention,
            "writer": writer,
            "suffix": suffix,
            "shape": (16, 16, 3),
            "sizes": [(16, 16), (16, 16)],
            "rule": [1, 16, 1, 16],
            "pinned": True,
        }
        for tag, writer, suffix in (
            ("tf", "tf_keras", ".h5"),
            ("k3", "keras3", ".keras"),
            ("k3h5", "keras3", ".h5"),
        )
    ],
    {
        "name": "new_layers_k3h5",
        "build": new_layers,
        "writer": "keras3",
        "suffix": ".h5",
        "shape": (None, None, 3),
        "sizes": [(12, 12), (6, 14)],
        "rule": [2, 2, 2, 2],
    },
    {
        "name": "nested_tf",
        "build": nested,
        "writer": "tf_keras",
        "suffix": ".h5",
        "shape": (None, None, 3),
        "sizes": [(16, 16), (8, 12)],
        "rule": [2, 2, 2, 2],
    },
    {
        "name": "nested_tfk",
        "build": nested,
        "writer": "tf_keras",
        "suffix": ".keras",
        "shape": (None, None, 3),
        "sizes": [(16, 16), (8, 12)],
        "rule": [2, 2, 2, 2],
    },
    {
        "name": "nested_k3",
        "build": nested,
        "writer": "keras3",
        "suffix": ".keras",
        "shape": (None, None, 3),
        "sizes": [(16, 16), (8, 12)],
        "rule": [2, 2, 2, 2],
    },
    {
        "name": "nested_k3h5",
        "build": nested,
        "writer": "keras3",
        "suffix": ".h5",
        "shape": (None, None, 3),
        "sizes": [(16, 16), (8, 12)],
        "rule": [2, 2, 2, 2],
    },
    {
        "name": "tf_functions_tf",
        "build": tf_functions,
        "writer": "tf_keras",
        "suffix": ".h5",
        "shape": (None, None, 3),
        "sizes": [(12, 12), (7, 9)],
        "rule": [1, 1, 1, 1],
    },
    {
        "name": "tf_resize_tf",
        "build": tf_resize,
        "writer": "tf_keras",
        "suffix": ".h5",
        "shape": (12, 12, 3),
        "sizes": [(12, 12), (12, 12)],
        "rule": [1, 12, 1, 12],
        "pinned": True,
    },
    # Convert only once a converter for that one Lambda is registered (test_registry.py).
    {
        "name": "user_lambda_tf",
        "build": user_lambda,
        "writer": "tf_keras",
        "suffix": ".h5",
        "shape": (None, None, 2),
        "sizes": [(8, 12), (5, 7)],
        "rule": [1, 1, 1, 1],
        "needs_converter": "Lambda:scale_shift",
    },
    {
        "name": "user_lambda_k3",
        "build": user_lambda,
        "writer": "keras3",
        "suffix": ".keras",
        "shape": (None, None, 2),
        "sizes": [(8, 12), (5, 7)],
        "rule": [1, 1, 1, 1],
        "needs_converter": "Lambda:scale_shift",
    },
    # Merged after the cases above were generated: it keeps the seed it was made with.
    {
        "name": "ronneberger_tf",
        "build": ronneberger_unet,
        "writer": "tf_keras",
        "suffix": ".h5",
        "shape": (None, None, 1),
        "sizes": [(188, 188), (204, 236)],
        "rule": [16, 188, 16, 188],
        "seed": 12,
    },
]


def predict(model: Any, images: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    x = (images.astype(np.float32) - mean) / std
    return np.asarray(model(x, training=False), dtype=np.float32)


def make_case(case: dict[str, Any], index: int) -> dict[str, Any]:
    k: Any = tf_keras if case["writer"] == "tf_keras" else keras
    seed = case.get("seed", index)
    k.utils.set_random_seed(seed)
    rng = np.random.default_rng(1000 + seed)
    model = case["build"](k, case["shape"])
    randomize(model, rng)
    path = MODELS / f"{case['name']}{case['suffix']}"
    model.save(path)
    channels_first = "twin" in case
    channels = case["shape"][0 if channels_first else 2]
    mean = np.array(case.get("mean", [0.0]), dtype=np.float32)
    std = np.array(case.get("std", [255.0]), dtype=np.float32)
    arrays: dict[str, np.ndarray] = {}
    for i, ((h, w), batch) in enumerate(zip(case["sizes"], (2, 3), strict=True)):
        # A model with a fixed input size only runs at that size: other sizes use a twin
        # built for them with the same weights.
        build = case.get("twin", case["build"])
        runner = model
        if channels_first or (case["shape"][0] is not None and (h, w) != case["shape"][:2]):
            runner = build(k, (h, w, channels))
            runner.set_weights(model.get_weights())
        images = rng.integers(0, 256, (batch, h, w, channels), dtype=np.uint8)
        arrays[f"image_{i}"] = images
        arrays[f"prob_{i}"] = predict(runner, images, mean, std)
    np.savez_compressed(MODELS / f"{case['name']}.npz", **arrays)
    multiple_h, min_h, multiple_w, min_w = case["rule"]
    fixed = case["shape"][1:] if channels_first else case["shape"][:2]
    return {
        "name": case["name"],
        "model": path.name,
        "goldens": f"{case['name']}.npz",
        "writer": f"{case['writer']} {k.__version__}",
        "mean": case.get("mean"),
        "std": case.get("std"),
        "keras_size": None if fixed[0] is None else list(fixed),
        "size_rule": {
            "multiple_h": multiple_h,
            "min_height": min_h,
            "multiple_w": multiple_w,
            "min_width": min_w,
        },
        "classes": int(arrays["prob_0"].shape[-1]),
        "needs_converter": case.get("needs_converter"),
        "pinned": bool(case.get("pinned", False)),
    }


def main(argv: list[str]) -> int:
    """Every case, or the cases named as arguments (the others keep their files)."""
    MODELS.mkdir(parents=True, exist_ok=True)
    only = set(argv)
    manifest = HERE / "manifest.json"
    kept = {c["name"]: c for c in json.loads(manifest.read_text())["cases"]} if only else {}
    entries = []
    for index, case in enumerate(CASES):
        if only and case["name"] not in only:
            if case["name"] in kept:
                entries.append(kept[case["name"]])
            continue
        try:
            entries.append(make_case(case, index))
        except Exception as e:  # report which case the installed Keras cannot build
            print(
                f"{case['name']}: skipped, Keras failed: {type(e).__name__}: {e}", file=sys.stderr
            )
            continue
        print(f"{case['name']}: ok")
    if not only or "unsupported" in only:
        unsupported(keras).save(MODELS / "unsupported_groupnorm.keras")
        finite_dynamic(tf_keras).save(MODELS / "finite_dynamic_tf.h5")
    manifest.write_text(json.dumps({"cases": entries}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

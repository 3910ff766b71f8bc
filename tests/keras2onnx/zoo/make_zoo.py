"""Build zoo models with their libraries, give them seeded random weights, save them, and
compute Keras's outputs (the goldens). Run with the Keras environment, one backend per run:

    .venv-keras/bin/python tests/keras2onnx/zoo/make_zoo.py --backend tfkeras --out DIR \
        [--names a,b] [--formats tfkeras.h5] [--reload-check] [--cache]

For each model and format it writes DIR/<name>__<backend>.<ext>, and once per model
DIR/<name>__<backend>.npz (image_0/prob_0 at the canonical size, image_1/prob_1 at the other
size; uint8 images, the model fed image / 255 as the kit's default) and
DIR/<name>__<backend>.json (what was built and saved, or the library's error).

Weights: every weight gets a seeded random value (seeded by layer and weight name, so both
backends agree where names agree). BatchNormalization statistics are then set from the
statistics the network actually sees on calibration images and perturbed (mean shifted by
0.1 std, variance scaled by 0.7-1.4): random, so folding is really tested, yet every layer's
output stays near unit scale, so float32 rounding stays far below the 1e-4 tolerance.
The goldens are the in-memory model's outputs (what the trained model computes); with
--reload-check the saved file is loaded back by Keras and compared too.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
import zlib
from pathlib import Path
from typing import Any

BACKEND = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--backend=")), None)
if BACKEND is None and "--backend" in sys.argv:
    BACKEND = sys.argv[sys.argv.index("--backend") + 1]
if BACKEND == "tfkeras":
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
else:
    os.environ.pop("TF_USE_LEGACY_KERAS", None)
os.environ.setdefault("SM_FRAMEWORK", "tf.keras")  # segmentation-models on tf.keras
os.environ.setdefault("MPLBACKEND", "Agg")  # keras-unet imports matplotlib
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from specs import BY_NAME, COMMITTED, COMMITTED_FORMATS, SPECS, Spec  # noqa: E402

K: Any = tf.keras
SEED = 20261126


# ---- building -------------------------------------------------------------------------------


def unet_on_backbone(
    backbone: str,
    style: str,
    input_shape: tuple[Any, ...],
    classes: int,
    upsample: str,
    conv: str = "conv",
    alpha: float | None = None,
    decoder_filters: tuple[int, ...] = (16, 16, 8, 8),
    features: tuple[str, ...] | None = None,
    final_up: int = 2,
) -> Any:
    """A U-Net decoder on a Keras Applications encoder, as users write one. `features`: the
    skip layers and the bottleneck ('name:before' is the layer listed before `name`, the one
    that feeds it; '' the encoder's output); default KAPP's for the backbone."""
    from specs import KAPP

    layers = K.layers
    if features is None:
        _, skip_names, bottleneck = KAPP[backbone]
        features = (*skip_names, bottleneck)
    extra = {} if alpha is None else {"alpha": alpha}
    encoder = getattr(K.applications, backbone)(
        input_shape=input_shape, include_top=False, weights=None, **extra
    )
    found = [_feature(encoder, name) for name in features]
    if style == "flat":
        inputs = encoder.input
    else:
        encoder = K.Model(encoder.input, found, name=f"{backbone.lower()}_encoder")
        inputs = layers.Input(input_shape, name="image")
        found = encoder(inputs)
    skips, x = list(found[:-1]), found[-1]
    for i, (skip, filters) in enumerate(zip(reversed(skips), decoder_filters, strict=False)):
        if upsample == "transpose":
            x = layers.Conv2DTranspose(filters, 2, strides=2, padding="same", name=f"up{i}")(x)
        else:
            method = "bilinear" if i % 2 else "nearest"
            x = layers.UpSampling2D(2, interpolation=method, name=f"up{i}")(x)
        x = layers.Concatenate(name=f"concat{i}")([x, skip])
        if conv == "separable":
            x = layers.SeparableConv2D(filters, 3, padding="same", name=f"conv{i}")(x)
            x = layers.BatchNormalization(name=f"bn{i}")(x)
            x = layers.PReLU(shared_axes=[1, 2], name=f"prelu{i}")(x)
        else:
            x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv{i}")(x)
            x = layers.BatchNormalization(name=f"bn{i}")(x)
            x = layers.Activation("relu", name=f"relu{i}")(x)
    x = layers.UpSampling2D(final_up, interpolation="bilinear", name="final_up")(x)
    x = layers.Conv2D(8, 3, padding="same", activation="relu", name="head")(x)
    activation = "sigmoid" if classes == 1 else "softmax"
    outputs = layers.Conv2D(classes, 1, activation=activation, name="mask")(x)
    return K.Model(inputs, outputs, name=f"unet_{backbone.lower()}_{style}")


def _feature(encoder: Any, name: str) -> Any:
    if not name:
        return encoder.output
    if name.endswith(":before"):  # a nested block's input tensor, in both Keras versions
        layer = encoder.get_layer(name.removesuffix(":before"))
        return encoder.layers[encoder.layers.index(layer) - 1].output
    return encoder.get_layer(name).output


def _positions(count: int) -> Any:
    """range(count) as each Keras writes it in a functional model (a constant)."""
    if BACKEND == "tfkeras":
        return tf.range(count)
    import keras

    return keras.ops.arange(count)


def vit_unet(
    input_shape: tuple[int, int, int],
    classes: int,
    patch: int,
    dim: int,
    depth: int,
    heads: int,
    mlp: int,
    cross: bool = False,
    causal: bool = False,
) -> Any:
    """A ViT-encoder U-Net written on keras.layers (UNETR's layout): patches embedded by a
    strided Conv2D, a position embedding added, `depth` pre-norm transformer blocks of
    MultiHeadAttention and a GELU MLP; the last block's tokens and two earlier ones reshaped
    to maps and upsampled by transposed convolutions, with a full-resolution skip from the
    image. `cross`: the decoder's quarter-resolution map attends to the encoder's tokens;
    `causal`: the first block's attention uses use_causal_mask."""
    L = K.layers
    assert patch == 8 and depth >= 3, "the decoder has three levels below 8x8 patches"
    grid = (input_shape[0] // patch, input_shape[1] // patch)
    count = grid[0] * grid[1]
    inputs = L.Input(input_shape, name="image")
    x = L.Conv2D(dim, patch, strides=patch, name="patchify")(inputs)
    tokens = L.Reshape((count, dim), name="to_tokens")(x)
    tokens = tokens + L.Embedding(count, dim, name="positions")(_positions(count))
    blocks = []
    for i in range(depth):
        y = L.LayerNormalization(epsilon=1e-6, name=f"block{i}_norm1")(tokens)
        attention = L.MultiHeadAttention(heads, dim // heads, name=f"block{i}_attention")
        y = attention(y, y, use_causal_mask=causal and i == 0)
        tokens = L.Add(name=f"block{i}_add1")([tokens, y])
        y = L.LayerNormalization(epsilon=1e-6, name=f"block{i}_norm2")(tokens)
        y = L.Dense(mlp, activation="gelu", name=f"block{i}_mlp1")(y)
        tokens = L.Add(name=f"block{i}_add2")([tokens, L.Dense(dim, name=f"block{i}_mlp2")(y)])
        blocks.append(tokens)
    maps = [L.Reshape((*grid, dim), name=f"map{i}")(b) for i, b in enumerate(blocks)]

    def up(x: Any, filters: int, name: str) -> Any:
        x = L.Conv2DTranspose(filters, 2, strides=2, name=f"{name}_deconv")(x)
        return L.Activation("relu", name=f"{name}_relu")(L.BatchNormalization(name=f"{name}_bn")(x))

    def conv(x: Any, filters: int, name: str) -> Any:
        x = L.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv")(x)
        return L.Activation("relu", name=f"{name}_relu")(L.BatchNormalization(name=f"{name}_bn")(x))

    x = up(maps[-1], 16, "dec1")
    x = conv(L.Concatenate(name="dec1_cat")([x, up(maps[-2], 16, "skip1")]), 16, "dec1_fuse")
    if cross:
        queries = L.Reshape((-1, 16), name="dec1_tokens")(x)
        attended = L.MultiHeadAttention(2, 8, output_shape=16, name="dec1_cross")(
            queries, blocks[-1]
        )
        x = L.Reshape((grid[0] * 2, grid[1] * 2, 16), name="dec1_map")(
            L.Add(name="dec1_cross_add")([queries, attended])
        )
    skip = up(up(maps[-3], 8, "skip2a"), 8, "skip2b")
    x = conv(L.Concatenate(name="dec2_cat")([up(x, 8, "dec2"), skip]), 8, "dec2_fuse")
    x = up(x, 8, "dec3")
    full = conv(conv(inputs, 8, "stem1"), 8, "stem2")
    x = conv(L.Concatenate(name="dec3_cat")([x, full]), 8, "dec3_fuse")
    activation = "sigmoid" if classes == 1 else "softmax"
    outputs = L.Conv2D(classes, 1, activation=activation, name="mask")(x)
    return K.Model(inputs, outputs, name="vit_unet")


def kuc_base_model(
    base: str, input_size: tuple[Any, ...], n_labels: int, output_activation: str, **kwargs: Any
) -> Any:
    """A keras-unet-collection base (keras_unet_collection.base) with the output head its own
    model function adds: for settings the model function does not pass on (swin_unet_2d
    always shifts its windows)."""
    from keras_unet_collection import base as kuc_base
    from keras_unet_collection.layer_utils import CONV_output

    inputs = K.layers.Input(input_size)
    x = getattr(kuc_base, base)(inputs, **kwargs)
    outputs = CONV_output(x, n_labels, kernel_size=1, activation=output_activation, name="output")
    return K.Model(inputs, outputs, name=base)


def build(spec: Spec, size: int | None = None) -> Any:
    kwargs = dict(spec.kwargs)
    if size is not None:
        kwargs[spec.size_key] = (size, size, 3)
    if spec.library == "segmentation_models":
        import segmentation_models as sm

        return getattr(sm, spec.builder)(**kwargs)
    if spec.library == "keras_unet":
        from keras_unet import models

        return getattr(models, spec.builder)(**kwargs)
    if spec.library == "keras_unet_collection":
        from keras_unet_collection import models

        if spec.builder.startswith("base."):
            return kuc_base_model(spec.builder.removeprefix("base."), **kwargs)
        return getattr(models, spec.builder)(**kwargs)
    if spec.library == "keras":
        return vit_unet(**kwargs)
    return unet_on_backbone(**kwargs)


def custom_objects() -> dict[str, Any]:
    """What Keras needs to load the libraries' files back (the reload check)."""
    found: dict[str, Any] = {}
    try:
        import efficientnet.model as em

        found.update(FixedDropout=em.get_dropout(), swish=em.get_swish())
    except ImportError:
        pass
    try:
        from classification_models.models import _common_blocks

        found["expand_dims"] = _common_blocks.expand_dims
    except ImportError:
        pass
    try:
        from keras_unet_collection import activations, transformer_layers

        found["GELU"] = activations.GELU
        found.update(
            {n: getattr(transformer_layers, n) for n in dir(transformer_layers) if n[0] != "_"}
        )
    except ImportError:
        pass
    return found


# ---- weights --------------------------------------------------------------------------------


def leaves(model: Any) -> list[Any]:
    found = []
    for layer in model.layers:
        if hasattr(layer, "layers") and hasattr(layer, "outputs"):
            found.extend(leaves(layer))
        else:
            found.append(layer)
    return found


def _rng(*keys: Any) -> np.random.Generator:
    return np.random.default_rng([SEED, zlib.crc32(repr(keys).encode())])


def randomize(model: Any) -> None:
    """Seeded random values for every weight, by (layer name, weight index)."""
    for layer in leaves(model):
        kind = type(layer).__name__
        weights = layer.get_weights()
        if not weights:
            continue
        new = []
        for index, w in enumerate(weights):
            rng = _rng(layer.name, index)
            if w.dtype.kind != "f":  # index tables (Swin's relative positions), counters
                new.append(w)
            elif kind == "BatchNormalization":
                new.append(_batchnorm_value(layer, index, w.shape, rng))
            elif kind == "PReLU":
                new.append(rng.uniform(0.05, 0.3, w.shape))
            elif kind == "Normalization":
                new.append(_normalization_value(index, w, rng))
            elif not layer.weights[index].trainable:  # computed, not learned: Swin's shift mask
                new.append(w)
            elif kind == "LayerNormalization" and index == 0 and layer.scale:
                new.append(rng.uniform(0.5, 1.5, w.shape))  # gamma
            elif w.ndim <= 1:
                new.append(rng.normal(0.0, 0.1, w.shape))
            else:
                new.append(rng.normal(0.0, 1.2 / np.sqrt(_fan_in(kind, index, w.shape)), w.shape))
        layer.set_weights([np.asarray(v, dtype=w.dtype) for v, w in zip(new, weights, strict=True)])
        if kind == "Normalization" and hasattr(layer, "finalize_state"):
            layer.finalize_state()


def _fan_in(kind: str, index: int, shape: tuple[int, ...]) -> int:
    if kind == "DepthwiseConv2D" or (kind == "SeparableConv2D" and index == 0):
        return shape[0] * shape[1]
    if kind == "Conv2DTranspose":
        return shape[0] * shape[1] * shape[3] // 4
    return int(np.prod(shape[:-1]))


def _batchnorm_value(layer: Any, index: int, shape: tuple[int, ...], rng: Any) -> np.ndarray:
    names = [w.name.split("/")[-1].split(":")[0] for w in layer.weights]
    name = names[index]
    if name == "gamma":
        return rng.uniform(0.5, 1.5, shape)
    if name == "moving_variance":
        return rng.uniform(0.5, 1.5, shape)
    return rng.normal(0.0, 0.2, shape)


def _normalization_value(index: int, w: np.ndarray, rng: Any) -> np.ndarray:
    if w.ndim == 0:
        return w  # count
    return rng.normal(0.45, 0.05, w.shape) if index == 0 else rng.uniform(0.04, 0.09, w.shape)


def calibrate_batchnorm(runners: list[tuple[Any, np.ndarray]]) -> int:
    """Moving statistics from what each BatchNormalization sees, then perturbed (seeded).

    `runners` are the network at each golden size (a twin with the same weights where the
    Keras model was built for one size) with a calibration batch: the statistics are averaged
    over the sizes, since a deep encoder sees different statistics at different sizes and
    statistics that fit one size let the activations at the other grow by orders of magnitude
    (and float32 noise with them). A variance floor (a tenth of the layer's mean variance)
    keeps a near-constant channel from amplifying rounding noise a thousandfold."""
    weights = runners[0][0].get_weights()
    for model, _ in runners:
        load_weights(model, weights)
    norms: list[Any] = []
    for step, (model, batch) in enumerate(runners):
        load_weights(model, weights)
        norms = [layer for layer in leaves(model) if type(layer).__name__ == "BatchNormalization"]
        if not norms:
            return 0
        drops = [layer for layer in leaves(model) if "Dropout" in type(layer).__name__]
        saved = [(layer, layer.momentum) for layer in norms]
        saved += [(layer, layer.rate) for layer in drops]
        for layer in drops:
            layer.rate = 0.0
        for layer in norms:
            layer.momentum = step / (step + 1)  # a running average over the sizes
        model(batch.astype(np.float32) / np.float32(255.0), training=True)
        for layer, value in saved:
            setattr(layer, "momentum" if layer in norms else "rate", value)
        weights = model.get_weights()
    for layer in norms:
        _perturb(layer)
    weights = runners[-1][0].get_weights()
    for model, _ in runners:
        load_weights(model, weights)
    return len(norms)


def load_weights(model: Any, weights: list[np.ndarray]) -> None:
    """set_weights, and what Keras does after loading a file: Normalization layers derive
    their mean and variance tensors from their weights (finalize_state)."""
    model.set_weights(weights)
    for layer in leaves(model):
        if type(layer).__name__ == "Normalization" and hasattr(layer, "finalize_state"):
            layer.finalize_state()


def _perturb(layer: Any) -> None:
    weights = layer.get_weights()
    names = [w.name.split("/")[-1].split(":")[0] for w in layer.weights]
    i, j = names.index("moving_mean"), names.index("moving_variance")
    rng = _rng(layer.name, "calibrate")
    variance = weights[j] + 0.1 * float(np.mean(weights[j]))
    weights[i] = weights[i] + 0.1 * np.sqrt(variance) * rng.normal(size=weights[i].shape)
    weights[j] = variance * rng.uniform(0.7, 1.4, variance.shape)
    layer.set_weights([np.asarray(w, np.float32) for w in weights])


def _saturated(prob: np.ndarray) -> float:
    top = prob.max(axis=-1) if prob.shape[-1] > 1 else np.maximum(prob, 1 - prob)[..., 0]
    return float(np.mean(top > 1 - 1e-4))


def _logit_spread(prob: np.ndarray) -> float:
    """The largest logit (centred) behind sigmoid or softmax outputs."""
    p = np.clip(prob.astype(np.float64), 1e-12, 1 - 1e-12)
    if p.shape[-1] == 1:
        return float(np.max(np.abs(np.log(p) - np.log1p(-p))))
    logs = np.log(p)
    return float(np.max(np.abs(logs - logs.mean(axis=-1, keepdims=True))))


def calibrate_output(runners: list[tuple[Any, np.ndarray]]) -> float:
    """Scale the last convolution so that no logit exceeds about 0.5 at any size: the
    output is neither saturated (which would hide any difference before it) nor steep.
    float32 rounding grows with depth: by the last layer of an InceptionV3 Linknet it is
    ~3e-4 of the activations (measured against ONNX Runtime; TensorFlow's own oneDNN and
    Eigen CPU kernels differ by 1.1e-4 in PROB on it with logits up to 2.3), and steep logits
    would carry that into PROB. With logits within +-0.5 the probabilities stay within
    0.38-0.62, still decided (more than 1e-4 from 0.5) on 99% of the pixels or more."""
    lasts = [
        next(
            layer
            for layer in reversed(leaves(model))
            if layer.get_weights() and layer.weights[0].shape.rank == 4
        )
        for model, _ in runners
    ]
    weights = lasts[0].get_weights()
    scale = 1.0
    for _ in range(8):
        spread = max(_logit_spread(predict(model, pixels)) for model, pixels in runners)
        if spread <= 0.6:
            break
        scale *= 0.5 / spread
        for last in lasts:
            last.set_weights([w * np.float32(scale) for w in weights])
    return scale


# ---- goldens --------------------------------------------------------------------------------


def images(size: int, which: int, batch: int = 2) -> np.ndarray:
    return _rng("images", size, which).integers(0, 256, (batch, size, size, 3), dtype=np.uint8)


def predict(model: Any, pixels: np.ndarray) -> np.ndarray:
    y = model(pixels.astype(np.float32) / np.float32(255.0), training=False)
    if isinstance(y, list | tuple):
        y = y[0]
    return np.asarray(y, dtype=np.float32)


def fixed_input(model: Any) -> bool:
    shape = model.input_shape
    return shape[1] is not None or shape[2] is not None


def at_other_size(spec: Spec, model: Any) -> Any:
    """The network at the other golden size: the model itself when it was built for any
    size, else the same network built for that size (the weights are copied in)."""
    return model if not fixed_input(model) else build(spec, spec.other)


def save_all(spec: Spec, model: Any, out: Path, formats: list[str], result: dict) -> None:
    for fmt in formats:
        ext = fmt.split(".", 1)[1]
        path = out / f"{spec.name}__{BACKEND}.{ext}"
        entry: dict[str, Any] = {"format": fmt, "file": path.name}
        try:
            model.save(path)
            entry["bytes"] = path.stat().st_size
        except Exception as e:
            entry["error"] = f"{type(e).__name__}: {e}"[:500]
            path.unlink(missing_ok=True)
        result["files"].append(entry)


def reload_check(spec: Spec, out: Path, result: dict, pixels: np.ndarray, prob: np.ndarray) -> None:
    for entry in result["files"]:
        if "error" in entry:
            continue
        path = out / entry["file"]
        kwargs: dict[str, Any] = {"compile": False}
        if path.suffix == ".keras":
            kwargs["safe_mode"] = False
        try:
            try:
                loaded = K.models.load_model(path, **kwargs)
            except Exception:
                loaded = K.models.load_model(path, custom_objects=custom_objects(), **kwargs)
            entry["reload_max_abs_diff"] = float(np.max(np.abs(predict(loaded, pixels) - prob)))
        except Exception as e:
            entry["reload_error"] = f"{type(e).__name__}: {e}"[:500]


def make(spec: Spec, out: Path, formats: list[str], check_reload: bool) -> dict[str, Any]:
    started = time.perf_counter()
    result: dict[str, Any] = {"name": spec.name, "backend": BACKEND, "files": []}
    tf.keras.utils.set_random_seed(SEED)
    tf.config.experimental.enable_op_determinism()
    try:
        model = build(spec)
    except Exception as e:
        result["build_error"] = f"{type(e).__name__}: {e}"[:500]
        result["traceback"] = traceback.format_exc()[-1500:]
        return result
    result["params"] = int(model.count_params())
    result["input_shape"] = list(model.input_shape)
    randomize(model)
    runners = [(model, images(spec.size, 99, 4))]
    if spec.other != spec.size:
        runners.append((at_other_size(spec, model), images(spec.other, 99, 4)))
    result["batchnorms"] = calibrate_batchnorm(runners)
    result["output_scale"] = calibrate_output(runners)
    first = images(spec.size, 0)
    second = images(spec.other, 1) if spec.other != spec.size else images(spec.size, 1)
    prob_0 = predict(model, first)
    prob_1 = predict(runners[-1][0], second)
    np.savez_compressed(
        out / f"{spec.name}__{BACKEND}.npz",
        image_0=first,
        prob_0=prob_0,
        image_1=second,
        prob_1=prob_1,
    )
    save_all(spec, model, out, formats, result)
    if check_reload:
        reload_check(spec, out, result, first, prob_0)
    result.update(saturated=_saturated(prob_0), seconds=round(time.perf_counter() - started, 1))
    result["versions"] = {
        "tensorflow": tf.__version__,
        "keras": K.__version__ if hasattr(K, "__version__") else "",
    }
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("tfkeras", "keras3"), required=True)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--names", help="comma-separated spec names (default: all)")
    parser.add_argument("--formats", help="comma-separated formats (default: each spec's)")
    parser.add_argument("--reload-check", action="store_true")
    parser.add_argument(
        "--cache", action="store_true", help="write into OUT/<name>-<key>/ (the test cache)"
    )
    parser.add_argument(
        "--committed",
        action="store_true",
        help="the committed specs in their committed formats, into models/ beside this file",
    )
    args = parser.parse_args()
    if args.committed:
        args.out = COMMITTED
        args.names = ",".join(s.name for s in SPECS if s.committed)
        args.formats = ",".join(COMMITTED_FORMATS)
    specs = [BY_NAME[n] for n in args.names.split(",")] if args.names else SPECS
    wanted = args.formats.split(",") if args.formats else None
    for spec in specs:
        formats = [
            f
            for f in spec.formats
            if f.startswith(args.backend) and (wanted is None or f in wanted)
        ]
        if not formats:
            continue
        out = args.out / f"{spec.name}-{spec.key()}" if args.cache else args.out
        out.mkdir(parents=True, exist_ok=True)
        try:
            result = make(spec, out, formats, args.reload_check)
        except Exception as e:
            result = {"name": spec.name, "backend": args.backend, "files": []}
            result["error"] = f"{type(e).__name__}: {e}"[:500]
        # written last: its presence says the folder is complete
        (out / f"{spec.name}__{args.backend}.json").write_text(json.dumps(result, indent=1))
        status = (
            result.get("build_error")
            or result.get("error")
            or ", ".join(f"{f['format']} {f.get('error', 'ok')}" for f in result["files"])
        )
        print(f"{spec.name} [{args.backend}]: {status} ({result.get('seconds', 0)} s)", flush=True)
        K.backend.clear_session()
    return 0


if __name__ == "__main__":
    sys.exit(main())

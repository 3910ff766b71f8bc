"""keras-unet-collection's patch layers against numpy versions of the library's own code
(tf.image.extract_patches, Dense + Embedding, the 2x2 merge, depth_to_space); the whole
TransUNet and Swin-UNet against Keras are in the zoo. A layer of the same class name with
another config is someone else's and is refused in one line."""

import numpy as np
import pytest

from tests.keras2onnx.layers.reference import (
    convert_layer,
    keras_layer,
    random,
    sequence,
    unsequence,
)
from unetkit.core import UserError
from unetkit.keras2onnx.layers.base import ShapeMismatch, rank_of, with_rank
from unetkit.keras2onnx.registry import make_op


def extract_patches(image: np.ndarray, p: int) -> np.ndarray:
    """(batch, H, W, C) -> (batch, (H//p) * (W//p), p * p * C), each patch row by row."""
    n, h, w, c = image.shape
    rows, cols = h // p, w // p
    out = np.zeros((n, rows * cols, p * p * c), image.dtype)
    for i in range(rows):
        for j in range(cols):
            out[:, i * cols + j] = image[:, i * p : (i + 1) * p, j * p : (j + 1) * p].reshape(n, -1)
    return out


@pytest.mark.parametrize(("size", "patch"), [((8, 8), 2), ((9, 10), 4), ((6, 6), 1)])
def test_patch_extract_cuts_patches_row_by_row(size, patch):
    """The library reads patch_size[0] for both sides; 'VALID' drops what does not fit."""
    x = random(2, 3, *size)
    layer = keras_layer("patch_extract", {"name": "p", "patch_size": [patch, patch + 1]})
    out = convert_layer(layer, [x])
    expected = extract_patches(x.transpose(0, 2, 3, 1), patch)
    np.testing.assert_array_equal(unsequence(out), expected)
    assert out.shape[2:] == (size[0] // patch, size[1] // patch)  # on the patch grid
    assert make_op(layer, "channels_last").stride == (patch, patch)


def test_patch_embedding_projects_and_adds_a_position_per_patch():
    patches = random(2, 6, 12)
    kernel, bias, table = random(12, 8), random(8), random(6, 8)
    names = ["pe/dense/kernel:0", "pe/dense/bias:0", "pe/embedding/embeddings:0"]
    layer = keras_layer(
        "patch_embedding",
        {"num_patch": 6, "embed_dim": 8},
        [kernel, bias, table],
        weight_names=names,
        name="pe",
    )
    out = convert_layer(layer, [sequence(patches, (2, 3))], ranks=[3], dynamic=False)
    np.testing.assert_allclose(unsequence(out), patches @ kernel + bias + table, atol=1e-5)
    op = make_op(layer, "channels_last")
    assert "one position embedding per patch" in op.pins_size([with_rank((12, 2, 3), 3)])
    with pytest.raises(ShapeMismatch, match="embeds 6 patches"):
        op.output_shape([with_rank((12, 3, 3), 3)])
    with pytest.raises(ShapeMismatch, match="embeds 6 patches"):
        op.output_shape([with_rank((12, 4, None), 3)])  # the size search: 6 % 4


def test_patch_merging_concatenates_2x2_neighbours_then_projects():
    tokens = random(2, 16, 3)  # a 4x4 grid
    kernel = random(12, 6)
    layer = keras_layer(
        "patch_merging",
        {"num_patch": [4, 4], "embed_dim": 3, "name": "m"},
        [kernel],
        weight_names=["m/down0_linear_trans/kernel:0"],
        name="m",
    )
    out = convert_layer(layer, [sequence(tokens, (16, 1))], ranks=[3], dynamic=False)
    grid = tokens.reshape(2, 4, 4, 3)
    merged = np.concatenate(
        [grid[:, 0::2, 0::2], grid[:, 1::2, 0::2], grid[:, 0::2, 1::2], grid[:, 1::2, 1::2]], -1
    )
    np.testing.assert_allclose(unsequence(out), merged.reshape(2, 4, 12) @ kernel, atol=1e-5)
    assert make_op(layer, "channels_last").stride == (2, 2)


def depth_to_space(x: np.ndarray, r: int) -> np.ndarray:
    """TensorFlow's NHWC depth_to_space: out[h*r + i, w*r + j, c] = in[h, w, (i*r + j)*C + c]."""
    n, h, w, depth = x.shape
    c = depth // (r * r)
    return x.reshape(n, h, w, r, r, c).transpose(0, 1, 3, 2, 4, 5).reshape(n, h * r, w * r, c)


@pytest.mark.parametrize(("rate", "vector"), [(2, True), (4, False)])
def test_patch_expanding_projects_then_moves_depth_to_space(rate, vector):
    tokens = random(2, 6, 8)  # a 2x3 grid
    kernel = random(1, 1, 8, 8 * rate)
    layer = keras_layer(
        "patch_expanding",
        {"num_patch": [2, 3], "embed_dim": 8, "upsample_rate": rate, "return_vector": vector},
        [kernel],
        weight_names=["e/up0_linear_trans1/kernel:0"],
        name="e",
    )
    out = convert_layer(layer, [sequence(tokens, (2, 3))], ranks=[3], dynamic=False)
    expected = depth_to_space((tokens @ kernel[0, 0]).reshape(2, 2, 3, 8 * rate), rate)
    np.testing.assert_allclose(out, expected.transpose(0, 3, 1, 2), atol=1e-5)
    shape = make_op(layer, "channels_last").output_shape([with_rank((8, 2, 3), 3)])
    assert rank_of(shape) == (3 if vector else 4)


@pytest.mark.parametrize(
    ("class_name", "config", "message"),
    [
        (
            "patch_extract",
            {"patch_size": [2, 2], "stride": 1},
            "has config fields patch_size, stride",
        ),
        ("patch_merging", {"num_patch": [4, 4]}, "has config fields num_patch, not those of"),
        ("patch_merging", {"num_patch": [3, 4], "embed_dim": 2}, r"num_patch=\(3, 4\) is not even"),
        (
            "patch_expanding",
            {"num_patch": [2, 2], "embed_dim": 8, "upsample_rate": 4, "return_vector": True},
            "supported with upsample_rate=2, or return_vector=False",
        ),
    ],
)
def test_a_config_the_library_does_not_write_is_refused_in_one_line(class_name, config, message):
    with pytest.raises(UserError, match=rf"layer 'x' \({class_name}\): .*{message}") as refused:
        make_op(keras_layer(class_name, {"name": "x", **config}, name="x"), "channels_last")
    assert "\n" not in str(refused.value)


def test_a_class_of_the_same_name_from_another_module_is_refused():
    layer = keras_layer("patch_extract", {"patch_size": [2, 2]}, name="x")
    layer.module = "my_project.layers"
    with pytest.raises(UserError, match=r"from module my_project\.layers.*register_layer"):
        make_op(layer, "channels_last")

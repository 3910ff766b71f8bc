"""Embedding: rows of the table by index, for (batch, L) and (batch, L, W) indices."""

import numpy as np
import pytest

from tests.keras2onnx.layers.reference import convert_layer, keras_layer, random, unsequence
from unetkit.core import UserError
from unetkit.keras2onnx.registry import make_op


def test_embedding_of_an_index_vector_is_a_sequence():
    table = random(10, 4)
    indices = np.array([[1, 9, 0], [3, 3, 7]], np.float32)  # Keras casts float indices
    layer = keras_layer("Embedding", {"input_dim": 10, "output_dim": 4}, [table])
    out = convert_layer(layer, [indices[:, :, None, None]], ranks=[2])
    np.testing.assert_array_equal(unsequence(out), table[indices.astype(int)])


def test_embedding_of_an_index_map_is_a_map():
    table = random(5, 3)
    indices = np.random.default_rng(0).integers(0, 5, (2, 6, 2)).astype(np.float32)
    layer = keras_layer("Embedding", {"input_dim": 5, "output_dim": 3}, [table])
    stored = np.ascontiguousarray(indices.transpose(0, 2, 1)).reshape(2, 2, 6, 1)  # (batch, L, W)
    out = convert_layer(layer, [stored], ranks=[3], dynamic=False)
    np.testing.assert_array_equal(out, table[indices.astype(int)].transpose(0, 3, 1, 2))


def test_mask_zero_is_refused():
    layer = keras_layer("Embedding", {"input_dim": 5, "output_dim": 3, "mask_zero": True})
    with pytest.raises(UserError, match=r"mask_zero=True .* \(supported: mask_zero=False\)"):
        make_op(layer, "channels_last")

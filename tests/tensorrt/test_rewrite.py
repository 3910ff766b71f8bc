"""The Resize -> UnetkitUpsampleNearest rewrite, checked with ONNX Runtime.

ONNX Runtime cannot run the TensorRT plugin, so the test lowers each plugin node back to
standard ops that implement its documented meaning without Resize (out[y, x] =
in[y // scale_h, x // scale_w] via Unsqueeze/Expand/Reshape) and compares the whole
graph with the original: any change to the rest of the graph, the wiring or the scale
attributes shows as a difference.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from tests.helpers.engine import lower_plugin_nodes, run, tiny_unet
from unetkit.core import UserError
from unetkit.tensorrt import PLUGIN_DOMAIN, PLUGIN_OP, rewrite_upsampling


@pytest.mark.parametrize("channels,shape", [(1, (1, 16, 16)), (3, (3, 24, 40))])
def test_rewrite_keeps_every_other_node_and_the_upsampling_meaning(channels, shape):
    model = tiny_unet(channels=channels)
    result = rewrite_upsampling(model)

    assert [(r.node, r.scale_h, r.scale_w) for r in result.replaced] == [("up1_resize", 2, 2)]
    ops = [n.op_type for n in result.model.graph.node]
    assert "Resize" not in ops and ops.count(PLUGIN_OP) == 1
    plugin = next(n for n in result.model.graph.node if n.op_type == PLUGIN_OP)
    assert plugin.domain == PLUGIN_DOMAIN and list(plugin.input) == ["r2"]
    assert {o.domain for o in result.model.opset_import} == {"", PLUGIN_DOMAIN}
    # scales and roi fed only the Resize: they are gone
    assert {"up_scales", "up_roi"}.isdisjoint(t.name for t in result.model.graph.initializer)
    onnx.checker.check_model(result.model)

    batch, h, w = shape
    image = np.random.default_rng(1).integers(0, 256, (batch, h, w, channels), dtype=np.uint8)
    expected = run(model, image)
    got = run(lower_plugin_nodes(result.model), image)
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])


def test_rewrite_leaves_the_input_model_untouched():
    model = tiny_unet()
    before = model.SerializeToString()
    rewrite_upsampling(model)
    assert model.SerializeToString() == before


def test_non_uniform_integer_scales_are_kept_per_axis():
    result = rewrite_upsampling(tiny_unet(scales=(1.0, 1.0, 2.0, 3.0)))
    assert [(r.scale_h, r.scale_w) for r in result.replaced] == [(2, 3)]


def test_linear_resize_stays_native():
    attrs = {"mode": "linear", "coordinate_transformation_mode": "asymmetric"}
    result = rewrite_upsampling(tiny_unet(resize_attrs=attrs))
    assert result.replaced == []
    assert result.kept_native == [("up1_resize", "mode=linear")]
    assert [n.op_type for n in result.model.graph.node].count("Resize") == 1
    assert {o.domain for o in result.model.opset_import} == {""}


@pytest.mark.parametrize(
    "attrs,scales,message",
    [
        (
            {
                "mode": "nearest",
                "coordinate_transformation_mode": "half_pixel",
                "nearest_mode": "floor",
            },
            (1.0, 1.0, 2.0, 2.0),
            "coordinate_transformation_mode=half_pixel",
        ),
        (
            {"mode": "nearest", "coordinate_transformation_mode": "tf_half_pixel_for_nn"},
            (1.0, 1.0, 2.0, 2.0),
            "tf_half_pixel_for_nn",
        ),
        (
            {"mode": "nearest", "coordinate_transformation_mode": "asymmetric"},
            (1.0, 1.0, 2.0, 2.0),
            "nearest_mode=round_prefer_floor",
        ),
        (None, (1.0, 1.0, 1.5, 1.5), "integer scales"),
        (None, (1.0, 2.0, 2.0, 2.0), "only H and W"),
    ],
)
def test_other_nearest_resizes_are_refused_with_the_reason(attrs, scales, message):
    with pytest.raises(UserError, match=message) as info:
        rewrite_upsampling(tiny_unet(resize_attrs=attrs, scales=scales))
    assert "\n" not in str(info.value)


def test_resize_by_sizes_is_refused():
    model = tiny_unet()
    node = next(n for n in model.graph.node if n.op_type == "Resize")
    model.graph.initializer.append(
        numpy_helper.from_array(np.array([1, 8, 16, 16], dtype=np.int64), "sizes")
    )
    node.input[2] = ""
    node.input.append("sizes")
    with pytest.raises(UserError, match="sizes, not scales"):
        rewrite_upsampling(model)


def test_rewrite_of_the_example_model(example_onnx):
    model = onnx.load(str(example_onnx))
    resizes = [n for n in model.graph.node if n.op_type == "Resize"]
    result = rewrite_upsampling(model)
    # every UpSampling2D of the example U-Net becomes the plugin, at 2x2
    assert len(result.replaced) == len(resizes) >= 1
    assert {(r.scale_h, r.scale_w) for r in result.replaced} == {(2, 2)}
    assert result.kept_native == []
    image = np.random.default_rng(2).integers(0, 256, (2, 32, 48, 1), dtype=np.uint8)
    expected = run(model, image)
    got = run(lower_plugin_nodes(result.model), image)
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])

"""Exported graphs against outputs that real Keras computed (golden/make_goldens.py)."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from tests.helpers import GOLDEN
from unetkit.core import (
    DEFAULT_THRESHOLD,
    INPUT_IMAGE,
    OUTPUT_MASK,
    OUTPUT_PROB,
    UserError,
    read_model_info,
)
from unetkit.keras2onnx import convert, export_onnx, write_onnx

MANIFEST: list[dict[str, Any]] = json.loads((GOLDEN / "manifest.json").read_text())["cases"]
# Models of a user's own layer class convert once a converter is registered (test_registry.py).
CASES = [c for c in MANIFEST if not c.get("needs_converter")]
TOLERANCE = 1e-4


def keras_mask(prob: np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
    if prob.shape[-1] == 1:
        return (prob[..., 0] > threshold).astype(np.uint8)
    return prob.argmax(axis=-1).astype(np.uint8)


def decided(prob: np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
    """Pixels whose MASK cannot flip within the tolerance (one class: far from threshold;
    several: the best class leads the runner-up by more than twice the tolerance)."""
    if prob.shape[-1] == 1:
        return np.abs(prob[..., 0] - threshold) > TOLERANCE
    top2 = np.sort(prob, axis=-1)[..., -2:]
    return top2[..., 1] - top2[..., 0] > 2 * TOLERANCE


def session(model: onnx.ModelProto) -> ort.InferenceSession:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def export_case(case: dict[str, Any], **options: Any) -> tuple[onnx.ModelProto, Any]:
    return export_onnx(
        GOLDEN / "models" / case["model"], mean=case["mean"], std=case["std"], **options
    )


def check_outputs(
    sess: ort.InferenceSession,
    image: np.ndarray,
    prob_keras: np.ndarray,
    decided_at_least: float = 0.99,
) -> None:
    prob, mask = sess.run([OUTPUT_PROB, OUTPUT_MASK], {INPUT_IMAGE: image})
    assert prob.dtype == np.float32 and mask.dtype == np.uint8
    assert prob.shape == prob_keras.shape
    assert mask.shape == prob_keras.shape[:3]
    assert np.max(np.abs(prob - prob_keras)) <= TOLERANCE
    expected = keras_mask(prob_keras)
    sure = decided(prob_keras)
    assert sure.mean() > decided_at_least  # the comparison below covers nearly every pixel
    np.testing.assert_array_equal(mask[sure], expected[sure])


@pytest.fixture(scope="module", params=CASES, ids=[c["name"] for c in CASES])
def dynamic_export(request: pytest.FixtureRequest) -> tuple[dict[str, Any], onnx.ModelProto, Any]:
    case = request.param
    model, info = export_case(case)
    return case, model, info


def test_golden_cases_cover_both_writers_and_formats() -> None:
    writers = {c["writer"].split()[0] for c in CASES}
    suffixes = {Path(c["model"]).suffix for c in CASES}
    assert writers == {"tf_keras", "keras3"}
    assert suffixes == {".h5", ".keras"}
    assert {c["writer"].split()[0] for c in CASES if c["model"].endswith(".h5")} == writers


def test_matches_keras_at_every_golden_size(dynamic_export: tuple) -> None:
    case, model, _ = dynamic_export
    onnx.checker.check_model(model, full_check=True)
    goldens = np.load(GOLDEN / "models" / case["goldens"])
    sess = session(model)
    for i in range(2):
        check_outputs(sess, goldens[f"image_{i}"], goldens[f"prob_{i}"])


def test_size_rule_matches_hand_derivation(dynamic_export: tuple) -> None:
    case, model, info = dynamic_export
    rule = case["size_rule"]
    assert (info.height.multiple, info.height.minimum) == (rule["multiple_h"], rule["min_height"])
    assert (info.width.multiple, info.width.minimum) == (rule["multiple_w"], rule["min_width"])
    assert info.classes == case["classes"]
    assert read_model_info(model) == info


def test_dynamic_export_leaves_batch_height_width_symbolic(dynamic_export: tuple) -> None:
    """...unless the network takes only the size it was built for: then it is pinned."""
    case, model, info = dynamic_export
    dims = model.graph.input[0].type.tensor_type.shape.dim
    spatial = case["keras_size"] if case.get("pinned") else ["H", "W"]
    assert [d.dim_param or d.dim_value for d in dims] == ["N", *spatial, info.channels]
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert info.fixed_size == (tuple(case["keras_size"]) if case.get("pinned") else None)


def test_a_network_that_takes_one_size_is_pinned_with_a_note() -> None:
    case = next(c for c in CASES if c["name"] == "tf_resize_tf")
    with convert(GOLDEN / "models" / case["model"]) as conversion:
        assert conversion.info.fixed_size == (12, 12)
        (note,) = conversion.notes
    assert "takes only 12x12 images" in note and "--input-size" in note
    assert "joins inputs of different height" in note  # why: what goes wrong at 13


def test_input_size_pins_any_model_at_a_size_it_takes() -> None:
    case = next(c for c in CASES if c["name"] == "zhixuhao_k3")
    goldens = np.load(GOLDEN / "models" / case["goldens"])
    model, info = export_case(case, input_size="32x32")
    assert info.fixed_size == (32, 32) and info.check_size(48, 48) is not None
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims[1:3]] == [32, 32]
    check_outputs(session(model), goldens["image_0"], goldens["prob_0"])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"input_size": "30x32"}, "--input-size 30x32: the network cannot run at that size: "),
        ({"input_size": "big"}, "--input-size 'big' is not HxW"),
        ({"input_size": "32x32", "fixed_shape": True}, "either --fixed-shape or --input-size"),
        ({"fixed_shape": True}, "was built for any size: pin one with --input-size HxW"),
    ],
)
def test_bad_size_options_say_what_to_do(options: dict, message: str) -> None:
    case = next(c for c in CASES if c["name"] == "zhixuhao_k3")
    with pytest.raises(UserError, match=re.escape(message)) as refused:
        export_case(case, **options)
    assert "\n" not in str(refused.value)


def test_a_dynamic_model_that_takes_one_size_asks_for_input_size() -> None:
    with pytest.raises(
        UserError, match=re.escape("pin one with --input-size HxW, e.g. --input-size 16x16")
    ):
        export_onnx(GOLDEN / "models" / "finite_dynamic_tf.h5")
    _, info = export_onnx(GOLDEN / "models" / "finite_dynamic_tf.h5", input_size="16x16")
    assert info.fixed_size == (16, 16)


@pytest.mark.parametrize("case", [c for c in CASES if c["keras_size"]], ids=lambda c: c["name"])
def test_fixed_shape_export_matches_keras(case: dict[str, Any]) -> None:
    model, info = export_case(case, fixed_shape=True)
    assert info.fixed_size == tuple(case["keras_size"])
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims[1:3]] == case["keras_size"]
    goldens = np.load(GOLDEN / "models" / case["goldens"])
    check_outputs(session(model), goldens["image_0"], goldens["prob_0"])
    assert info.check_size(*case["keras_size"]) is None
    assert "only" in info.check_size(case["keras_size"][0] + 1, case["keras_size"][1])


def test_threshold_moves_the_mask() -> None:
    case = next(c for c in CASES if c["name"] == "zhixuhao_tf")
    goldens = np.load(GOLDEN / "models" / case["goldens"])
    image, prob_keras = goldens["image_0"], goldens["prob_0"]
    threshold = float(np.median(prob_keras))
    model, info = export_case(case, threshold=threshold)
    assert info.threshold == threshold
    (mask,) = session(model).run([OUTPUT_MASK], {INPUT_IMAGE: image})
    sure = decided(prob_keras, threshold)
    np.testing.assert_array_equal(mask[sure], keras_mask(prob_keras, threshold)[sure])
    assert 0.3 < mask.mean() < 0.7


def test_wrong_normalization_changes_prob() -> None:
    """The mean/std of the goldens matter: exporting without them must not match Keras."""
    case = next(c for c in CASES if c["mean"])
    goldens = np.load(GOLDEN / "models" / case["goldens"])
    model, _ = export_onnx(GOLDEN / "models" / case["model"])
    (prob,) = session(model).run([OUTPUT_PROB], {INPUT_IMAGE: goldens["image_0"]})
    assert np.max(np.abs(prob - goldens["prob_0"])) > 1e-2


def test_opset_is_17_with_an_ir_version_tensorrt_reads() -> None:
    model, _ = export_case(CASES[0])
    assert [(o.domain, o.version) for o in model.opset_import] == [("", 17)]
    assert model.ir_version == 8


def test_nearest_upsampling_is_asymmetric_floor_resize() -> None:
    model, _ = export_case(next(c for c in CASES if c["name"] == "zhixuhao_tf"))
    resizes = [n for n in model.graph.node if n.op_type == "Resize"]
    assert len(resizes) == 4
    for node in resizes:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        assert attrs == {
            "mode": b"nearest",
            "coordinate_transformation_mode": b"asymmetric",
            "nearest_mode": b"floor",
        }


@pytest.mark.parametrize("name", ["zhixuhao_tf", "transpose_bn_k3"])
def test_streamed_file_matches_keras(name: str, tmp_path: Path) -> None:
    """write_onnx (the CLI's path: one tensor in memory at a time) gives the same model."""
    case = next(c for c in CASES if c["name"] == name)
    out = tmp_path / "model.onnx"
    info = write_onnx(GOLDEN / "models" / case["model"], out, mean=case["mean"], std=case["std"])
    model = onnx.load(str(out))
    onnx.checker.check_model(model, full_check=True)
    assert read_model_info(model) == info
    goldens = np.load(GOLDEN / "models" / case["goldens"])
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    for i in range(2):
        check_outputs(sess, goldens[f"image_{i}"], goldens[f"prob_{i}"])


def test_deflated_keras_zip_is_read_too(tmp_path: Path) -> None:
    """Keras stores its zip members uncompressed; a re-zipped (deflated) file still works."""
    case = next(c for c in CASES if c["name"] == "zhixuhao_k3")
    deflated = tmp_path / "deflated.keras"
    with (
        zipfile.ZipFile(GOLDEN / "models" / case["model"]) as src,
        zipfile.ZipFile(deflated, "w", zipfile.ZIP_DEFLATED) as dst,
    ):
        for item in src.namelist():
            dst.writestr(item, src.read(item))
    model, _ = export_onnx(deflated)
    goldens = np.load(GOLDEN / "models" / case["goldens"])
    check_outputs(session(model), goldens["image_1"], goldens["prob_1"])


@pytest.mark.parametrize(
    ("name", "geometry"),
    [("zhixuhao_tf", (0, 0, 0, 0)), ("valid_tf", (16, 16, 8, 8)), ("extras_tf", None)],
)
def test_output_geometry_is_derived_from_the_shape_arithmetic(name: str, geometry: tuple) -> None:
    """'same' U-Nets keep the grid; the 'valid' one loses 8 pixels per side (two 3x3 valid
    convolutions before its 4-pixel crop, two after); a model whose output is on another
    scale has none."""
    case = next(c for c in CASES if c["name"] == name)
    _, info = export_case(case)
    assert info.output_geometry == geometry
    goldens = np.load(GOLDEN / "models" / case["goldens"])
    if geometry is not None:
        image, prob = goldens["image_0"], goldens["prob_0"]
        assert prob.shape[1:3] == (image.shape[1] - geometry[0], image.shape[2] - geometry[1])

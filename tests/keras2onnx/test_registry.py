"""The layer registry: one converter per Keras class, never replaced; a user's own layer
class through the documented hook; the README's table generated from it."""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import onnxruntime as ort
import pytest

from tests.helpers import GOLDEN, REPO_ROOT
from unetkit.cli.supported_layers import with_table
from unetkit.core import INPUT_IMAGE, OUTPUT_PROB, UserError
from unetkit.keras2onnx import (
    Config,
    DuplicateRegistration,
    GraphBuilder,
    Op,
    Shape,
    export_onnx,
    register_layer,
    supported_layers,
)
from unetkit.keras2onnx import registry as registry_module

CUSTOM = [
    c
    for c in json.loads((GOLDEN / "manifest.json").read_text())["cases"]
    if c.get("needs_converter") == "ChannelScale"
]


@pytest.fixture
def channel_scale() -> Iterator[None]:
    """A converter for the golden models' ChannelScale layer, as a user would write it
    (docs/converter.md, "Your own layers"), removed again after the test."""

    @register_layer("ChannelScale")
    class ChannelScale(Op):
        """y = x * scale, one weight per channel."""

        def output_shape(self, shapes: list[Shape]) -> Shape:
            return self.single(shapes)

        def emit(self, g: GraphBuilder, inputs: list[str], shapes: list[Shape]) -> str:
            channels = shapes[0][0]
            (scale,) = Config(self.layer).weights([(channels,)])
            shaped = g.constant(f"{self.name}/scale", scale.load().reshape(1, channels, 1, 1))
            return g.node("Mul", [inputs[0], shaped], self.name)

    yield
    del registry_module._REGISTRY["ChannelScale"]


def test_a_second_converter_for_a_class_is_refused() -> None:
    with pytest.raises(DuplicateRegistration, match="'Conv2D' already has a converter"):

        @register_layer("Conv2D")
        class Mine(Op):
            pass

    assert registry_module._REGISTRY["Conv2D"].converter.__name__ == "Conv2D"


def test_an_unregistered_class_points_at_the_hook() -> None:
    with pytest.raises(UserError, match="ChannelScale is not supported: register a converter"):
        export_onnx(GOLDEN / "models" / CUSTOM[0]["model"])


@pytest.mark.parametrize("case", CUSTOM, ids=[c["name"] for c in CUSTOM])
def test_a_registered_converter_converts_the_users_layer(channel_scale: None, case: dict) -> None:
    assert "ChannelScale" in supported_layers()
    model, _ = export_onnx(GOLDEN / "models" / case["model"])
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    goldens = np.load(GOLDEN / "models" / case["goldens"])
    for i in (0, 1):
        (prob,) = session.run([OUTPUT_PROB], {INPUT_IMAGE: goldens[f"image_{i}"]})
        assert np.max(np.abs(prob - goldens[f"prob_{i}"])) <= 1e-4


def test_the_readme_lists_exactly_the_registered_layers() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    assert with_table(readme) == readme, "run `make readme-layers` and commit README.md"


USER_LAMBDA = [
    c
    for c in json.loads((GOLDEN / "manifest.json").read_text())["cases"]
    if c.get("needs_converter") == "Lambda:scale_shift"
]


@pytest.mark.parametrize("case", USER_LAMBDA, ids=[c["name"] for c in USER_LAMBDA])
def test_a_lambda_converts_once_a_converter_is_registered_for_that_layer(case: dict) -> None:
    """A Lambda's class says nothing about what it computes: the hook takes the layer's name."""
    path = GOLDEN / "models" / case["model"]
    with pytest.raises(UserError, match=r"register_layer\('Lambda:scale_shift'\)"):
        export_onnx(path)

    @register_layer("Lambda:scale_shift")
    class ScaleShift(Op):
        """The user's own `lambda t: t * 2.0 + 1.0`."""

        def output_shape(self, shapes: list[Shape]) -> Shape:
            return self.single(shapes)

        def emit(self, g: GraphBuilder, inputs: list[str], shapes: list[Shape]) -> str:
            two = g.constant(f"{self.name}/two", np.array(2.0, np.float32))
            one = g.constant(f"{self.name}/one", np.array(1.0, np.float32))
            return g.node("Add", [g.node("Mul", [inputs[0], two], self.name), one], self.name)

    try:
        assert "Lambda:scale_shift" not in supported_layers()  # a layer's, not a class's
        model, _ = export_onnx(path)
    finally:
        del registry_module._REGISTRY["Lambda:scale_shift"]
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    goldens = np.load(GOLDEN / "models" / case["goldens"])
    for i in (0, 1):
        (prob,) = session.run([OUTPUT_PROB], {INPUT_IMAGE: goldens[f"image_{i}"]})
        assert np.max(np.abs(prob - goldens[f"prob_{i}"])) <= 1e-4

"""client/ stands alone (a user copies the folder), so it carries its own copy of the size
rule (tiling.py), of the readers of the size rule, output geometry and threshold
(served_model.py) and of the default address (segment.py). These tests pin the copies to
the kit's own: the rule, and what the kit's config renderer publishes."""

from __future__ import annotations

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from tests.helpers.client import client_module
from unetkit.core import (
    DEFAULT_GRPC_URL,
    PARAM_MIN_HEIGHT,
    PARAM_MIN_WIDTH,
    PARAM_MULTIPLE_H,
    PARAM_MULTIPLE_W,
    PARAM_SIZE_MULTIPLE,
    ModelInfo,
    SizeRule,
    rules_from_parameters,
)
from unetkit.triton import EngineSpec, MemoryModel, render_cpu_config

CLIENT = client_module("segment")
MODEL = client_module("served_model")
TILING = client_module("tiling")
PARAMETERS = [
    {PARAM_SIZE_MULTIPLE: "16"},  # a config of the first release
    {
        PARAM_MULTIPLE_H: "16",
        PARAM_MIN_HEIGHT: "188",
        PARAM_MULTIPLE_W: "16",
        PARAM_MIN_WIDTH: "188",
    },
    {PARAM_MULTIPLE_H: "32", PARAM_MIN_HEIGHT: "32", PARAM_MULTIPLE_W: "8", PARAM_MIN_WIDTH: "9"},
    {PARAM_MULTIPLE_H: "1", PARAM_MIN_HEIGHT: "3", PARAM_MULTIPLE_W: "1", PARAM_MIN_WIDTH: "1"},
    {},
]


@pytest.mark.parametrize("parameters", PARAMETERS)
def test_the_client_reads_the_same_rules_from_the_config(parameters: dict[str, str]) -> None:
    ours = rules_from_parameters(parameters)
    theirs = MODEL.rules_from_parameters(parameters)
    assert [(r.multiple, r.minimum) for r in theirs] == [(r.multiple, r.minimum) for r in ours]


@pytest.mark.parametrize(("multiple", "minimum"), [(16, 16), (16, 188), (1, 3), (32, 31), (7, 2)])
def test_the_client_pads_to_the_same_next_valid_size(multiple: int, minimum: int) -> None:
    ours, theirs = SizeRule(multiple, minimum), TILING.SizeRule(multiple, minimum)
    for size in range(1, 400):
        assert theirs.next_valid(size) == ours.next_valid(size)
        assert ours.accepts(ours.next_valid(size))


def test_the_client_uses_the_kits_default_address() -> None:
    assert CLIENT.DEFAULT_URL == DEFAULT_GRPC_URL


def rendered_parameters(info: ModelInfo) -> dict[str, str]:
    """The parameters of the CPU config the kit renders for `info`, as the client reads
    them from the server (string values by key)."""
    config = text_format.Parse(
        render_cpu_config(info, MemoryModel(1, 1), EngineSpec("openvino", "int8")),
        model_config_pb2.ModelConfig(),
    )
    return {key: value.string_value for key, value in config.parameters.items()}


@pytest.mark.parametrize(
    ("geometry", "threshold"),
    [((0, 0, 0, 0), 0.5), ((184, 184, 92, 92), 0.25), ((16, 12, 8, 5), 0.123456789), (None, 0.7)],
)
def test_the_client_reads_the_geometry_and_threshold_the_kit_publishes(
    geometry: tuple[int, int, int, int] | None, threshold: float
) -> None:
    rule = SizeRule(16, 188 if geometry and geometry[0] else 16)
    info = ModelInfo(1, 1, rule, rule, None, geometry, threshold, (0.0,), (255.0,), "m")
    parameters = rendered_parameters(info)
    assert MODEL.geometry_from_parameters(parameters) == info.output_geometry
    assert MODEL.threshold_from_parameters(parameters) == info.threshold
    rules = MODEL.rules_from_parameters(parameters)
    assert [(r.multiple, r.minimum) for r in rules] == [(rule.multiple, rule.minimum)] * 2


def test_a_config_of_an_older_kit_has_neither() -> None:
    assert MODEL.geometry_from_parameters({PARAM_SIZE_MULTIPLE: "16"}) is None
    assert MODEL.threshold_from_parameters({PARAM_SIZE_MULTIPLE: "16"}) is None

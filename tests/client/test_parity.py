"""client/segment.py stands alone (a user copies it), so it carries its own copy of the
size rule and the default address. These tests pin the copy to the kit's own."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

import pytest

from tests.helpers import REPO_ROOT
from unetkit.core import (
    DEFAULT_GRPC_URL,
    PARAM_MIN_HEIGHT,
    PARAM_MIN_WIDTH,
    PARAM_MULTIPLE_H,
    PARAM_MULTIPLE_W,
    PARAM_SIZE_MULTIPLE,
    SizeRule,
    rules_from_parameters,
)


def load_client() -> ModuleType:
    spec = importlib.util.spec_from_file_location("segment", REPO_ROOT / "client" / "segment.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


CLIENT = load_client()
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
    theirs = CLIENT.rules_from_parameters(parameters)
    assert [(r.multiple, r.minimum) for r in theirs] == [(r.multiple, r.minimum) for r in ours]


@pytest.mark.parametrize(("multiple", "minimum"), [(16, 16), (16, 188), (1, 3), (32, 31), (7, 2)])
def test_the_client_pads_to_the_same_next_valid_size(multiple: int, minimum: int) -> None:
    ours, theirs = SizeRule(multiple, minimum), CLIENT.SizeRule(multiple, minimum)
    for size in range(1, 400):
        assert theirs.next_valid(size) == ours.next_valid(size)
        assert ours.accepts(ours.next_valid(size))


def test_the_client_uses_the_kits_default_address() -> None:
    assert CLIENT.DEFAULT_URL == DEFAULT_GRPC_URL

"""Each package's public surface is written twice, once for run time (lazy_exports: a module
loads when one of its names is first used) and once for editors and type checkers (the
imports under TYPE_CHECKING): the two must name the same things from the same modules."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

from tests.helpers import REPO_ROOT

PACKAGES = sorted(
    p.parent
    for p in (REPO_ROOT / "unetkit").glob("*/__init__.py")
    if "lazy_exports(" in p.read_text()
)


def surfaces(init: Path) -> tuple[dict[str, str], dict[str, str]]:
    """name -> module, as lazy_exports lists it and as the TYPE_CHECKING imports do."""
    tree = ast.parse(init.read_text())
    lazy: dict[str, str] = {}
    typed: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "lazy_exports":
            for module, names in ast.literal_eval(node.args[1]).items():
                lazy.update(dict.fromkeys(names, module))
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
            for statement in node.body:
                assert isinstance(statement, ast.ImportFrom)
                module = statement.module.removeprefix(f"unetkit.{init.parent.name}.")
                typed.update({alias.name: module for alias in statement.names})
    return lazy, typed


def test_every_package_of_the_kit_is_checked() -> None:
    names = {p.name for p in PACKAGES}
    assert {"core", "keras2onnx", "loadgen", "pipelines", "tensorrt", "triton"} <= names


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.name)
def test_the_typed_imports_name_what_loads_at_run_time(package: Path) -> None:
    lazy, typed = surfaces(package / "__init__.py")
    assert typed == lazy
    module = importlib.import_module(f"unetkit.{package.name}")
    assert sorted(module.__all__) == sorted(lazy)

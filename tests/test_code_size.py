"""The limits that keep the kit readable: no function longer than 80 lines and no module
longer than 500 in the code a user reads (unetkit/, client/, build/, loadtest/)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.helpers import REPO_ROOT

FOLDERS = ("unetkit", "client", "build", "loadtest")
MAX_FUNCTION_LINES = 80
MAX_MODULE_LINES = 500
SOURCES = sorted(p for folder in FOLDERS for p in (REPO_ROOT / folder).rglob("*.py"))


def test_every_folder_has_python_to_check() -> None:
    assert {p.relative_to(REPO_ROOT).parts[0] for p in SOURCES} == set(FOLDERS)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_modules_and_functions_stay_small(path: Path) -> None:
    text = path.read_text()
    lines = len(text.splitlines())
    assert lines <= MAX_MODULE_LINES, f"{lines} lines: split the module by job"
    long = [
        f"{node.name} (line {node.lineno}): {node.end_lineno - node.lineno + 1} lines"
        for node in ast.walk(ast.parse(text))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long, f"over {MAX_FUNCTION_LINES} lines: {'; '.join(long)}"

"""`make test-models` ends with a summary of every zoo model: out/zoo_report.md."""

from __future__ import annotations

import pytest

from tests.helpers import REPO_ROOT
from tests.keras2onnx.zoo import test_zoo


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if test_zoo.ALL:
        print("\n" + test_zoo.write_report(REPO_ROOT / "out" / "zoo_report.md"))

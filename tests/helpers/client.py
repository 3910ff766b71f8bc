"""The client's modules as the client itself imports them: client/ is a folder a user
copies, not a package, so segment.py imports its siblings (tiling, imagefiles) by name."""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

from tests.helpers import REPO_ROOT

CLIENT_DIR = REPO_ROOT / "client"


def client_module(name: str) -> ModuleType:
    if str(CLIENT_DIR) not in sys.path:
        sys.path.insert(0, str(CLIENT_DIR))
    return importlib.import_module(name)

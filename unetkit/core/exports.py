"""Package surfaces that import a module only when one of its names is first used.

Each subpackage of the kit lists its public names in its `__init__`; other packages import
those names from the package, never from its modules. Loading lazily keeps that surface
cheap: the Triton container (standard library only) can use the plan check without numpy,
and nothing imports Locust (which patches the standard library) by accident.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any


def lazy_exports(
    package: str, modules: dict[str, list[str]]
) -> tuple[list[str], Callable[[str], Any], Callable[[], list[str]]]:
    """`__all__`, `__getattr__` and `__dir__` for `package`, given its modules' public names."""
    owner = {name: module for module, names in modules.items() for name in names}
    if len(owner) != sum(len(names) for names in modules.values()):
        raise ValueError(f"{package}: a public name is listed under two modules")

    def __getattr__(name: str) -> Any:
        if name not in owner:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{owner[name]}"), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(owner)

    return sorted(owner), __getattr__, __dir__

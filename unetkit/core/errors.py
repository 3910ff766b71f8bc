"""One-line errors for every command-line tool of the kit."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any


class UserError(Exception):
    """A problem the user can fix: printed as one line, never as a traceback."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class _ShowTracebacks(argparse.Action):
    """`--debug`: run_cli shows the traceback behind an error instead of one line."""

    requested = False

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, **kwargs)

    def __call__(self, *args: object, **kwargs: object) -> None:
        _ShowTracebacks.requested = True


def add_debug_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--debug", action=_ShowTracebacks, help="show the traceback behind an error"
    )


def run_cli(main: Callable[[list[str]], int], argv: list[str] | None = None) -> None:
    """Run `main`, turning UserError into `error: ...` on stderr and its exit code."""
    _ShowTracebacks.requested = False
    try:
        code = main(sys.argv[1:] if argv is None else argv)
    except UserError as e:
        if _ShowTracebacks.requested:
            raise
        print(f"error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(code)

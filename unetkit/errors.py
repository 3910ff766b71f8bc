"""One-line errors for every command-line tool of the kit."""

import sys
from collections.abc import Callable


class UserError(Exception):
    """A problem the user can fix: printed as one line, never as a traceback."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def run_cli(main: Callable[[list[str]], int], argv: list[str] | None = None) -> None:
    """Run `main`, turning UserError into `error: ...` on stderr and its exit code.

    `--debug` anywhere on the command line shows the traceback instead.
    """
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    try:
        code = main([a for a in args if a != "--debug"])
    except UserError as e:
        if debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(code)

"""The project's one way a command reports what the user asked for and cannot work: a `UserInputError` is one line
on stderr and exit code 2, with no stack trace; any other exception is a bug and keeps its traceback."""

import sys
from collections.abc import Callable

from . import UserInputError


def run_command(run: Callable[[list[str] | None], object], prog: str, argv: list[str] | None = None) -> int:
    """Call `run(argv)` as the command `prog`; the exit code: 0, or 2 after a `UserInputError`."""
    try:
        run(argv)
    except UserInputError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    return 0

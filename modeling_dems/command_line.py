"""Running a command's body the project's way: a `UserInputError` is one line on stderr and exit code 2
(`report_user_error`), with no stack trace; any other exception is a bug and keeps its traceback."""

from collections.abc import Callable

from . import UserInputError, report_user_error


def run_command(run: Callable[[list[str] | None], object], program: str, argv: list[str] | None = None) -> int:
    """Call `run(argv)` as the command `program`; return its exit code: 0, or 2 after a `UserInputError`."""
    try:
        run(argv)
    except UserInputError as error:
        return report_user_error(program, error)
    return 0

"""How every command of the project (`train.py`, `push_to_hub.py`, `python -m modeling_dems.convert`, the benchmarks)
answers a mistake of its user: one line on stderr, `program: error: message`, as argparse words a usage error, and
exit code 2, with no stack trace. Any other exception is a bug and keeps its traceback.

It lives in the model package, the project's lowest layer, so that the converter's command line shares it while the
package imports nothing from the training code, which re-exports it.
"""

import sys
from collections.abc import Callable


# What argparse exits with on a usage error; every command of the project uses it for any user error.
USER_ERROR_EXIT_CODE = 2


class UserInputError(ValueError):
    """A problem with what the user asked for (a flag, a data set, a file): the commands print its message in one
    line and exit with code 2, without a stack trace."""


def report_user_error(program: str, error: BaseException) -> int:
    """Print `error` on stderr as one line, `program: error: message` (a message that spans lines, e.g. one from a
    library, is joined), and return the exit code for user errors."""
    print(f"{program}: error: {' '.join(str(error).split())}", file=sys.stderr)
    return USER_ERROR_EXIT_CODE


def run_command(
    run: Callable[[list[str] | None], object],
    program: str,
    argv: list[str] | None = None,
    other_errors: dict[type[Exception], int] | None = None,
) -> int:
    """Call `run(argv)` as the command `program`; return its exit code: 0, or 2 after a `UserInputError`.
    `other_errors` ({error type: exit code}) are errors that are not the user's yet need no traceback either (a
    failure of the Hub: the command line was fine); they are printed the same way with their own exit code."""
    try:
        run(argv)
    except UserInputError as error:
        return report_user_error(program, error)
    except tuple(other_errors or ()) as error:
        report_user_error(program, error)
        return next(code for kind, code in other_errors.items() if isinstance(error, kind))
    return 0

"""Training-side pieces of DEMS-ViT used by `train.py`: the recipe's defaults (recipe.py), data set loading, the
input pipeline with its augmentation schedule, the mixup/cutmix collator, the learning-rate schedule and the top-k
metric."""

import sys


# What argparse exits with on a usage error; every command of the project uses it for any user error.
USER_ERROR_EXIT_CODE = 2


class UserInputError(ValueError):
    """A problem with what the user asked for (a flag, a data set, a file): the commands (`train.py`,
    `python -m modeling_dems.convert`) print its message in one line and exit with code 2, without a stack trace."""


def report_user_error(program: str, error: BaseException) -> int:
    """Print `error` on stderr as one line, `program: error: message` as argparse words it (a message that spans
    lines, e.g. one from a library, is joined), and return the exit code for user errors."""
    print(f"{program}: error: {' '.join(str(error).split())}", file=sys.stderr)
    return USER_ERROR_EXIT_CODE

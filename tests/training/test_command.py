"""`run_command`: how a command reports a user error (one line on stderr, exit code 2) and lets a bug through."""

import pytest

from dems_training import UserInputError, run_command


def test_a_user_error_is_one_line_on_stderr_and_exit_code_2(capsys):
    def refuses(argv):
        raise UserInputError(f"--iters={argv[1]} must be at least 1.")

    assert run_command(refuses, "bench.py", ["--iters", "0"]) == 2
    captured = capsys.readouterr()
    assert captured.err == "bench.py: error: --iters=0 must be at least 1.\n" and captured.out == ""


def test_success_is_exit_code_0_and_the_arguments_are_passed_on():
    seen = []
    assert run_command(seen.append, "bench.py", ["--iters", "3"]) == 0
    assert run_command(seen.append, "bench.py") == 0
    assert seen == [["--iters", "3"], None]  # None: the command reads sys.argv itself


def test_a_bug_keeps_its_traceback():
    def crashes(argv):
        raise RuntimeError("a bug")

    with pytest.raises(RuntimeError, match="a bug"):
        run_command(crashes, "bench.py")

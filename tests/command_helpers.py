"""The project's convention for a command's user error, checked the same way for every command: one line on stderr,
`program: error: ...`, no traceback, the given exit code (2 for what the user asked, 1 for an outside failure)."""


def assert_one_line_error(program: str, code: int, err: str, *fragments: str, exit_code: int = 2) -> None:
    assert code == exit_code
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"{program}: error: ")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]

"""`raises_naming`: an error test that holds the error's type and the fragments a user needs from its message (the
option, the value, the file), in whatever sentence the code words them."""

from contextlib import contextmanager

import pytest


@contextmanager
def raises_naming(error_type: type[BaseException], *fragments: str):
    """`pytest.raises(error_type)` whose message must contain every one of `fragments`."""
    with pytest.raises(error_type) as caught:
        yield caught
    message = str(caught.value)
    missing = [fragment for fragment in fragments if fragment not in message]
    assert not missing, f"{missing} not in the message: {message}"

import pytest


@pytest.fixture(autouse=True)
def _one_torch_thread(single_torch_thread):
    """Every training test runs on one torch thread (the single_torch_thread fixture, tests/conftest.py)."""

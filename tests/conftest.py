import datasets
import pytest
import torch
from tiny_configs import make_tiny_config

from modeling_dems import DemsConfig


@pytest.fixture(autouse=True, scope="session")
def datasets_cache(tmp_path_factory):
    """In-process loads (image folders, split indices) cache under the session's tmp folder, not in ~/.cache."""
    default = datasets.config.HF_DATASETS_CACHE
    datasets.config.HF_DATASETS_CACHE = tmp_path_factory.mktemp("hf_datasets_cache")
    yield
    datasets.config.HF_DATASETS_CACHE = default


@pytest.fixture
def small_config() -> DemsConfig:
    """A fast config with every DEMS feature: 4 regions, two merges, 4 blocks, 3 classes (cat, dog, bird)."""
    return make_tiny_config("four_regions")


@pytest.fixture
def pixels() -> torch.Tensor:
    return torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))


@pytest.fixture
def single_torch_thread():
    """Train on one thread: the runs here are tiny, and on a shared machine two OpenMP threads spinning against
    other processes make them several times slower. Autouse in tests/training (its conftest.py); elsewhere ask for
    it with `pytest.mark.usefixtures("single_torch_thread")`."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def fresh_dynamo_one_thread():
    """For torch.compile tests: dynamo caches per code object, so a clean slate keeps the tests independent of their
    order; one thread, because these models are tiny and two OpenMP threads on a shared machine can take many times
    longer."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()
    torch.set_num_threads(threads)

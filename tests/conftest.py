import datasets
import pytest
import torch

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
    """A fast config with every DEMS feature: 4 regions, two merges, 4 blocks, 3 classes."""
    return DemsConfig(
        image_size=32,
        patch_size=2,
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=2,
        merge_layers=[2, 4],
        num_merged_tokens=[10, 3],
        mlp_ratios=[4.0, 2.0, 3.0],
        num_labels=3,
        id2label={0: "cat", 1: "dog", 2: "bird"},
        label2id={"cat": 0, "dog": 1, "bird": 2},
    )


@pytest.fixture
def pixels() -> torch.Tensor:
    return torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))

"""Shared pieces of the train.py tests: a tiny model and short runs, so that the whole set stays within minutes on
two CPU cores."""

import os
import subprocess
import sys

import pytest
import torch


REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TRAIN_SCRIPT = os.path.join(REPO, "train.py")

# One 16x16 region, 3 blocks, width 32. The first block sees every token before the two merges: merging at block 1
# would average raw patch embeddings (the merge starts near-uniform) and leave the class token nothing to learn from.
TINY_MODEL = (
    "image_size=16,hidden_size=32,num_hidden_layers=3,num_attention_heads=2,merge_layers=[2,3],"
    "num_merged_tokens=[16,8],mlp_ratios=[2,2,2]"
)

# Quiet, fast, deterministic Trainer settings shared by the runs.
QUIET = ["--disable_tqdm", "true", "--report_to", "none", "--dataloader_pin_memory", "false", "--seed", "0"]


@pytest.fixture(autouse=True)
def single_torch_thread():
    """Import this fixture into a test module to train on one thread: the runs here are tiny, and on a shared
    machine two OpenMP threads spinning against other processes make them several times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_run_args(output_dir: str, *extra: str) -> list[str]:
    return ["--output_dir", str(output_dir), "--config_overrides", TINY_MODEL, *QUIET, *extra]


def offline_env(tmp_path=None, **extra) -> dict:
    """Environment for a train.py subprocess: no network, its own caches, no GPU."""
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false", CUDA_VISIBLE_DEVICES="")
    env["OMP_NUM_THREADS"] = "1"  # see single_torch_thread
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("WORLD_SIZE", None)
    if tmp_path is not None:
        env["HF_HOME"] = str(tmp_path / "hf_home")
    env.update(extra)
    return env


def run_train_script(args: list[str], env: dict, timeout: float = 240, launcher: list[str] | None = None):
    command = (launcher or [sys.executable]) + [TRAIN_SCRIPT, *args]
    return subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout)

"""Shared pieces of the train.py tests: a tiny model and short runs, so that the whole set stays within minutes on
two CPU cores."""

import os
import subprocess
import sys

from tiny_configs import tiny_config_overrides


REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TRAIN_SCRIPT = os.path.join(REPO, "train.py")

# The runs' model: tiny_configs' "train_py" variant (one 16x16 region, 3 blocks, width 32).
TINY_MODEL = tiny_config_overrides("train_py")

# Quiet, fast, deterministic Trainer settings shared by the runs.
QUIET = ["--disable_tqdm", "true", "--report_to", "none", "--dataloader_pin_memory", "false", "--seed", "0"]


def tiny_run_args(output_dir: str, *extra: str) -> list[str]:
    return ["--output_dir", str(output_dir), "--config_overrides", TINY_MODEL, *QUIET, *extra]


def offline_env(tmp_path=None, **extra) -> dict:
    """Environment for a train.py subprocess: no network, its own caches, no GPU."""
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false", CUDA_VISIBLE_DEVICES="")
    env["OMP_NUM_THREADS"] = "1"  # see the single_torch_thread fixture (tests/conftest.py)
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("WORLD_SIZE", None)
    if tmp_path is not None:
        env["HF_HOME"] = str(tmp_path / "hf_home")
    env.update(extra)
    return env


def run_train_script(args: list[str], env: dict, timeout: float = 240, launcher: list[str] | None = None):
    command = (launcher or [sys.executable]) + [TRAIN_SCRIPT, *args]
    return subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout)

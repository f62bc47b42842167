"""train.py under torchrun with two CPU processes (gloo): it trains and evaluates, each rank knows the world size,
and the global batch is kept by halving the per-device batch."""

import json
import sys

import pytest
from train_helpers import offline_env, run_train_script, tiny_run_args


# Two train.py processes under torchrun.
pytestmark = pytest.mark.slow


def test_two_processes_train_and_evaluate_with_the_global_batch_kept(tmp_path):
    output_dir = tmp_path / "out"
    args = tiny_run_args(
        output_dir,
        "--dataset", "digits",
        "--max_train_samples", "128",
        "--max_eval_samples", "64",
        "--global_batch_size", "32",
        "--num_train_epochs", "1",
        "--save_strategy", "no",
        "--log_level", "info",
    )
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533"]
    result = run_train_script(args, offline_env(tmp_path, OMP_NUM_THREADS="1"), launcher=launcher, timeout=300)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]
    for rank in (0, 1):
        assert f"Process rank {rank} of world size 2" in log
    assert "global batch 32 = 16 per device x 2 process(es)" in log
    assert "Total train batch size (w. parallel, distributed & accumulation) = 32" in log
    assert "Num update steps per epoch = 4" in log  # 128 images / 32 per step
    with open(output_dir / "eval_results.json") as f:
        metrics = json.load(f)
    top1, top5 = metrics["eval_top1_accuracy"], metrics["eval_top5_accuracy"]
    assert 0.0 <= top1 <= top5 <= 1.0
    assert (output_dir / "model.safetensors").is_file()
    # Only the main process writes the model card.
    assert log.count("Held-out top-1 accuracy") == 1

"""Kill-and-resume: a run killed with SIGKILL in the middle of an epoch, right after a checkpoint, is picked up by
the same command from that checkpoint and finishes; a non-empty --output_dir without a checkpoint is refused."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from train_helpers import REPO, TRAIN_SCRIPT, offline_env, run_train_script, single_torch_thread, tiny_run_args  # noqa: F401  (autouse)

import train


STEPS_PER_EPOCH, EPOCHS, SAVE_STEPS = 12, 2, 5  # checkpoint-5 and -10 fall inside the first epoch


def resumable_args(output_dir):
    return tiny_run_args(
        output_dir,
        "--dataset", "digits",
        "--max_train_samples", str(8 * STEPS_PER_EPOCH),
        "--global_batch_size", "8",
        "--num_train_epochs", str(EPOCHS),
        "--save_strategy", "steps",
        "--save_steps", str(SAVE_STEPS),
        "--save_total_limit", "3",
        "--do_eval", "false",
        "--logging_steps", "1",
    )


def wait_for_checkpoint(output_dir, process, timeout=180):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if (output_dir / f"checkpoint-{SAVE_STEPS}" / "trainer_state.json").is_file():
            return
        if process.poll() is not None:
            pytest.fail(f"the run ended (code {process.returncode}) before writing checkpoint-{SAVE_STEPS}")
        time.sleep(0.05)
    pytest.fail(f"no checkpoint-{SAVE_STEPS} after {timeout} s")


def test_sigkill_mid_epoch_then_rerun_resumes_and_finishes(tmp_path):
    output_dir = tmp_path / "out"
    env = offline_env(tmp_path)
    process = subprocess.Popen(
        [sys.executable, TRAIN_SCRIPT, *resumable_args(output_dir)],
        env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_checkpoint(output_dir, process)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == -signal.SIGKILL
    assert not (output_dir / "model.safetensors").exists()  # it did not get to the end
    with open(output_dir / f"checkpoint-{SAVE_STEPS}" / "trainer_state.json") as f:
        assert json.load(f)["epoch"] < 1.0  # mid-epoch

    result = run_train_script(resumable_args(output_dir), env)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-3000:]
    resumed_from = sorted(int(n.split("-")[1]) for n in os.listdir(output_dir) if n.startswith("checkpoint-"))
    assert "Resuming from" in log and f"checkpoint-{SAVE_STEPS}" in log.split("Resuming from")[1][:500]
    with open(output_dir / "trainer_state.json") as f:
        state = json.load(f)
    assert state["global_step"] == STEPS_PER_EPOCH * EPOCHS and state["epoch"] == EPOCHS
    # The second run trained only the steps after the checkpoint: the loss log has each step once.
    logged_steps = [entry["step"] for entry in state["log_history"] if "loss" in entry]
    assert logged_steps == sorted(set(logged_steps)) and logged_steps[-1] == STEPS_PER_EPOCH * EPOCHS
    assert (output_dir / "model.safetensors").is_file() and resumed_from[-1] == STEPS_PER_EPOCH * EPOCHS


def test_non_empty_output_dir_without_checkpoint_is_refused(tmp_path, capsys):
    output_dir = tmp_path / "mine"
    output_dir.mkdir()
    (output_dir / "notes.txt").write_text("my own file")
    code = train.main(tiny_run_args(output_dir, "--max_steps", "1"))
    assert code == 2
    error = capsys.readouterr().err
    assert "--output_dir=" in error and "--overwrite_output_dir" in error
    assert (output_dir / "notes.txt").read_text() == "my own file"

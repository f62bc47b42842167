"""Kill-and-resume: a run killed with SIGKILL in the middle of an epoch, right after a checkpoint, is picked up by
the same command from that checkpoint and finishes; a newest checkpoint whose state files are torn is passed over
for the one before; a non-empty --output_dir without a checkpoint is refused."""

import json
import logging
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import save_file
from train_helpers import REPO, TRAIN_SCRIPT, offline_env, run_train_script, tiny_run_args
from transformers.trainer_callback import TrainerState

import train
from dems_training.outputs import checkpoint_problem, complete_checkpoints


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


def wait_for_checkpoint(output_dir, process, step=SAVE_STEPS, timeout=180):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if (output_dir / f"checkpoint-{step}" / "trainer_state.json").is_file():
            return
        if process.poll() is not None:
            pytest.fail(f"the run ended (code {process.returncode}) before writing checkpoint-{step}")
        time.sleep(0.05)
    pytest.fail(f"no checkpoint-{step} after {timeout} s")


def start_and_kill(output_dir, env, step=SAVE_STEPS):
    """Start the run and SIGKILL it as soon as checkpoint-`step` is written."""
    process = subprocess.Popen(
        [sys.executable, TRAIN_SCRIPT, *resumable_args(output_dir)],
        env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_checkpoint(output_dir, process, step)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == -signal.SIGKILL


@pytest.mark.slow
def test_sigkill_mid_epoch_then_rerun_resumes_and_finishes(tmp_path):
    output_dir = tmp_path / "out"
    env = offline_env(tmp_path)
    start_and_kill(output_dir, env)
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


def tear(path, keep: float = 0.5) -> None:
    """What a kill mid-write or a power loss leaves: the file cut short (empty for keep=0)."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


@pytest.mark.slow
def test_sigkill_then_torn_newest_checkpoint_falls_back_to_the_one_before(tmp_path):
    output_dir = tmp_path / "out"
    env = offline_env(tmp_path)
    start_and_kill(output_dir, env, step=2 * SAVE_STEPS)
    checkpoints = complete_checkpoints(output_dir)
    assert len(checkpoints) >= 2
    newest, previous = checkpoints[-1], checkpoints[-2]
    tear(output_dir / newest / "trainer_state.json")
    tear(output_dir / newest / "rng_state.pth", keep=0)
    tear(output_dir / newest / "optimizer.pt")

    result = run_train_script(resumable_args(output_dir), env)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-3000:]  # not a JSONDecodeError at every rerun
    warning = log.split(f"{newest} is incomplete and cannot be resumed (")[1].splitlines()[0]
    for name in ("optimizer.pt", "rng_state.pth", "trainer_state.json"):
        assert f"{name} does not parse" in warning
    assert "Resuming from" in log and previous in log.split("Resuming from")[1][:500]
    with open(output_dir / "trainer_state.json") as f:
        state = json.load(f)
    assert state["global_step"] == STEPS_PER_EPOCH * EPOCHS and state["epoch"] == EPOCHS
    # the steps after the previous checkpoint were trained again, each logged once
    logged_steps = [entry["step"] for entry in state["log_history"] if "loss" in entry]
    assert logged_steps == list(range(1, STEPS_PER_EPOCH * EPOCHS + 1))
    assert all(checkpoint_problem(path) is None for path in complete_checkpoints(output_dir))


def fake_checkpoint(folder) -> str:
    """A checkpoint folder with the files Trainer writes, each small but of the real format."""
    folder.mkdir(parents=True)
    save_file({"weight": torch.zeros(4)}, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({"model_type": "dems"}))
    for name in ("optimizer.pt", "scheduler.pt", "rng_state.pth", "training_args.bin"):
        torch.save({"state": torch.zeros(4)}, folder / name)
    TrainerState(global_step=int(folder.name.split("-")[1])).save_to_json(str(folder / "trainer_state.json"))
    return str(folder)


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (lambda f: tear(f / "trainer_state.json", keep=0), r"trainer_state.json does not parse \(JSONDecodeError"),
        (lambda f: tear(f / "trainer_state.json"), r"trainer_state.json does not parse \(JSONDecodeError"),
        (lambda f: (f / "trainer_state.json").write_text('{"epochs": 1}'), r"trainer_state.json .*\(TypeError"),
        (lambda f: tear(f / "optimizer.pt"), r"optimizer.pt does not parse \(BadZipFile"),
        (lambda f: tear(f / "rng_state.pth", keep=0), r"rng_state.pth does not parse \(BadZipFile"),
        (lambda f: tear(f / "model.safetensors", keep=0.9), r"model.safetensors does not parse \(SafetensorError"),
        (lambda f: tear(f / "config.json"), r"config.json does not parse \(JSONDecodeError"),
        (lambda f: (f / "model.safetensors").unlink(), r"no model weights"),
        (lambda f: (f / "trainer_state.json").unlink(), r"no trainer_state.json: a run stopped while saving it"),
    ],
)
def test_a_checkpoint_counts_as_complete_only_if_its_state_files_parse(tmp_path, damage, problem):
    folder = tmp_path / "checkpoint-3"
    assert checkpoint_problem(fake_checkpoint(folder)) is None
    damage(folder)
    assert re.search(problem, checkpoint_problem(str(folder)))


def test_the_newest_complete_checkpoint_is_chosen_and_each_torn_one_named(tmp_path, caplog):
    for step in (5, 10, 15):
        fake_checkpoint(tmp_path / f"checkpoint-{step}")
    tear(tmp_path / "checkpoint-15" / "trainer_state.json", keep=0)
    (tmp_path / "checkpoint-10" / "trainer_state.json").unlink()
    with caplog.at_level(logging.WARNING, logger="dems_training"):
        assert complete_checkpoints(str(tmp_path)) == [str(tmp_path / "checkpoint-5")]
    assert f"{tmp_path / 'checkpoint-15'} is incomplete and cannot be resumed (trainer_state.json does" in caplog.text
    assert f"{tmp_path / 'checkpoint-10'} is incomplete and cannot be resumed (no trainer_state.json" in caplog.text

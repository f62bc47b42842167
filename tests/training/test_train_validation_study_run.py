"""What the data-efficiency study asks of a train.py run: a validation set set aside from the train split (fixed,
outside every train subset), the held-out split evaluated once as the test set, augmentation draws that depend on
(seed, epoch, image) only, so that a DEMS run and a ViT run of one seed see the same batches, and a run killed
mid-way that resumes to the very same weights and test top-1 as an uninterrupted one."""

import hashlib
import json
import random
import signal
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file
from train_helpers import REPO, TRAIN_SCRIPT, offline_env, run_train_script, tiny_run_args

import train
from dems_training import UserInputError
from dems_training.data.digits import load_digits_dataset
from dems_training.data.loading import label_array
from dems_training.data.subsets import balanced_subset, split_off_validation
from dems_training.data.torch_data import TransformedImageDataset
from dems_training.trainer import DemsTrainer


def test_validation_is_fixed_balanced_and_outside_every_train_subset():
    train_split = load_digits_dataset()["train"]
    rest, validation = split_off_validation(train_split, "label", 12, seed=1234)
    assert len(validation) == 120 and len(rest) == len(train_split) - 120
    counts = torch.bincount(torch.as_tensor(label_array(validation, "label")), minlength=10)
    assert counts.tolist() == [12] * 10
    # the same seed gives the same images, whatever else happened in between
    random.seed(99)
    torch.manual_seed(99)
    _, again = split_off_validation(train_split, "label", 12, seed=1234)
    pictures = [image.tobytes() for image in validation["image"]]
    assert [image.tobytes() for image in again["image"]] == pictures
    for seed in (0, 1, 2):  # train subsets of any seed, drawn from the rest, never hold a validation image
        subset = balanced_subset(rest, "label", 20, seed)
        assert not {image.tobytes() for image in subset["image"]} & set(pictures)


def test_too_large_a_validation_set_is_refused_naming_the_flag():
    train_split = load_digits_dataset()["train"]
    with pytest.raises(UserInputError, match="--validation_samples_per_class=1000"):
        split_off_validation(train_split, "label", 1000, seed=0)


def draw(image) -> tuple:
    """A transform whose output is its random draws: what the augmentation would draw for the image."""
    return (random.random(), random.random(), image)


def test_seeded_images_draw_the_same_whatever_ran_before():
    rows = load_digits_dataset()["test"].select(range(6))
    seeded = TransformedImageDataset(rows, "image", "label", draw, seed=3)
    first = [seeded[i]["pixel_values"][:2] for i in range(6)]
    random.random()  # a model, a mixer or another worker using the generator in between
    assert [item["pixel_values"][:2] for item in seeded.__getitems__([5, 0, 3])] == [first[5], first[0], first[3]]
    seeded.set_epoch(1)
    assert seeded[0]["pixel_values"][:2] != first[0]  # a new epoch, new draws
    other_seed = TransformedImageDataset(rows, "image", "label", draw, seed=4)
    assert other_seed[0]["pixel_values"][:2] != first[0]
    plain = TransformedImageDataset(rows, "image", "label", draw)
    random.seed(0)
    a = plain[0]["pixel_values"][:2]
    assert plain[0]["pixel_values"][:2] != a  # unseeded: the global stream moves on


STUDY_LIKE = (
    "--dataset", "digits", "--train_samples_per_class", "12", "--validation_samples_per_class", "10",
    "--seeded_augmentation", "true", "--global_batch_size", "8", "--lr_scheduler_type", "cosine_with_min_lr",
    "--warmup_steps", "0.1", "--attention_probs_dropout_prob", "0.05",  # dropout on: the model's own draws differ
    "--augmentation_p0", "0.6", "--crop_scale_min", "0.5", "--hflip_prob", "0.5",
)


@pytest.mark.slow
def test_dems_and_vit_of_one_seed_train_on_the_same_batches(tmp_path, monkeypatch):
    seen: dict[str, list[str]] = {}
    original = DemsTrainer.training_step

    def recording_step(self, model, inputs, num_items_in_batch=None):
        batch = hashlib.sha256(inputs["pixel_values"].numpy().tobytes() + inputs["labels"].numpy().tobytes())
        seen.setdefault(type(model).__name__, []).append(batch.hexdigest())
        return original(self, model, inputs, num_items_in_batch)

    monkeypatch.setattr(DemsTrainer, "training_step", recording_step)
    for architecture in ("dems", "vit"):
        args = tiny_run_args(tmp_path / architecture, *STUDY_LIKE, "--num_train_epochs", "2", "--architecture",
                             architecture, "--eval_strategy", "no", "--save_strategy", "no", "--do_eval", "false")
        assert train.main(args) == 0
    assert set(seen) == {"DemsForImageClassification", "ViTForImageClassification"}
    dems, vit = seen["DemsForImageClassification"], seen["ViTForImageClassification"]
    assert len(dems) == 2 * 15 and dems == vit  # 120 images, batch 8, two epochs
    assert len(set(dems)) == len(dems)


@pytest.mark.slow
def test_validation_during_training_and_the_test_split_once_at_the_end(tmp_path):
    output_dir = tmp_path / "run"
    args = tiny_run_args(output_dir, *STUDY_LIKE, "--num_train_epochs", "2", "--eval_strategy", "steps",
                         "--eval_steps", "0.5", "--save_strategy", "no")
    assert train.main(args) == 0
    results = json.loads((output_dir / "all_results.json").read_text())
    assert 0 <= results["eval_top1_accuracy"] <= 1 and 0 <= results["test_top1_accuracy"] <= 1
    state = json.loads((output_dir / "trainer_state.json").read_text())
    evaluations = [entry for entry in state["log_history"] if "eval_top1_accuracy" in entry]
    tests = [entry for entry in state["log_history"] if "test_top1_accuracy" in entry]
    assert [entry["step"] for entry in evaluations] == [15, 30]  # on the validation set, at half and at the end
    assert tests == []  # the test split is not looked at during training...
    assert json.loads((output_dir / "test_results.json").read_text())["test_top1_accuracy"] == results[
        "test_top1_accuracy"]  # ...only once, after it
    # the validation set holds 100 images (10 per class); the test split is digits' 360
    assert results["eval_samples_per_second"] > 0
    assert round(results["eval_runtime"] * results["eval_samples_per_second"]) == 100
    assert round(results["test_runtime"] * results["test_samples_per_second"]) == 360


RESUMABLE = (*STUDY_LIKE, "--num_train_epochs", "3", "--eval_strategy", "steps", "--eval_steps", "0.3",
             "--save_strategy", "steps", "--save_steps", "0.3", "--save_total_limit", "2", "--logging_steps", "1")


@pytest.mark.slow
@pytest.mark.parametrize("architecture", ["dems", "vit"])  # the study's two kinds of model
def test_a_killed_run_resumes_to_the_same_weights_and_test_top1(tmp_path, architecture):
    env = offline_env(tmp_path)
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    run_args = (*RESUMABLE, "--architecture", architecture)
    result = run_train_script(tiny_run_args(whole, *run_args), env)
    assert result.returncode == 0, result.stderr[-3000:]

    process = subprocess.Popen([sys.executable, TRAIN_SCRIPT, *tiny_run_args(killed, *run_args)], env=env, cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        checkpoint = killed / "checkpoint-14" / "trainer_state.json"  # 45 steps, a checkpoint every 14
        while not checkpoint.is_file():
            assert process.poll() is None, "the run ended before its first checkpoint"
            subprocess.run(["sleep", "0.05"])
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert not (killed / "model.safetensors").exists()
    assert json.loads(checkpoint.read_text())["epoch"] < 1  # mid-epoch: 14 of 15 steps

    result = run_train_script(tiny_run_args(killed, *run_args), env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Resuming from" in result.stdout + result.stderr
    a, b = (json.loads((folder / "all_results.json").read_text()) for folder in (whole, killed))
    assert a["test_top1_accuracy"] == b["test_top1_accuracy"] and a["eval_top1_accuracy"] == b["eval_top1_accuracy"]
    weights_a, weights_b = (load_file(str(folder / "model.safetensors")) for folder in (whole, killed))
    assert weights_a.keys() == weights_b.keys()
    assert all(torch.equal(weights_a[name], weights_b[name]) for name in weights_a)
    curve_a, curve_b = ([(e["step"], e["eval_top1_accuracy"]) for e in json.loads(
        (folder / "trainer_state.json").read_text())["log_history"] if "eval_top1_accuracy" in e]
        for folder in (whole, killed))
    assert curve_a == curve_b

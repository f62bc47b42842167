"""End-to-end train.py runs on CPU: a short pretrain whose loss falls and whose held-out accuracy beats chance, the
files it leaves (loadable by `pipeline`), and a finetune from its checkpoint."""

import json
import os

import numpy as np
import pytest
from PIL import Image
from train_helpers import tiny_run_args
from train_synthetic import CLASSES, make_synthetic_folder, synthetic_image
from transformers import pipeline

import modeling_dems  # noqa: F401  (registers DEMS with the Auto classes, for pipeline)
import train
from dems_training.outputs import CURVES_FILE, EXPLANATIONS_FILE, SUMMARY_FILE


# A whole pretrain run of the reference recipe, shared by the module's tests.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """One short pretrain run (the reference recipe with its augmentation schedule and mixup/cutmix), shared."""
    root = tmp_path_factory.mktemp("pretrain")
    data = make_synthetic_folder(root / "synthetic")
    output_dir = root / "run"
    args = tiny_run_args(
        output_dir,
        "--train_dir", data,
        "--stage", "pretrain",
        "--model_preset", "tiny-32",
        "--num_train_epochs", "6",
        "--global_batch_size", "16",
        "--learning_rate", "2e-3",
        "--warmup_epochs", "1",
        "--logging_steps", "2",
    )
    results = train.run(args)
    return output_dir, data, results


def test_pretrain_loss_falls_and_accuracy_beats_chance(pretrained):
    output_dir, _, results = pretrained
    with open(output_dir / "trainer_state.json") as f:
        history = json.load(f)["log_history"]
    losses = [entry["loss"] for entry in history if "loss" in entry]
    assert len(losses) >= 8
    first, last = np.mean(losses[:3]), np.mean(losses[-3:])
    assert last < first - 0.1, losses
    chance = 1 / len(CLASSES)
    assert results["eval_top1_accuracy"] >= chance + 0.3, results
    assert results["eval_top5_accuracy"] == 1.0  # 2 classes: the top 5 hold them all


def test_pretrain_leaves_what_transformers_users_expect(pretrained):
    output_dir, _, results = pretrained
    for name in ("config.json", "model.safetensors", "preprocessor_config.json", "README.md",
                 "train_results.json", "eval_results.json", "all_results.json", SUMMARY_FILE, CURVES_FILE,
                 EXPLANATIONS_FILE, "modeling_dems.py", "configuration_dems.py", "image_processing_dems.py"):
        assert (output_dir / name).is_file(), name
    with open(output_dir / SUMMARY_FILE) as f:
        summary = json.load(f)
    assert [row["epoch"] for row in summary["history"]] == [1, 2, 3, 4, 5, 6]
    assert summary["base_model"] is None and summary["base_model_license"] is None  # from scratch
    # The summary travels to the Hub with the model: the image folder is named, its path on this machine is not.
    assert summary["dataset"]["name"] == "image folder synthetic"
    assert str(output_dir.parent) not in (output_dir / SUMMARY_FILE).read_text()
    # The final evaluation sees the last epoch's weights and the same images.
    assert summary["history"][-1]["eval_top1_accuracy"] == results["eval_top1_accuracy"]
    with open(output_dir / "config.json") as f:
        config = json.load(f)
    assert config["id2label"] == {"0": "bright", "1": "dark"}
    assert config["problem_type"] == "single_label_classification"
    assert config["drop_path_rate"] == 0.15 and config["attention_probs_dropout_prob"] == 0.05  # pretrain stage
    card = (output_dir / "README.md").read_text()
    assert "| stage | pretrain |" in card and "Top-1 accuracy" in card  # the recipe and the results
    assert "## Training history" in card and f"]({CURVES_FILE})" in card
    # A few held-out images explained, beside the card and shown in it; one row per image, a picture that decodes.
    assert summary["explanations"] == EXPLANATIONS_FILE and f"]({EXPLANATIONS_FILE})" in card
    with Image.open(output_dir / EXPLANATIONS_FILE) as picture:
        picture.load()
        assert picture.format == "PNG" and picture.height > 4 * 200  # four images (both classes first), a row each
    assert any(name.startswith("checkpoint-") for name in os.listdir(output_dir))


def test_pipeline_loads_the_output_dir(pretrained):
    output_dir, _, _ = pretrained
    classifier = pipeline("image-classification", model=str(output_dir), device="cpu")
    image = Image.fromarray(synthetic_image("dark", 32, np.random.default_rng(5)))
    predictions = classifier(image, top_k=2)
    assert sorted(p["label"] for p in predictions) == sorted(CLASSES)
    assert abs(sum(p["score"] for p in predictions) - 1.0) < 1e-4


def test_finetune_from_the_pretrain_checkpoint(pretrained, tmp_path):
    pretrain_dir, data, pretrain_results = pretrained
    output_dir = tmp_path / "finetune"
    results = train.run(
        tiny_run_args(
            output_dir,
            "--train_dir", data,
            "--stage", "finetune",
            "--model_name_or_path", str(pretrain_dir),
            "--num_train_epochs", "2",
            "--global_batch_size", "16",
            "--learning_rate", "5e-4",
        )
    )
    with open(output_dir / "config.json") as f:
        config = json.load(f)
    assert config["drop_path_rate"] == 0.2 and config["attention_probs_dropout_prob"] == 0.0  # finetune stage
    assert config["hidden_size"] == 32  # the pretrain run's architecture, not a preset's
    # Started from the pretrained weights: already far above chance, not back at 1/3.
    assert results["eval_top1_accuracy"] >= 1 / len(CLASSES) + 0.3, (results, pretrain_results)
    # The weights keep the license that the pretrain folder's card gives its own.
    summary = json.loads((output_dir / SUMMARY_FILE).read_text())
    assert summary["base_model_license"] == "apache-2.0"

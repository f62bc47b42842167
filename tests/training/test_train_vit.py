"""`train.py --architecture vit`: transformers' ViT matched to the DEMS config, its parameter count by hand, the
soft-target loss it trains on, a short run that reloads through `pipeline`; and the other study flags
(class-balanced subsets, the augmentation schedule without decay)."""

import json
import math

import numpy as np
import pytest
import torch
from datasets import ClassLabel, Dataset
from fragments import raises_naming
from PIL import Image
from tiny_configs import make_tiny_config
from train_helpers import tiny_run_args
from transformers import TrainingArguments, ViTForImageClassification, pipeline

import modeling_dems  # noqa: F401  (registers DEMS with the Auto classes, for pipeline)
import train
from dems_training import UserInputError
from dems_training.augmentation.schedule import AugmentationSchedule
from dems_training.data.subsets import balanced_subset
from dems_training.modeling import vit_config_matching
from dems_training.outputs import SUMMARY_FILE
from dems_training.trainer import DemsTrainer
from modeling_dems import DemsConfig
from modeling_dems.modeling_dems import soft_target_cross_entropy


def tiny_dems_config(**overrides) -> DemsConfig:
    """What train.py builds for digits with tiny_run_args' model (the "train_py" tiny config): 16x16 input, patch 2,
    width 32, 3 blocks, MLP ratio 2, 10 classes."""
    return make_tiny_config("train_py", labels=10, **overrides)


# Parameters of that ViT, counted by hand (no qkv bias, as DEMS):
#   embeddings: patch projection 3*2*2*32 + 32, class token 32, positions (64 patches + 1) * 32
#   per block: two LayerNorms 2*2*32, q/k/v 3*32*32, output 32*32 + 32, fc1 32*64 + 64, fc2 64*32 + 32
#   final LayerNorm 2*32, head 32*10 + 10
TINY_VIT_PARAMETERS = (
    (3 * 2 * 2 * 32 + 32) + 32 + 65 * 32
    + 3 * (2 * 2 * 32 + 3 * 32 * 32 + (32 * 32 + 32) + (32 * 64 + 64) + (64 * 32 + 32))
    + 2 * 32 + (32 * 10 + 10)
)


def test_vit_matches_width_depth_heads_mlp_and_finest_patch():
    vit = vit_config_matching(tiny_dems_config(attention_probs_dropout_prob=0.05))
    assert (vit.image_size, vit.patch_size, vit.num_channels) == (16, 2, 3)
    assert (vit.hidden_size, vit.num_hidden_layers, vit.num_attention_heads) == (32, 3, 2)
    assert vit.intermediate_size == 64  # MLP ratio 2
    assert vit.attention_probs_dropout_prob == 0.05 and vit.qkv_bias is False
    assert sum(p.numel() for p in ViTForImageClassification(vit).parameters()) == TINY_VIT_PARAMETERS == 28266


def test_vit_needs_one_mlp_ratio():
    with raises_naming(UserInputError, "--architecture vit", "mlp_ratios=[4.0, 2.0, 2.0]"):
        vit_config_matching(tiny_dems_config(mlp_ratios=[4.0, 2.0, 2.0]))


def test_soft_target_cross_entropy_by_hand():
    # softmax([0, ln 3]) = [1/4, 3/4]; targets [1/2, 1/2]: -(ln(1/4) + ln(3/4)) / 2
    logits = torch.tensor([[0.0, math.log(3.0)]])
    loss = soft_target_cross_entropy(logits, torch.tensor([[0.5, 0.5]]))
    assert loss.item() == pytest.approx(-(math.log(0.25) + math.log(0.75)) / 2, abs=1e-6)


def test_trainer_gives_the_vit_the_soft_target_loss(tmp_path):
    torch.manual_seed(0)
    vit = vit_config_matching(tiny_dems_config(problem_type="single_label_classification"))
    model = ViTForImageClassification(vit).eval()
    args = TrainingArguments(output_dir=str(tmp_path), report_to=[], use_cpu=True)
    trainer = DemsTrainer(model=model, args=args)
    pixels = torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    targets = torch.full((3, 10), 0.01)
    targets[:, 4] = 0.91
    loss = trainer.compute_loss(model, {"pixel_values": pixels, "labels": targets})
    log_probs = model(pixel_values=pixels).logits.log_softmax(-1)
    assert loss.item() == pytest.approx(-(targets * log_probs).sum(-1).mean().item(), abs=1e-6)


def test_vit_run_saves_a_folder_that_pipeline_loads(tmp_path):
    output_dir = tmp_path / "vit"
    args = tiny_run_args(output_dir, "--architecture", "vit", "--num_train_epochs", "2", "--max_train_samples", "64",
                         "--max_eval_samples", "32", "--mixup_alpha", "0.8", "--cutmix_alpha", "1.0",
                         "--drop_path_rate", "0.1", "--save_strategy", "no")
    results = train.run(args)
    assert 0.0 <= results["eval_top1_accuracy"] <= 1.0
    config = json.loads((output_dir / "config.json").read_text())
    assert config["model_type"] == "vit" and config["architectures"] == ["ViTForImageClassification"]
    classifier = pipeline("image-classification", model=str(output_dir))
    assert isinstance(classifier.model, ViTForImageClassification)
    assert classifier.model.num_parameters() == TINY_VIT_PARAMETERS
    predictions = classifier(Image.fromarray(np.full((8, 8), 200, dtype=np.uint8)), top_k=3)
    assert len(predictions) == 3 and all(p["label"] in [str(d) for d in range(10)] for p in predictions)
    card = (output_dir / "README.md").read_text()
    assert "ViT baseline" in card and "ViTForImageClassification" in card
    assert not (output_dir / "explanations.png").exists()  # no merges to explain: the card shows none
    summary = json.loads((output_dir / SUMMARY_FILE).read_text())
    # transformers' ViT has no stochastic depth: the asked-for 0.1 is not applied, and the record says so
    assert summary["recipe"]["drop path / attention dropout"].startswith("0.0 /")


def _labelled(labels: list[int]) -> Dataset:
    return Dataset.from_dict({"label": labels}).cast_column("label", ClassLabel(names=["a", "b", "c"]))


def test_balanced_subset_takes_the_same_count_of_each_class():
    split = _labelled([0] * 5 + [1] * 4 + [2] * 6)
    chosen = balanced_subset(split, "label", 3, seed=0)
    assert np.bincount(chosen["label"]).tolist() == [3, 3, 3]
    again = balanced_subset(split, "label", 3, seed=0)
    assert chosen["label"] == again["label"] and chosen._indices == again._indices
    other_seeds = {tuple(balanced_subset(split, "label", 3, seed=s)._indices.column(0).to_pylist()) for s in range(5)}
    assert len(other_seeds) > 1


def test_balanced_subset_refuses_a_class_too_small():
    with raises_naming(UserInputError, "--train_samples_per_class=5", "class 1", "4"):
        balanced_subset(_labelled([0] * 5 + [1] * 4 + [2] * 6), "label", 5, seed=0)


def test_schedule_without_decay_keeps_p0():
    # with decay: p(5 of 10) = 0.5 * 0.6 * (1 + cos(pi / 2)) = 0.3
    assert AugmentationSchedule(0.6, 0.6, 0.6).probabilities(5, 10)["solarize"] == pytest.approx(0.3)
    constant = AugmentationSchedule(0.6, 0.4, 0.2, decaying=False)
    for epoch in (0, 5, 9.9):
        assert constant.probabilities(epoch, 10) == pytest.approx(
            {"color_jitter": 0.6, "grayscale": 0.4, "solarize": 0.2}
        )

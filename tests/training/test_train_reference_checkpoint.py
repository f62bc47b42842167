"""Finetuning from a reference-release `.pth` checkpoint (converted on the fly), including a new head."""

import json

import torch
from huggingface_hub import ModelCard
from reference_dems import random_reference_state_dict
from train_helpers import QUIET
from train_synthetic import make_synthetic_folder

import train
from dems_training.outputs import SUMMARY_FILE


LAYOUT = {"dim": 32, "patch": 2, "image_size": 16, "channels": 3, "depth": 3, "classes": 5, "merged": (16, 8)}
# What the weights' shapes do not tell: where the merges are, how many heads.
SHAPE = ["--config_overrides", "merge_layers=[2,3],num_attention_heads=2"]


def reference_checkpoint(path):
    state_dict = random_reference_state_dict(seed=0, **LAYOUT)
    torch.save({"model": {f"module.{k}": v for k, v in state_dict.items()}, "epoch": 799}, path)
    return str(path)


def test_finetune_from_a_reference_pth_with_a_new_head(tmp_path):
    checkpoint = reference_checkpoint(tmp_path / "ref.pth")
    data = make_synthetic_folder(tmp_path / "data", train_per_class=8, val_per_class=4)
    output_dir = tmp_path / "out"
    results = train.run(
        ["--output_dir", str(output_dir), *QUIET, "--train_dir", data, "--stage", "finetune",
         "--model_name_or_path", checkpoint, "--ignore_mismatched_sizes", "true", *SHAPE,
         "--num_train_epochs", "1", "--global_batch_size", "8"]
    )
    with open(output_dir / "config.json") as f:
        config = json.load(f)
    assert config["id2label"] == {"0": "bright", "1": "dark"}  # the head was replaced: 5 -> 2 classes
    assert config["hidden_size"] == 32 and config["merge_layers"] == [2, 3] and config["drop_path_rate"] == 0.2
    assert 0.0 <= results["eval_top1_accuracy"] <= 1.0
    # Fine-tuned reference weights stay under the reference release's license: the card must not relabel them.
    summary = json.loads((output_dir / SUMMARY_FILE).read_text())
    assert summary["base_model_license"] == "cc-by-nc-4.0"
    assert ModelCard.load(output_dir / "README.md").data.license == "cc-by-nc-4.0"


def test_reference_pth_with_another_class_count_needs_the_flag(tmp_path, capsys):
    checkpoint = reference_checkpoint(tmp_path / "ref.pth")
    data = make_synthetic_folder(tmp_path / "data", train_per_class=2, val_per_class=1)
    code = train.main(
        ["--output_dir", str(tmp_path / "out"), *QUIET, "--train_dir", data, "--stage", "finetune",
         "--model_name_or_path", checkpoint, *SHAPE]
    )
    assert code == 2
    assert "has a 5-class head but the data has 2 classes; pass --ignore_mismatched_sizes" in capsys.readouterr().err

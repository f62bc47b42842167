"""A checkpoint loaded back into a training run (resuming, or the best model at the end) brings back every weight,
for DEMS and for transformers' ViT, whose checkpoints carry legacy names (`encoder.layer.0.attention.attention.query`)
that Trainer's own `load_state_dict` does not rename (transformers#43701); a checkpoint that lacks a weight is
refused by name."""

import pytest
import torch
from safetensors.torch import load_file, save_file
from tiny_configs import make_tiny_config
from transformers import TrainingArguments, ViTForImageClassification

from dems_training.modeling import vit_config_matching
from dems_training.trainer import DemsTrainer
from modeling_dems import DemsForImageClassification


def tiny_model(architecture: str, seed: int):
    torch.manual_seed(seed)
    config = make_tiny_config("train_py", labels=10)
    if architecture == "vit":
        return ViTForImageClassification(vit_config_matching(config))
    return DemsForImageClassification(config)


def trainer_for(model, tmp_path) -> DemsTrainer:
    args = TrainingArguments(output_dir=str(tmp_path / "run"), report_to="none", use_cpu=True)
    return DemsTrainer(model=model, args=args)


def load_back(trainer: DemsTrainer, checkpoint: str, how: str) -> None:
    if how == "resume":
        trainer._load_from_checkpoint(checkpoint)
    else:  # load_best_model_at_end
        trainer.state.best_model_checkpoint = checkpoint
        trainer._load_best_model()


@pytest.mark.parametrize("how", ["resume", "best_model"])
@pytest.mark.parametrize("architecture", ["dems", "vit"])
def test_every_weight_of_a_checkpoint_comes_back(tmp_path, architecture, how):
    trained = tiny_model(architecture, seed=0)
    trained.save_pretrained(tmp_path / "checkpoint-5")
    resumed = tiny_model(architecture, seed=1)  # another initialisation, as a restarted run starts with
    assert not torch.equal(resumed.state_dict()["classifier.weight"], trained.state_dict()["classifier.weight"])

    load_back(trainer_for(resumed, tmp_path), str(tmp_path / "checkpoint-5"), how)

    expected, found = trained.state_dict(), resumed.state_dict()
    assert expected.keys() == found.keys()
    different = [name for name in expected if not torch.equal(expected[name], found[name])]
    assert different == []


def test_a_checkpoint_without_a_weight_is_refused_by_name(tmp_path):
    tiny_model("vit", seed=0).save_pretrained(tmp_path / "checkpoint-5")
    weights_file = tmp_path / "checkpoint-5" / "model.safetensors"
    weights = load_file(str(weights_file))
    name = next(key for key in weights if key.endswith("attention.attention.query.weight"))  # the legacy name
    del weights[name]
    save_file(weights, str(weights_file), metadata={"format": "pt"})

    with pytest.raises(ValueError, match=r"does not hold this model's weights.*missing_keys.*q_proj"):
        trainer_for(tiny_model("vit", seed=1), tmp_path)._load_from_checkpoint(str(tmp_path / "checkpoint-5"))

"""--stage defaults, flag precedence, the global batch and the derived learning rate, config overrides."""

import pytest
from fragments import raises_naming

import train
from dems_training import UserInputError
from dems_training.config_overrides import parse_config_overrides
from dems_training.data.table import DATASET_ENTRIES, GENERIC_ENTRY, dataset_entry
from dems_training.recipe import augmentation_p0_for, recipe_defaults


def parse(argv, monkeypatch):
    """The four argument groups, without the data-set entry parse_arguments also returns."""
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    *groups, _ = train.parse_arguments(argv)
    return groups


def test_pretrain_stage_sets_the_reference_recipe(monkeypatch):
    _, _, recipe, args = parse(["--dataset", "cifar10", "--output_dir", "x"], monkeypatch)
    assert recipe.stage == "pretrain" and args.num_train_epochs == 800
    assert recipe.global_batch_size == 256 and args.per_device_train_batch_size == 256
    assert args.learning_rate == pytest.approx(5e-4)
    assert args.warmup_steps == pytest.approx(10 / 800)
    assert args.weight_decay == 0.05 and (args.adam_beta1, args.adam_beta2) == (0.9, 0.999)
    assert str(args.lr_scheduler_type.value) == "cosine_with_min_lr" and args.lr_scheduler_kwargs == {"min_lr": 1e-6}
    assert (recipe.drop_path_rate, recipe.attention_probs_dropout_prob) == (0.15, 0.05)
    assert (recipe.mixup_alpha, recipe.cutmix_alpha, recipe.mixup_switch_prob, recipe.label_smoothing) == (
        0.8, 1.0, 0.5, 0.1,
    )
    assert recipe.augmentation_schedule is True and recipe.hflip_prob == 0.5 and recipe.crop_scale_min == 0.2
    assert args.do_train and args.do_eval and str(args.eval_strategy.value) == "epoch"


def test_finetune_stage_and_lr_scaled_by_the_global_batch(monkeypatch):
    _, _, recipe, args = parse(
        ["--dataset", "cifar100", "--stage", "finetune", "--global_batch_size", "512", "--output_dir", "x"],
        monkeypatch,
    )
    assert args.num_train_epochs == 100 and args.warmup_steps == 0
    assert args.learning_rate == pytest.approx(1e-3 * 512 / 256)
    assert (recipe.drop_path_rate, recipe.attention_probs_dropout_prob) == (0.2, 0.0)
    assert recipe.augmentation_schedule is False


def test_every_flag_overrides_the_recipe(monkeypatch):
    _, _, recipe, args = parse(
        ["--dataset", "cifar10", "--learning_rate", "3e-4", "--num_train_epochs", "5", "--weight_decay=0.1",
         "--mixup_alpha", "0", "--output_dir", "x"],
        monkeypatch,
    )
    assert args.learning_rate == 3e-4 and args.num_train_epochs == 5 and args.weight_decay == 0.1
    assert recipe.mixup_alpha == 0.0


def test_per_device_batch_is_derived_from_the_global_batch_and_world_size():
    # recipe_defaults is what parse_arguments applies, with the world size torchrun / accelerate put in WORLD_SIZE.
    defaults = recipe_defaults({"global_batch_size": 256, "gradient_accumulation_steps": 2}, {}, processes=4)
    assert defaults["per_device_train_batch_size"] == 32 and defaults["global_batch_size"] == 256
    assert defaults["learning_rate"] == pytest.approx(5e-4)
    with raises_naming(UserInputError, "--global_batch_size=100", "8"):
        recipe_defaults({"global_batch_size": 100}, {}, processes=8)
    with raises_naming(UserInputError, "--per_device_train_batch_size=7", "--global_batch_size=64"):
        recipe_defaults({"global_batch_size": 64, "per_device_train_batch_size": 7}, {}, processes=1)


def test_per_device_batch_alone_sets_the_global_batch_and_the_lr():
    defaults = recipe_defaults({"per_device_train_batch_size": 16}, {}, processes=2)
    assert defaults["global_batch_size"] == 32 and defaults["learning_rate"] == pytest.approx(5e-4 * 32 / 256)


def test_digits_entry_shortens_the_recipe_but_flags_still_win(monkeypatch):
    _, data, recipe, args = parse(["--output_dir", "x"], monkeypatch)
    assert data.dataset == "digits"
    overrides = DATASET_ENTRIES["digits"].recipe_overrides
    assert args.num_train_epochs == overrides["num_train_epochs"]
    assert recipe.global_batch_size == overrides["global_batch_size"]
    _, _, _, args = parse(["--output_dir", "x", "--num_train_epochs", "2"], monkeypatch)
    assert args.num_train_epochs == 2 and args.warmup_steps < 1


def test_bad_stage_and_warmup_are_named(monkeypatch):
    with raises_naming(UserInputError, "--stage='warmup'", "'pretrain'", "'finetune'"):
        parse(["--stage", "warmup"], monkeypatch)
    with raises_naming(UserInputError, "--warmup_epochs=20.0", "--num_train_epochs=10"):
        parse(["--warmup_epochs", "20", "--num_train_epochs", "10"], monkeypatch)


def test_config_overrides_parse_lists_numbers_and_strings():
    assert parse_config_overrides("image_size=16, merge_layers=[2,4],hidden_act=gelu,qkv_bias=true") == {
        "image_size": 16,
        "merge_layers": [2, 4],
        "hidden_act": "gelu",
        "qkv_bias": True,
    }
    with raises_naming(UserInputError, "'hidden'", "DemsConfig"):
        parse_config_overrides("hidden=3")


def test_an_impossible_model_is_refused_before_training(tmp_path, capsys):
    code = train.main(["--output_dir", str(tmp_path / "o"), "--config_overrides", "image_size=20"])
    assert code == 2
    err = capsys.readouterr().err
    assert "image_size=20" in err and "8 * patch_size" in err


def test_finetune_without_a_model_is_refused(tmp_path, capsys):
    assert train.main(["--stage", "finetune", "--output_dir", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "--stage finetune" in err and "--model_name_or_path" in err


def test_finetune_on_cifar100_default_learning_rate_by_hand(monkeypatch):
    # recipe.py: finetune's base rate 1e-3 per 256 images, nothing changed for cifar100, global batch 256.
    _, _, _, args = parse(["--dataset", "cifar100", "--stage", "finetune", "--output_dir", "x"], monkeypatch)
    assert args.learning_rate == pytest.approx(1e-3)  # 1e-3 * 256 / 256
    _, _, _, args = parse(
        ["--dataset", "cifar100", "--stage", "finetune", "--global_batch_size", "512", "--output_dir", "x"],
        monkeypatch,
    )
    assert args.learning_rate == pytest.approx(2e-3)  # 1e-3 * 512 / 256


def test_augmentation_p0_follows_the_model_width():
    assert augmentation_p0_for(192) == 0.6  # tiny
    assert augmentation_p0_for(384) == 0.8  # small


def test_one_entry_per_data_set_and_parse_arguments_hands_it_on(monkeypatch):
    assert dataset_entry("caltech101", None).model_preset == "tiny-256"
    assert dataset_entry("cifar100", None).label_column == "fine_label"
    # --train_dir with the default --dataset: the user's folders, not digits' small model
    assert dataset_entry("digits", "folders") is dataset_entry("some/hub-id", None) is GENERIC_ENTRY
    assert GENERIC_ENTRY != DATASET_ENTRIES["digits"]
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    *_, entry = train.parse_arguments(["--dataset", "cifar100", "--output_dir", "x"])
    assert entry is DATASET_ENTRIES["cifar100"]

import math

import pytest
import torch
from datasets import Dataset
from transformers import TrainerCallback, TrainingArguments

from dems_training.lr_schedule import EpochLearningRateSchedule, reference_epoch_learning_rates
from dems_training.recipe import recipe_defaults
from dems_training.trainer import DemsTrainer
from modeling_dems import DemsForImageClassification


def test_reference_rates_by_hand():
    peak, low = 1e-3, 1e-6
    rates = reference_epoch_learning_rates(peak, low, epochs=5, warmup_epochs=2)
    expected = [
        low,  # warm-up starts at the minimum ...
        peak,  # ... and its last epoch reaches the peak
        peak,  # cosine epoch 0 of 3
        low + 0.5 * (peak - low) * (1 + math.cos(math.pi / 3)),
        low + 0.5 * (peak - low) * (1 + math.cos(2 * math.pi / 3)),
    ]
    assert rates == pytest.approx(expected, rel=1e-12)
    # no warm-up (finetune): the cosine starts at the peak
    assert reference_epoch_learning_rates(peak, low, epochs=4, warmup_epochs=0)[0] == peak
    with pytest.raises(ValueError, match=r"warmup_epochs=4 must be in \[0, epochs=4\)"):
        reference_epoch_learning_rates(peak, low, epochs=4, warmup_epochs=4)


class _RecordLearningRate(TrainerCallback):
    def __init__(self):
        self.rates = []

    def on_step_begin(self, args, state, control, optimizer=None, **kwargs):
        self.rates.append(optimizer.param_groups[0]["lr"])


def test_trainer_holds_one_rate_per_epoch(tmp_path, small_config):
    """6 images, batch 2: 3 optimizer steps per epoch, 3 epochs, 1 warm-up epoch."""
    data = Dataset.from_dict(
        {"pixel_values": torch.randn(6, 3, 32, 32).numpy(), "labels": [0, 1, 2, 0, 1, 2]}
    ).with_format("torch")
    args = TrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=2,
        num_train_epochs=3,
        learning_rate=1e-3,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
    )
    recorder = _RecordLearningRate()
    trainer = DemsTrainer(
        model=DemsForImageClassification(small_config),
        args=args,
        train_dataset=data,
        callbacks=[recorder],
        epoch_schedule=EpochLearningRateSchedule(warmup_epochs=1, min_learning_rate=1e-6),
    )
    trainer.train()
    middle = 1e-6 + 0.5 * (1e-3 - 1e-6)  # cosine epoch 1 of 2: cos(pi / 2) = 0
    assert recorder.rates == pytest.approx([1e-6] * 3 + [1e-3] * 3 + [middle] * 3, rel=1e-9)


def test_the_recipe_uses_the_epoch_schedule_unless_a_trainer_schedule_is_asked_for():
    assert recipe_defaults({}, {}, processes=1)["epoch_lr_schedule"] is True
    assert recipe_defaults({"lr_scheduler_type": "linear"}, {}, processes=1)["epoch_lr_schedule"] is False


def test_the_model_card_names_the_schedule_that_ran():
    from types import SimpleNamespace

    from dems_training.outputs import _schedule_summary

    args = TrainingArguments(output_dir="unused", lr_scheduler_type="cosine_with_min_lr", report_to=[])
    reference = SimpleNamespace(epoch_lr_schedule=True, warmup_epochs=10.0)
    assert _schedule_summary(args, reference) == "per-epoch cosine (reference), warm-up 10 epoch(s)"
    trainer_schedule = SimpleNamespace(epoch_lr_schedule=False, warmup_epochs=0.5)
    assert _schedule_summary(args, trainer_schedule) == "cosine_with_min_lr per step, warm-up 0.5 epoch(s)"

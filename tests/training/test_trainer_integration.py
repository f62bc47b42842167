"""The model inside transformers' Trainer (the training script's own tests live in test_train*.py)."""

import torch
from datasets import Dataset
from transformers import Trainer, TrainingArguments

from modeling_dems import DemsForImageClassification


def _dataset(n=4):
    generator = torch.Generator().manual_seed(0)
    return Dataset.from_dict(
        {
            "pixel_values": torch.randn(n, 3, 32, 32, generator=generator).numpy(),
            "labels": torch.tensor([0, 1, 2, 1][:n]).numpy(),
        }
    ).with_format("torch")


def _one_update(config, tmp_path, batch_size, accumulation):
    torch.manual_seed(0)
    model = DemsForImageClassification(config)
    args = TrainingArguments(
        output_dir=str(tmp_path / f"run-{batch_size}-{accumulation}"),
        per_device_train_batch_size=batch_size,
        gradient_accumulation_steps=accumulation,
        max_steps=1,
        learning_rate=0.1,
        optim="sgd",
        lr_scheduler_type="constant",
        weight_decay=0.0,
        max_grad_norm=0.0,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        dataloader_drop_last=True,
        seed=0,
    )
    trainer = Trainer(model=model, args=args, train_dataset=_dataset())
    trainer._get_train_sampler = lambda *a, **k: torch.utils.data.SequentialSampler(trainer.train_dataset)
    trainer.train()
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def test_gradient_accumulation_matches_one_large_batch(tmp_path, small_config):
    """Two accumulated batches of 2 must make the same update as one batch of 4 (a mean loss, scaled by Trainer)."""
    whole = _one_update(small_config, tmp_path, batch_size=4, accumulation=1)
    accumulated = _one_update(small_config, tmp_path, batch_size=2, accumulation=2)
    for name, value in whole.items():
        torch.testing.assert_close(accumulated[name], value, rtol=1e-4, atol=1e-6, msg=name)

"""`--augment_on_device` through train.py: the workers' uint8 batches reach the batched augmentation, which follows
the schedule epoch by epoch and hands the model normalised floats and soft targets; and which pieces
`build_input_pipeline` picks for each setting."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from train_helpers import tiny_run_args

import train
from configuration_dems import DemsConfig
from dems_training.augmentation.mixup import MixupCutmixCollator, default_collator
from dems_training.augmentation.on_device import DeviceAugmentation
from dems_training.augmentation.pipeline import build_input_pipeline
from dems_training.augmentation.transforms import CpuAugmentation, RandomResizedCropFlip, ResizeNormalize
from modeling_dems import DemsImageProcessor


EPOCHS, P0 = 3, 0.6


def test_batches_are_augmented_on_the_device_with_each_epochs_probabilities(tmp_path, monkeypatch):
    seen = []
    original = DeviceAugmentation.__call__

    def recording(self, pixel_values, labels):
        out = original(self, pixel_values, labels)
        seen.append((self.current_probabilities(), pixel_values.dtype, out["pixel_values"], out["labels"]))
        return out

    monkeypatch.setattr(DeviceAugmentation, "__call__", recording)
    results = train.run(
        tiny_run_args(
            tmp_path / "out",
            "--dataset", "digits",
            "--augment_on_device",
            "--num_train_epochs", str(EPOCHS),
            "--augmentation_p0", str(P0),
            "--max_train_samples", "32",
            "--max_eval_samples", "32",
            "--global_batch_size", "16",
            "--save_strategy", "no",
        )
    )
    assert len(seen) == 2 * EPOCHS  # two batches of 16 per epoch
    for step, (probabilities, dtype, pixels, targets) in enumerate(seen):
        expected = 0.5 * P0 * (1 + math.cos(math.pi * (step // 2) / EPOCHS))
        assert probabilities == pytest.approx({"color_jitter": expected, "grayscale": expected, "solarize": expected})
        assert dtype == torch.uint8
        assert pixels.dtype == torch.float32 and pixels.shape == (16, 3, 16, 16)
        assert -1.0 - 1e-6 <= pixels.min() and pixels.max() <= 1.0 + 1e-6  # digits: mean 0.5, std 0.5
        assert targets.shape == (16, 10)  # soft targets (label smoothing 0.1 for digits)
        torch.testing.assert_close(targets.sum(dim=1), torch.ones(16))
    assert math.isfinite(results["train_loss"]) and 0 <= results["eval_top1_accuracy"] <= 1


def recipe(**overrides):
    values = {
        "augmentation_schedule": True, "augmentation_p0": None, "augmentation_decay": True, "augment_on_device": False,
        "mixup_alpha": 0.8,
        "cutmix_alpha": 1.0, "mixup_prob": 1.0, "mixup_switch_prob": 0.5, "label_smoothing": 0.1,
        "crop_scale_min": 0.2, "hflip_prob": 0.5,
    }
    return SimpleNamespace(**{**values, **overrides})


@pytest.mark.parametrize("schedule", [True, False], ids=["pretrain", "finetune"])
@pytest.mark.parametrize("on_device", [False, True], ids=["cpu", "on-device"])
def test_build_input_pipeline_picks_the_pieces(schedule, on_device):
    config = DemsConfig.from_preset("tiny-32", num_labels=5)
    processor = DemsImageProcessor.from_model_config(config)
    pipeline = build_input_pipeline(
        recipe(augmentation_schedule=schedule, augment_on_device=on_device), config, processor
    )
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 36, 3), dtype=np.uint8))
    pixels = pipeline.train_transform(image)
    assert pixels.shape == (3, 32, 32)
    assert isinstance(pipeline.eval_transform, ResizeNormalize)
    assert pipeline.eval_transform(image).dtype == torch.float32
    if on_device:
        assert pixels.dtype == torch.uint8
        assert pipeline.train_collator is default_collator
        assert isinstance(pipeline.device_augmentation, DeviceAugmentation)
        assert (pipeline.device_augmentation.schedule is not None) == schedule
        assert isinstance(pipeline.train_transform, RandomResizedCropFlip if schedule else ResizeNormalize)
        scheduled = pipeline.device_augmentation
    else:
        assert pixels.dtype == torch.float32
        assert isinstance(pipeline.train_collator, MixupCutmixCollator) and pipeline.device_augmentation is None
        assert isinstance(pipeline.train_transform, CpuAugmentation if schedule else ResizeNormalize)
        scheduled = pipeline.train_transform
    # The schedule's callback drives whatever applies the colour operations; none without a schedule.
    assert [c.augmentation for c in pipeline.callbacks] == ([scheduled] if schedule else [])
    if schedule:
        assert scheduled.schedule.color_jitter_p0 == 0.6  # tiny: the reference's p0

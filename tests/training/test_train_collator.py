"""The mixup / cutmix collator: soft targets that sum to 1, label smoothing, and mixing as timm's batch mode."""

import random

import pytest
import torch

from dems_training.augmentation.mixup import MixupCutmixCollator, default_collator, smoothed_one_hot


def examples(n=8, classes=5, size=8):
    generator = torch.Generator().manual_seed(0)
    return [
        {"pixel_values": torch.rand(3, size, size, generator=generator), "labels": i % classes} for i in range(n)
    ]


@pytest.mark.parametrize(
    "mixup_alpha,cutmix_alpha",
    [(0.8, 1.0), (0.8, 0.0), (0.0, 1.0), (0.0, 0.0)],
    ids=["both", "mixup", "cutmix", "none"],
)
def test_soft_targets_sum_to_one_and_stay_in_range(mixup_alpha, cutmix_alpha):
    random.seed(0)
    collator = MixupCutmixCollator(num_classes=5, mixup_alpha=mixup_alpha, cutmix_alpha=cutmix_alpha)
    for _ in range(20):
        batch = collator(examples())
        targets = batch["labels"]
        assert targets.shape == (8, 5) and targets.dtype == torch.float32
        torch.testing.assert_close(targets.sum(dim=1), torch.ones(8))
        assert targets.min() >= 0.1 / 5 - 1e-6  # the smoothing floor: every class keeps smoothing / num_classes
        assert batch["pixel_values"].shape == (8, 3, 8, 8)


def test_label_smoothing_values():
    targets = smoothed_one_hot(torch.tensor([2, 0]), num_classes=4, smoothing=0.1)
    torch.testing.assert_close(targets[0], torch.tensor([0.025, 0.025, 0.925, 0.025]))
    torch.testing.assert_close(targets.sum(1), torch.ones(2))


def test_mixup_mixes_images_and_targets_with_the_same_weight():
    random.seed(1)
    collator = MixupCutmixCollator(num_classes=5, mixup_alpha=0.8, cutmix_alpha=0.0, label_smoothing=0.0)
    batch_in = examples()
    pixels = torch.stack([e["pixel_values"] for e in batch_in])
    out = collator(batch_in)
    # image i = lam * image i + (1 - lam) * image (n-1-i); recover lam from the targets of example 0 (label 0,
    # partner label 7 % 5 = 2)
    lam = out["labels"][0, 0].item()
    assert 0.0 < lam < 1.0 and abs(out["labels"][0, 2].item() - (1 - lam)) < 1e-6
    torch.testing.assert_close(out["pixel_values"], pixels * lam + pixels.flip(0) * (1 - lam))


def test_cutmix_target_weight_is_the_pasted_area():
    random.seed(2)
    collator = MixupCutmixCollator(num_classes=5, mixup_alpha=0.0, cutmix_alpha=1.0, label_smoothing=0.0)
    batch_in = examples(size=16)
    pixels = torch.stack([e["pixel_values"] for e in batch_in])
    seen_mixed = False
    for _ in range(10):
        out = collator([dict(e) for e in batch_in])
        pasted = (out["pixel_values"] != pixels).any(dim=1)[0].float().mean().item()  # fraction of image 0 replaced
        lam = out["labels"][0, 0].item()
        assert abs((1 - lam) - pasted) < 1e-6
        seen_mixed |= pasted > 0
    assert seen_mixed


def test_no_mixing_when_mix_prob_is_zero_and_eval_collator_keeps_ids():
    collator = MixupCutmixCollator(num_classes=5, mix_prob=0.0, label_smoothing=0.0)
    out = collator(examples())
    assert torch.equal(out["labels"].argmax(1), torch.tensor([i % 5 for i in range(8)]))
    assert torch.equal(out["labels"].max(1).values, torch.ones(8))
    plain = default_collator(examples())
    assert plain["labels"].dtype == torch.int64 and plain["labels"].tolist() == [i % 5 for i in range(8)]


def test_bad_settings_are_refused_with_their_name():
    with pytest.raises(ValueError, match="label_smoothing=1.5"):
        MixupCutmixCollator(num_classes=5, label_smoothing=1.5)
    with pytest.raises(ValueError, match="mixup_alpha=-1"):
        MixupCutmixCollator(num_classes=5, mixup_alpha=-1)

"""Batch-level mixup / cutmix with label smoothing, as timm's `Mixup` in "batch" mode (the reference's settings):
one mixing factor per batch, each image mixed with the batch flipped end to end. Targets come out as soft class
distributions (each row sums to 1), which `DemsForImageClassification` takes as soft cross-entropy targets."""

import math
import random
from dataclasses import dataclass

import torch


def smoothed_one_hot(labels: torch.Tensor, num_classes: int, smoothing: float) -> torch.Tensor:
    off = smoothing / num_classes
    targets = torch.full((labels.shape[0], num_classes), off, dtype=torch.float32, device=labels.device)
    return targets.scatter_(1, labels.long().view(-1, 1), 1.0 - smoothing + off)


def cutmix_box(height: int, width: int, lam: float) -> tuple[int, int, int, int]:
    """A box covering about 1 - lam of the image, centred anywhere (it is clipped at the borders)."""
    cut_ratio = math.sqrt(1.0 - lam)
    cut_h, cut_w = int(height * cut_ratio), int(width * cut_ratio)
    cy, cx = random.randint(0, height - 1), random.randint(0, width - 1)
    top, bottom = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, height)
    left, right = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, width)
    return top, bottom, left, right


@dataclass
class MixupCutmixCollator:
    """Stack {"pixel_values", "labels"} examples and mix the batch. `mix_prob` is the chance a batch is mixed at
    all, `switch_prob` the chance of cutmix rather than mixup when both alphas are positive. With both alphas 0
    this only smooths the labels."""

    num_classes: int
    mixup_alpha: float = 0.8
    cutmix_alpha: float = 1.0
    mix_prob: float = 1.0
    switch_prob: float = 0.5
    label_smoothing: float = 0.1

    def __post_init__(self):
        for name in ("mixup_alpha", "cutmix_alpha"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 0.")
        for name in ("mix_prob", "switch_prob", "label_smoothing"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name}={getattr(self, name)} must be in [0, 1].")

    def sample(self) -> tuple[float, bool]:
        """(lam, use_cutmix); lam = 1 means no mixing."""
        if random.random() >= self.mix_prob:
            return 1.0, False
        if self.mixup_alpha > 0 and self.cutmix_alpha > 0:
            use_cutmix = random.random() < self.switch_prob
        elif self.cutmix_alpha > 0:
            use_cutmix = True
        elif self.mixup_alpha > 0:
            use_cutmix = False
        else:
            return 1.0, False
        alpha = self.cutmix_alpha if use_cutmix else self.mixup_alpha
        return random.betavariate(alpha, alpha), use_cutmix

    def __call__(self, examples: list[dict]) -> dict:
        pixel_values, targets = self.mix(*stack_examples(examples))
        return {"pixel_values": pixel_values, "labels": targets}

    def mix(self, pixel_values: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mix a stacked batch (on any device; `pixel_values` may be changed in place) -> (pixels, soft targets)."""
        lam, use_cutmix = self.sample()
        if lam < 1.0:
            flipped = pixel_values.flip(0)
            if use_cutmix:
                height, width = pixel_values.shape[-2:]
                top, bottom, left, right = cutmix_box(height, width, lam)
                pixel_values[:, :, top:bottom, left:right] = flipped[:, :, top:bottom, left:right]
                # The box was clipped at the borders: the label weight follows the area really pasted.
                lam = 1.0 - (bottom - top) * (right - left) / (height * width)
            else:
                pixel_values = pixel_values * lam + flipped * (1.0 - lam)
        targets = smoothed_one_hot(labels, self.num_classes, self.label_smoothing)
        targets = targets * lam + targets.flip(0) * (1.0 - lam)
        return pixel_values, targets


def stack_examples(examples: list[dict]) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.stack([e["pixel_values"] for e in examples]), torch.tensor([int(e["labels"]) for e in examples])


def default_collator(examples: list[dict]) -> dict:
    """Held-out batches, and training batches mixed on the device: plain stacking, integer labels."""
    pixel_values, labels = stack_examples(examples)
    return {"pixel_values": pixel_values, "labels": labels}

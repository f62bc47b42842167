"""The reference release's learning-rate schedule: one value per epoch, held for the whole epoch.

Warm-up epochs rise linearly from the minimum to the peak (both ends included), then a half cosine falls from the
peak towards the minimum over the remaining epochs (DINO-style: the last epoch stops one step short of the minimum).
Trainer's own `cosine_with_min_lr` changes the rate every step and warms up from 0; `--lr_scheduler_type` selects
it instead. The peak, the minimum and the warm-up are recipe.py's; `DemsTrainer.create_scheduler` builds the
schedule with `EpochLearningRateSchedule.scheduler` below.
"""

import math
from dataclasses import dataclass

import numpy as np
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


def reference_epoch_learning_rates(peak: float, minimum: float, epochs: int, warmup_epochs: int) -> list[float]:
    """The learning rate of each epoch, `epochs` values."""
    if not 0 <= warmup_epochs < epochs:
        raise ValueError(f"warmup_epochs={warmup_epochs} must be in [0, epochs={epochs}).")
    warmup = np.linspace(minimum, peak, warmup_epochs) if warmup_epochs else np.array([])
    steps = np.arange(epochs - warmup_epochs)
    cosine = minimum + 0.5 * (peak - minimum) * (1 + np.cos(np.pi * steps / len(steps)))
    return np.concatenate([warmup, cosine]).tolist()


def reference_epoch_scheduler(
    optimizer: Optimizer, steps_per_epoch: int, total_steps: int, warmup_epochs: float, minimum: float
) -> LambdaLR:
    """A `LambdaLR` stepping through `reference_epoch_learning_rates`; the optimizer's rate is the peak.
    Fractional warm-up epochs (a shortened run keeps the default's share) round to whole epochs."""
    epochs = max(1, math.ceil(total_steps / steps_per_epoch))
    warmup = min(round(warmup_epochs), epochs - 1)
    peak = optimizer.param_groups[0]["lr"]
    factors = [rate / peak for rate in reference_epoch_learning_rates(peak, minimum, epochs, warmup)]
    return LambdaLR(optimizer, lambda step: factors[min(step // steps_per_epoch, epochs - 1)])


def optimizer_steps_per_epoch(batches_per_epoch: int, gradient_accumulation_steps: int) -> int:
    """Optimizer steps in one epoch as Trainer counts them: per process, after gradient accumulation (at least 1)."""
    return max(batches_per_epoch // gradient_accumulation_steps, 1)


@dataclass
class EpochLearningRateSchedule:
    """The reference's per-epoch warm-up and cosine, as `DemsTrainer` takes it (`epoch_schedule`)."""

    warmup_epochs: float
    min_learning_rate: float

    def scheduler(self, optimizer: Optimizer, steps_per_epoch: int, total_steps: int) -> LambdaLR:
        return reference_epoch_scheduler(
            optimizer, steps_per_epoch, total_steps, self.warmup_epochs, self.min_learning_rate
        )


def epoch_schedule_for(recipe_args) -> EpochLearningRateSchedule | None:
    """The per-epoch schedule a run asks for, or None when it asked for Trainer's own (--lr_scheduler_type)."""
    if not recipe_args.epoch_lr_schedule:
        return None
    return EpochLearningRateSchedule(recipe_args.warmup_epochs, recipe_args.min_learning_rate)

"""The reference release's learning-rate schedule: one value per epoch, held for the whole epoch.

Warm-up epochs rise linearly from the minimum to the peak (both ends included), then a half cosine falls from the
peak towards the minimum over the remaining epochs (DINO-style: the last epoch stops one step short of the minimum).
Trainer's own `cosine_with_min_lr` changes the rate every step and warms up from 0; `--lr_scheduler_type` selects
it instead.
"""

import math

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

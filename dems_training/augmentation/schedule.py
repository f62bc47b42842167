"""The paper's augmentation schedule: colour jitter, greyscale and solarize each drawn with a probability that
decays by cosine from p0 to zero over training, so that early epochs see strong augmentation and late ones clean
images.

The reference rebuilds its train transform every epoch. Here the transforms are built once and read the epoch from a
shared-memory tensor (`ScheduleFollower`), so that data loader workers (forked or spawned, persistent or not) see
every epoch the main process sets; `AugmentationScheduleCallback` sets it at the start of each epoch.
"""

import math
from dataclasses import dataclass

import torch
from transformers import TrainerCallback


@dataclass(frozen=True)
class AugmentationSchedule:
    """p(e) = 0.5 * p0 * (1 + cos(pi * e / E)) for each of colour jitter, greyscale and solarize (p0 throughout
    when `decaying` is False)."""

    color_jitter_p0: float = 0.6
    grayscale_p0: float = 0.6
    solarize_p0: float = 0.6
    decaying: bool = True  # False: p(e) = p0 for every epoch (the ablation without the schedule)

    def __post_init__(self):
        for name in ("color_jitter_p0", "grayscale_p0", "solarize_p0"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"AugmentationSchedule.{name}={value} must be a probability in [0, 1].")

    @staticmethod
    def decay(p0: float, epoch: float, total_epochs: float) -> float:
        if total_epochs <= 0:
            return p0
        return 0.5 * p0 * (1.0 + math.cos(math.pi * epoch / total_epochs))

    def probabilities(self, epoch: float, total_epochs: float) -> dict[str, float]:
        if not self.decaying:
            total_epochs = 0  # decay() then returns p0
        return {
            "color_jitter": self.decay(self.color_jitter_p0, epoch, total_epochs),
            "grayscale": self.decay(self.grayscale_p0, epoch, total_epochs),
            "solarize": self.decay(self.solarize_p0, epoch, total_epochs),
        }


class ScheduleFollower:
    """The schedule and the epoch it is at, for a transform on the CPU (read in every data loader worker) or on the
    training device (read in the main process). Call `start_schedule` from `__init__`."""

    def start_schedule(self, schedule: AugmentationSchedule | None) -> None:
        self.schedule = schedule
        # [epoch, total epochs] in shared memory: written by the main process, read by every worker.
        self._epoch_state = torch.zeros(2, dtype=torch.float64).share_memory_()

    def set_epoch(self, epoch: float, total_epochs: float) -> None:
        self._epoch_state[0] = float(epoch)
        self._epoch_state[1] = float(total_epochs)

    @property
    def epoch(self) -> tuple[float, float]:
        return float(self._epoch_state[0]), float(self._epoch_state[1])

    def current_probabilities(self) -> dict[str, float]:
        return self.schedule.probabilities(*self.epoch)


class AugmentationScheduleCallback(TrainerCallback):
    """Push the epoch to the augmentation schedule at the start of every epoch.

    Trainer calls `on_epoch_begin` before it opens the epoch's data loader iterator, so the workers (which read the
    epoch from shared memory) start the epoch with its probabilities. On resume `state.epoch` is the fractional epoch
    of the checkpoint: its integer part is the epoch being resumed."""

    def __init__(self, augmentation):
        self.augmentation = augmentation

    def on_epoch_begin(self, args, state, control, **kwargs):
        epoch = int(state.epoch or 0)
        self.augmentation.set_epoch(epoch, state.num_train_epochs or args.num_train_epochs)

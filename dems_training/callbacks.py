"""Trainer callbacks for the DEMS recipe."""

from transformers import TrainerCallback


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

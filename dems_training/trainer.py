"""`Trainer` with what the DEMS recipe does differently from transformers' defaults."""

import contextlib
from dataclasses import dataclass

import torch
from transformers import Trainer

from .lr_schedule import reference_epoch_scheduler


@dataclass
class EpochLearningRateSchedule:
    """The reference's per-epoch warm-up and cosine (see lr_schedule.py)."""

    warmup_epochs: float
    min_learning_rate: float


class DemsTrainer(Trainer):
    """- With `batch_augmentation` (`--augment_on_device`), each training batch arrives as uint8 pixels and integer
      labels and is augmented, normalised and mixed on the training device before the forward pass.
    - Held-out batches are collated by `eval_data_collator` (plain stacking, integer labels), while training
      batches go through the mixup/cutmix collator given as `data_collator`.
    - Weight decay applies to every parameter, as in the reference (Trainer's default leaves biases and LayerNorm
      weights out); `decay_all_parameters=False` restores Trainer's choice.
    - With `epoch_schedule`, the learning rate follows the reference's per-epoch schedule instead of
      `args.lr_scheduler_type`."""

    def __init__(
        self,
        *args,
        eval_data_collator=None,
        batch_augmentation=None,
        decay_all_parameters: bool = True,
        epoch_schedule: EpochLearningRateSchedule | None = None,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.batch_augmentation = batch_augmentation
        self.eval_data_collator = eval_data_collator
        self.decay_all_parameters = decay_all_parameters
        self.epoch_schedule = epoch_schedule

    def training_step(self, model, inputs, num_items_in_batch=None):
        if self.batch_augmentation is not None:
            inputs = self._prepare_inputs(inputs)  # on the device; Trainer's own call below then moves nothing
            with torch.no_grad():
                inputs = {**inputs, **self.batch_augmentation(inputs["pixel_values"], inputs["labels"])}
        return super().training_step(model, inputs, num_items_in_batch)

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        if self.epoch_schedule is None or self.lr_scheduler is not None:
            return super().create_scheduler(num_training_steps, optimizer)
        # optimizer steps per epoch, as Trainer counts them (per process, after gradient accumulation)
        steps_per_epoch = max(len(self.get_train_dataloader()) // self.args.gradient_accumulation_steps, 1)
        self.lr_scheduler = reference_epoch_scheduler(
            self.optimizer if optimizer is None else optimizer,
            steps_per_epoch,
            num_training_steps,
            self.epoch_schedule.warmup_epochs,
            self.epoch_schedule.min_learning_rate,
        )
        self._created_lr_scheduler = True
        return self.lr_scheduler

    @contextlib.contextmanager
    def _collating_with(self, collator):
        train_collator = self.data_collator
        if collator is not None:
            self.data_collator = collator
        try:
            yield
        finally:
            self.data_collator = train_collator

    def get_eval_dataloader(self, eval_dataset=None):
        with self._collating_with(self.eval_data_collator):
            return super().get_eval_dataloader(eval_dataset)

    def get_test_dataloader(self, test_dataset):
        with self._collating_with(self.eval_data_collator):
            return super().get_test_dataloader(test_dataset)

    def get_decay_parameter_names(self, model) -> list[str]:
        if self.decay_all_parameters:
            return [name for name, _ in model.named_parameters()]
        return super().get_decay_parameter_names(model)

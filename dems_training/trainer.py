"""`Trainer` with the things the DEMS recipe and its sharing do differently from transformers' defaults."""

import contextlib
import os
import shutil
from pathlib import Path

import torch
from transformers import PreTrainedModel, Trainer
from transformers.utils import SAFE_WEIGHTS_INDEX_NAME, SAFE_WEIGHTS_NAME, WEIGHTS_INDEX_NAME, WEIGHTS_NAME

from modeling_dems.modeling_dems import soft_target_cross_entropy

from .hub.model_card import write_model_card
from .lr_schedule import EpochLearningRateSchedule, optimizer_steps_per_epoch
from .outputs import read_run_summary


class DemsTrainer(Trainer):
    """- With `device_augmentation` (`--augment_on_device`), each training batch arrives as uint8 pixels and integer
      labels and is augmented, normalised and mixed on the training device before the forward pass.
    - Held-out batches are collated by `eval_data_collator` (plain stacking, integer labels), while training
      batches go through the mixup/cutmix collator given as `data_collator`.
    - Weight decay applies to every parameter, as in the reference (Trainer's default leaves biases and LayerNorm
      weights out); `decay_all_parameters=False` restores Trainer's choice.
    - With `epoch_schedule`, the learning rate follows the reference's per-epoch schedule (lr_schedule.py) instead
      of `args.lr_scheduler_type`.
    - Soft targets (mixup/cutmix) of a single-label classifier get soft cross-entropy whatever the model, so that
      DEMS and the ViT baseline (whose own loss reads float labels as hard ones) train on the same loss. The loss is
      a batch mean, which Trainer scales for gradient accumulation.
    - A checkpoint is loaded back (resuming, or the best one at the end) through `from_pretrained`'s key renaming,
      and every weight must be found: Trainer's own `load_state_dict` skips the renaming, so the weights of a model
      whose checkpoints carry legacy names (transformers' ViT) silently stayed at their initialisation.
    - `--push_to_hub` publishes a repository that loads: the model card is the DEMS one, rendered from the run
      summary, and each commit carries the remote code its config.json names. `save_model` does not push: the
      caller pushes once (`push_to_hub`) after the final evaluation, so that the commit carries its results."""

    def __init__(
        self,
        *args,
        eval_data_collator=None,
        device_augmentation=None,
        decay_all_parameters: bool = True,
        epoch_schedule: EpochLearningRateSchedule | None = None,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.device_augmentation = device_augmentation
        self.eval_data_collator = eval_data_collator
        self.decay_all_parameters = decay_all_parameters
        self.epoch_schedule = epoch_schedule
        # Every loss here is a mean over the batch: Trainer must divide it by the accumulation steps itself.
        self.model_accepts_loss_kwargs = False

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        labels = inputs.get("labels")
        config = self.accelerator.unwrap_model(model).config
        soft = labels is not None and labels.is_floating_point() and labels.ndim == 2
        if not soft or config.problem_type != "single_label_classification":
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        outputs = model(**{name: value for name, value in inputs.items() if name != "labels"})
        loss = soft_target_cross_entropy(outputs.logits, labels)
        return (loss, outputs) if return_outputs else loss

    def training_step(self, model, inputs, num_items_in_batch=None):
        if self.device_augmentation is not None:
            inputs = self._prepare_inputs(inputs)  # on the device; Trainer's own call below then moves nothing
            with torch.no_grad():
                inputs = {**inputs, **self.device_augmentation(inputs["pixel_values"], inputs["labels"])}
        return super().training_step(model, inputs, num_items_in_batch)

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        if self.epoch_schedule is None or self.lr_scheduler is not None:
            return super().create_scheduler(num_training_steps, optimizer)
        steps_per_epoch = optimizer_steps_per_epoch(
            len(self.get_train_dataloader()), self.args.gradient_accumulation_steps
        )
        self.lr_scheduler = self.epoch_schedule.scheduler(
            self.optimizer if optimizer is None else optimizer, steps_per_epoch, num_training_steps
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

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        model = self.model if model is None else model
        if not self._load_weights_by_name(resume_from_checkpoint, model):
            super()._load_from_checkpoint(resume_from_checkpoint, model)

    def _load_best_model(self) -> None:
        if not self._load_weights_by_name(self.state.best_model_checkpoint, self.model):
            super()._load_best_model()

    def _load_weights_by_name(self, checkpoint: str, model) -> bool:
        """Load a whole model's checkpoint into `model` the way `from_pretrained` reads it, renaming saved keys to the
        model's (transformers#43701: Trainer's `load_state_dict` does not, so a ViT resumed with its encoder's
        weights freshly initialised, with a warning only). False where Trainer's own path applies: DeepSpeed,
        FSDP, adapters, or no weights file of a whole model."""
        weight_files = (SAFE_WEIGHTS_NAME, SAFE_WEIGHTS_INDEX_NAME, WEIGHTS_NAME, WEIGHTS_INDEX_NAME)
        if (self.is_deepspeed_enabled or self.is_fsdp_enabled or not isinstance(model, PreTrainedModel)
                or not any(os.path.isfile(os.path.join(checkpoint, name)) for name in weight_files)):
            return False
        saved, info = type(model).from_pretrained(checkpoint, output_loading_info=True)
        wrong = {kind: sorted(info[kind]) for kind in ("missing_keys", "unexpected_keys", "mismatched_keys")
                 if info[kind]}
        if wrong:
            raise ValueError(f"the checkpoint {checkpoint} does not hold this model's weights ({wrong}); "
                             "resuming from it would train a partly re-initialised model.")
        model.load_state_dict(saved.state_dict(), strict=True)
        return True

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        # Trainer would push the whole output folder here ("Model save"), before the final evaluation.
        super().save_model(output_dir, _internal_call=True)

    def create_model_card(self, model_name: str | None = None, **kwargs) -> None:
        """README.md in --output_dir: the DEMS card (model_card.py) from the run summary train.py saved, rather than
        Trainer's generic draft. `push_to_hub` calls it before uploading; Trainer's other card arguments (tags,
        language, ...) have no place in it and are ignored."""
        if not self.is_world_process_zero():
            return
        output_dir = self.args.output_dir
        name = model_name or (self.hub_model_id or os.path.basename(os.path.normpath(output_dir))).split("/")[-1]
        summary = read_run_summary(output_dir)
        write_model_card(output_dir, self.model, summary, model_name=name, repo_id=self.hub_model_id)

    def _push_from_checkpoint(self, checkpoint_folder: str) -> None:
        # Trainer copies only the weights and config files of a checkpoint into --output_dir before uploading it;
        # the remote code that config.json's auto_map names goes along, or that commit would not load.
        if self.is_world_process_zero():
            for code_file in Path(checkpoint_folder).glob("*.py"):
                shutil.copy(code_file, self.args.output_dir)
        super()._push_from_checkpoint(checkpoint_folder)

"""`Trainer` with the two things the DEMS recipe does differently from transformers' defaults."""

import contextlib

from transformers import Trainer


class DemsTrainer(Trainer):
    """- Held-out batches are collated by `eval_data_collator` (plain stacking, integer labels), while training
      batches go through the mixup/cutmix collator given as `data_collator`.
    - Weight decay applies to every parameter, as in the reference (Trainer's default leaves biases and LayerNorm
      weights out); `decay_all_parameters=False` restores Trainer's choice."""

    def __init__(self, *args, eval_data_collator=None, decay_all_parameters: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.eval_data_collator = eval_data_collator
        self.decay_all_parameters = decay_all_parameters

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

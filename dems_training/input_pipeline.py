"""What `train.py` feeds the model, built from the recipe's values (recipe.py): the train and held-out transforms,
the train collator, with `--augment_on_device` the batched augmentation the trainer runs on the device, and the
callback that moves the augmentation schedule on every epoch."""

import logging
from dataclasses import dataclass, field

from transformers import TrainerCallback

from .augmentation import AugmentationSchedule, RandomResizedCropFlip, ResizeNormalize, ScheduledAugmentation
from .batch_augmentation import BatchAugmentation
from .mixup import MixupCutmixCollator, default_collator
from .recipe import augmentation_p0_for
from .torch_data import ProcessorTransform


logger = logging.getLogger(__name__)


@dataclass
class InputPipeline:
    train_transform: object
    eval_transform: object
    train_collator: object
    batch_augmentation: BatchAugmentation | None = None
    callbacks: list = field(default_factory=list)


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


def eval_transform_for(image_processor):
    """The processor's own steps as the fast transform where it can (`ResizeNormalize.from_image_processor`: the
    processor's output within a level of 255, the processor staying what `pipeline` runs); the processor otherwise."""
    fast = ResizeNormalize.from_image_processor(image_processor)
    if fast is None:
        logger.info("held-out images go through the image processor (its settings have no fast equivalent)")
        return ProcessorTransform(image_processor)
    return fast


def build_input_pipeline(recipe_args, config, image_processor) -> InputPipeline:
    """The pieces for `recipe_args` (the resolved recipe), the model's `config` and its `image_processor`: with the
    augmentation schedule (pretrain) a random-resized crop, flip and scheduled colour operations, driven by the
    callback returned with them; without it (finetune) resize and normalise. Mixup/cutmix mix the train batches, in
    the collator or on the device."""
    size, channels = config.image_size, config.num_channels
    mean, std = image_processor.image_mean, image_processor.image_std
    schedule = None
    if recipe_args.augmentation_schedule:
        if recipe_args.augmentation_p0 is None:  # the model's width decides; written back for the model card
            recipe_args.augmentation_p0 = augmentation_p0_for(config.hidden_size)
        p0 = recipe_args.augmentation_p0
        schedule = AugmentationSchedule(p0, p0, p0, decaying=recipe_args.augmentation_decay)
    mixer = MixupCutmixCollator(
        num_classes=config.num_labels,
        mixup_alpha=recipe_args.mixup_alpha,
        cutmix_alpha=recipe_args.cutmix_alpha,
        mix_prob=recipe_args.mixup_prob,
        switch_prob=recipe_args.mixup_switch_prob,
        label_smoothing=recipe_args.label_smoothing,
    )
    crop = {"crop_scale": (recipe_args.crop_scale_min, 1.0), "hflip_prob": recipe_args.hflip_prob}
    eval_transform = eval_transform_for(image_processor)
    if recipe_args.augment_on_device:
        # The workers decode, crop, resize and flip (uint8); colour, normalisation and mixing run on the device.
        if schedule is not None:
            train_transform = RandomResizedCropFlip(size, channels, **crop)
        else:
            train_transform = ResizeNormalize(size, mean, std, channels, normalize=False)
        on_device = BatchAugmentation(mean, std, channels, schedule=schedule, mixer=mixer)
        callbacks = [AugmentationScheduleCallback(on_device)] if schedule is not None else []
        return InputPipeline(train_transform, eval_transform, default_collator, on_device, callbacks)
    if schedule is not None:
        train_transform = ScheduledAugmentation(size, mean, std, channels, schedule=schedule, **crop)
        callbacks = [AugmentationScheduleCallback(train_transform)]
        return InputPipeline(train_transform, eval_transform, mixer, None, callbacks)
    return InputPipeline(ResizeNormalize(size, mean, std, channels), eval_transform, mixer)

"""What `train.py` feeds the model: the train and held-out transforms, the train collator, and, with
`--augment_on_device`, the batched augmentation the trainer runs on the device."""

import logging
from dataclasses import dataclass, field

from .augmentation import AugmentationSchedule, RandomResizedCropFlip, ResizeNormalize, ScheduledAugmentation
from .batch_augmentation import BatchAugmentation
from .callbacks import AugmentationScheduleCallback
from .mixup import MixupCutmixCollator, default_collator
from .torch_data import ProcessorTransform


logger = logging.getLogger(__name__)


@dataclass
class InputPipeline:
    train_transform: object
    eval_transform: object
    train_collator: object
    batch_augmentation: BatchAugmentation | None = None
    callbacks: list = field(default_factory=list)


def eval_transform_for(image_processor):
    """The processor's own steps as the fast transform where it can (`ResizeNormalize.from_image_processor`: the
    processor's output within a level of 255, the processor staying what `pipeline` runs); the processor otherwise."""
    fast = ResizeNormalize.from_image_processor(image_processor)
    if fast is None:
        logger.info("held-out images go through the image processor (its settings have no fast equivalent)")
        return ProcessorTransform(image_processor)
    return fast


def build_input_pipeline(recipe_args, config, image_processor) -> InputPipeline:
    size, channels = config.image_size, config.num_channels
    mean, std = image_processor.image_mean, image_processor.image_std
    schedule = None
    if recipe_args.augmentation_schedule:
        if recipe_args.augmentation_p0 is None:  # the reference: 0.6 for tiny, 0.8 for small (kept for the card)
            recipe_args.augmentation_p0 = 0.8 if config.hidden_size >= 384 else 0.6
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

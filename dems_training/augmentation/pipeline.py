"""The input pipeline of a run: what `train.py` feeds the model, built once from the resolved recipe, the model's
config and its image processor.

- train: with the augmentation schedule (pretrain) a random-resized crop, flip and the scheduled colour operations;
  without it (finetune) resize and normalise. Mixup / cutmix mix the batches in the collator, or, with
  `--augment_on_device`, the colour operations, normalisation and mixing run batched on the training device while
  the data loader workers only decode, crop, resize and flip (uint8).
- held out: the image processor's own steps, as the fast `ResizeNormalize` where it has one.
"""

import logging
from dataclasses import dataclass, field

from ..recipe import augmentation_p0_for
from .mixup import MixupCutmixCollator, default_collator
from .on_device import DeviceAugmentation
from .schedule import AugmentationSchedule, AugmentationScheduleCallback
from .transforms import CpuAugmentation, ProcessorTransform, RandomResizedCropFlip, ResizeNormalize


logger = logging.getLogger(__name__)


@dataclass
class InputPipeline:
    """The per-image transforms (data loader workers run them), the train collator, with `--augment_on_device` the
    batched augmentation the trainer runs on the device, and the callbacks that move the augmentation schedule."""

    train_transform: object
    eval_transform: object
    train_collator: object
    device_augmentation: DeviceAugmentation | None = None
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
    """The pipeline of `recipe_args` (the resolved recipe) for a model of `config`, normalising as `image_processor`
    does."""
    size, channels = config.image_size, config.num_channels
    mean, std = image_processor.image_mean, image_processor.image_std
    eval_transform = eval_transform_for(image_processor)
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
    if recipe_args.augment_on_device:
        if schedule is not None:
            transform = RandomResizedCropFlip(size, channels, **crop)
        else:
            transform = ResizeNormalize(size, mean, std, channels, normalize=False)
        on_device = DeviceAugmentation(mean, std, channels, schedule=schedule, mixer=mixer)
        callbacks = [AugmentationScheduleCallback(on_device)] if schedule is not None else []
        return InputPipeline(transform, eval_transform, default_collator, on_device, callbacks)
    if schedule is not None:
        transform = CpuAugmentation(size, mean, std, channels, schedule=schedule, **crop)
        return InputPipeline(transform, eval_transform, mixer, None, [AugmentationScheduleCallback(transform)])
    return InputPipeline(ResizeNormalize(size, mean, std, channels), eval_transform, mixer)

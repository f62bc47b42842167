"""What `train.py` feeds the model: the train augmentation the recipe builds (recipe.py: transform, collator, the
batched on-device augmentation with `--augment_on_device`, the schedule's callback) and the held-out transform, which
follows the image processor."""

import logging
from dataclasses import dataclass, field

from ..data.torch_data import ProcessorTransform
from ..recipe import build_train_augmentation
from .on_device import BatchAugmentation
from .transforms import ResizeNormalize


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
    """The recipe's train augmentation for `recipe_args` and the model's `config`, normalised as `image_processor`
    normalises, and the held-out transform of `image_processor`."""
    train = build_train_augmentation(recipe_args, config, image_processor.image_mean, image_processor.image_std)
    return InputPipeline(
        train.transform, eval_transform_for(image_processor), train.collator, train.batch_augmentation, train.callbacks
    )

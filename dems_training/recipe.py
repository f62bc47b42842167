"""Every default of the DEMS recipe, and how they meet the command line.

Order of precedence, lowest first: Trainer's own defaults < COMMON_DEFAULTS (Trainer's that the recipe changes) <
STAGE_DEFAULTS (`--stage pretrain|finetune`) < the data set's entry in DATASET_RECIPES < what the user passed.
Values that depend on others are derived from the effective ones (`recipe_defaults`): the peak learning rate from
the global batch (`peak_learning_rate`), the per-device batch from the global batch and the world size, warm-up
from warm-up epochs; the augmentation's first probability from the model's width (`augmentation_p0_for`).

Where is the default learning rate of a finetune on CIFAR100 decided? Here: STAGE_DEFAULTS["finetune"] gives a base
rate of 1e-3 per 256 images, DATASET_RECIPES["cifar100"] changes nothing, the global batch is COMMON_DEFAULTS' 256,
so `peak_learning_rate` gives 1e-3 * 256 / 256 = 1e-3 (2e-3 with --global_batch_size 512).

The train augmentation is built here too, from these values (`build_train_augmentation`): the transform, the
mixup/cutmix collator, and the callback that moves the augmentation schedule every epoch. The rest lives next door:
the held-out transform and how the pieces meet in input_pipeline.py, the per-epoch learning-rate schedule in
lr_schedule.py, the model and its image processor in modeling.py, where each data set lives (Hub id, columns,
splits) in data_sets.py.
"""

import json
from dataclasses import dataclass, field

import torch
from transformers import TrainerCallback
from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

from . import UserInputError
from .augmentation.mixup import MixupCutmixCollator, default_collator
from .augmentation.on_device import BatchAugmentation
from .augmentation.transforms import AugmentationSchedule, RandomResizedCropFlip, ResizeNormalize, ScheduledAugmentation
from .data.loading import preset_name
from .launch import processes_on_node, usable_cpus


STAGES = ("pretrain", "finetune")
REFERENCE_BATCH = 256  # base learning rates are given per 256 images (peak_learning_rate)
# Default data loader workers per process are capped: each holds two batches ahead (at 256 px a float batch of 256
# images is 200 MB), so memory grows with every worker.
MAX_DEFAULT_WORKERS = 16

# Both stages, every data set.
COMMON_DEFAULTS = {
    "global_batch_size": 256,
    "weight_decay": 0.05,
    "adam_beta1": 0.9,
    "adam_beta2": 0.999,
    "min_learning_rate": 1e-6,  # where the cosine ends (lr_schedule.py)
    # Trainer's per-step schedule, for runs without the reference's per-epoch one (epoch_lr_schedule below).
    "lr_scheduler_type": "cosine_with_min_lr",
    "mixup_alpha": 0.8,
    "cutmix_alpha": 1.0,
    "mixup_prob": 1.0,
    "mixup_switch_prob": 0.5,
    "label_smoothing": 0.1,
    "hflip_prob": 0.5,
    "crop_scale_min": 0.2,
    # Trainer defaults that do not suit an epoch-based image recipe.
    "do_train": True,
    "do_eval": True,
    "eval_strategy": "epoch",
    "save_strategy": "epoch",
    "save_total_limit": 2,
    "logging_strategy": "steps",
    "logging_steps": 0.02,  # a ratio: 50 loss points over the run, whatever its length
    "remove_unused_columns": False,
    # TensorBoard traces in --output_dir/runs: the Hub shows them in a model's Metrics tab.
    "report_to": "tensorboard",
    # Every parameter takes part in every forward pass: spare DDP its search for unused ones.
    "ddp_find_unused_parameters": False,
    "output_dir": "outputs/dems",
}

# --stage: pretrain from scratch with the augmentation schedule, then finetune the pretrained model without it.
STAGE_DEFAULTS = {
    "pretrain": {
        "num_train_epochs": 800,
        "base_learning_rate": 5e-4,  # per 256 images: peak_learning_rate
        "warmup_epochs": 10,
        "drop_path_rate": 0.15,
        "attention_probs_dropout_prob": 0.05,
        "augmentation_schedule": True,
    },
    "finetune": {
        "num_train_epochs": 100,
        "base_learning_rate": 1e-3,  # per 256 images: peak_learning_rate
        "warmup_epochs": 0,
        "drop_path_rate": 0.2,
        "attention_probs_dropout_prob": 0.0,
        "augmentation_schedule": False,
    },
}


IMAGENET_MEAN = tuple(IMAGENET_DEFAULT_MEAN)
IMAGENET_STD = tuple(IMAGENET_DEFAULT_STD)
# The reference normalises the MNIST family with mean 0.5 / std 0.5.
HALF = (0.5, 0.5, 0.5)


@dataclass(frozen=True)
class DatasetRecipe:
    """How the reference trains on one data set: its model, its normalisation, and its values on top of the
    stage's."""

    model_preset: str = "tiny-32"  # a DEMS preset; --model_preset names another
    # Model config values on top of the model preset (e.g. a smaller image for digits); a preset the user names with
    # --model_preset is taken as is.
    config_overrides: dict = field(default_factory=dict)
    image_mean: tuple = IMAGENET_MEAN
    image_std: tuple = IMAGENET_STD
    # Image processor settings beyond size / mean / std (the held-out transform, and what `pipeline` does).
    processor_overrides: dict = field(default_factory=dict)
    # Recipe / Trainer defaults on top of the stage's values; flags still override them.
    recipe_overrides: dict = field(default_factory=dict)


# One entry per preset of data_sets.DATASET_PRESETS, under the same name.
DATASET_RECIPES: dict[str, DatasetRecipe] = {
    # A CPU smoke recipe, not the reference's: 8x8 digits upsampled to 16x16 (one region of 85 tokens), a narrow
    # 4-block model whose two merges come late (so that the class token first sees every token), 20 short epochs.
    # Mixup/cutmix are off and the colour schedule is mild: solarize turns white strokes black, and a model this
    # small on 1,437 images needs the clean signal to pass 90% within minutes.
    "digits": DatasetRecipe(
        model_preset="tiny-32",
        image_mean=HALF,
        image_std=HALF,
        config_overrides={
            "image_size": 16,
            "patch_size": 2,
            "hidden_size": 64,
            "num_hidden_layers": 4,
            "num_attention_heads": 4,
            "merge_layers": [3, 4],
            "num_merged_tokens": [32, 16],
            "mlp_ratios": [2.0, 2.0, 2.0],
        },
        recipe_overrides={
            "num_train_epochs": 20,
            "global_batch_size": 16,
            "base_learning_rate": 1.6e-2,  # 1e-3 at batch 16
            "warmup_epochs": 1,
            "mixup_alpha": 0.0,
            "cutmix_alpha": 0.0,
            "augmentation_p0": 0.3,
            "hflip_prob": 0.0,
            "crop_scale_min": 0.6,
            "drop_path_rate": 0.0,
            "attention_probs_dropout_prob": 0.0,
        },
    ),
    # The reference recipe as it stands: tiny-32, ImageNet normalisation, the stage's values.
    "cifar10": DatasetRecipe(),
    "cifar100": DatasetRecipe(),
    "fashion_mnist": DatasetRecipe(image_mean=HALF, image_std=HALF),
    "mnist": DatasetRecipe(image_mean=HALF, image_std=HALF),
    "emnist": DatasetRecipe(image_mean=HALF, image_std=HALF),
    # Held out as the reference does: resize to 300x300 (bilinear), centre crop 256.
    "caltech101": DatasetRecipe(
        model_preset="tiny-256",
        processor_overrides={
            "size": {"height": 300, "width": 300},
            "resample": 2,  # PIL bilinear
            "do_center_crop": True,
            "crop_size": {"height": 256, "width": 256},
        },
    ),
}
# Any other data: a Hub id that is not a preset, or image folders (--train_dir).
GENERIC_RECIPE = DatasetRecipe()


def recipe_for(dataset: str, train_dir: str | None) -> DatasetRecipe:
    """The data set's recipe entry; train.py resolves it once per run and passes it on."""
    name = preset_name(dataset, train_dir)
    return GENERIC_RECIPE if name is None else DATASET_RECIPES[name]


def peak_learning_rate(base_learning_rate: float, global_batch_size: int) -> float:
    """The reference gives its learning rates per 256 images and scales them linearly with the global batch."""
    return base_learning_rate * global_batch_size / REFERENCE_BATCH


def augmentation_p0_for(hidden_size: int) -> float:
    """The first probability of colour jitter, greyscale and solarize when neither --augmentation_p0 nor the data
    set sets one: the reference's 0.6 for its tiny models (width 192), 0.8 for its small ones (width 384)."""
    return 0.8 if hidden_size >= 384 else 0.6


@dataclass
class TrainAugmentation:
    """What the recipe does to the train images: the per-image transform (data-loader workers run it), the batch
    collator, with `--augment_on_device` the batched augmentation the trainer runs on the device, and the callbacks
    that move the augmentation schedule."""

    transform: object
    collator: object
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


def build_train_augmentation(recipe_args, config, image_mean, image_std) -> TrainAugmentation:
    """The train augmentation of `recipe_args` (the resolved recipe) for a model of `config`, normalising with the
    image processor's `image_mean` / `image_std`: with the augmentation schedule (pretrain) a random-resized crop,
    flip and scheduled colour operations, driven by the callback returned with them; without it (finetune) resize
    and normalise. Mixup/cutmix mix the batches, in the collator or on the device."""
    size, channels = config.image_size, config.num_channels
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
        # The workers decode, crop, resize and flip (uint8); colour, normalisation and mixing run on the device.
        if schedule is not None:
            transform = RandomResizedCropFlip(size, channels, **crop)
        else:
            transform = ResizeNormalize(size, image_mean, image_std, channels, normalize=False)
        on_device = BatchAugmentation(image_mean, image_std, channels, schedule=schedule, mixer=mixer)
        callbacks = [AugmentationScheduleCallback(on_device)] if schedule is not None else []
        return TrainAugmentation(transform, default_collator, on_device, callbacks)
    if schedule is not None:
        transform = ScheduledAugmentation(size, image_mean, image_std, channels, schedule=schedule, **crop)
        return TrainAugmentation(transform, mixer, None, [AugmentationScheduleCallback(transform)])
    return TrainAugmentation(ResizeNormalize(size, image_mean, image_std, channels), mixer)


def data_loader_defaults(given: dict, use_cuda: bool, cpus: int, local_processes: int) -> dict:
    """Workers, persistence and pinning for the data loaders, where the user set none of them.

    On CUDA each process gets its share of the node's cores less one (its own: it launches the GPU work), at least
    one worker; workers persist across epochs (no re-forking, the schedule reaches them through shared memory) and
    batches are pinned for asynchronous copies. On the CPU the loading stays in the training process: a tiny-32
    training step of 32 images takes about 7 s there (benchmarks/RESULTS.md) and their transforms a few
    milliseconds, so workers would only take cores from the model."""
    if use_cuda:
        workers = min(max(cpus // max(local_processes, 1) - 1, 1), MAX_DEFAULT_WORKERS)
    else:
        workers = 0
    workers = given.get("dataloader_num_workers", workers)
    return {
        "dataloader_num_workers": workers,
        "dataloader_persistent_workers": use_cuda and workers > 0,
        "dataloader_pin_memory": use_cuda,
    }


def recipe_defaults(given: dict, dataset_overrides: dict, processes: int) -> dict:
    """Defaults for every recipe-controlled option the user did not give, from the stage, the data set's
    `recipe_overrides` and the derived quantities."""
    stage = given.get("stage", "pretrain")
    if stage not in STAGES:
        raise UserInputError(f"--stage={stage!r} must be one of {STAGES}.")
    defaults = {**COMMON_DEFAULTS, **STAGE_DEFAULTS[stage], **dataset_overrides}
    if given.get("do_eval") is False:
        # Trainer turns do_eval back on whenever an eval strategy is set: --do_eval false means no evaluation at all.
        defaults["eval_strategy"] = "no"
    if processes > 1 and not torch.cuda.is_available():
        # torchrun on a machine without GPUs: TrainingArguments only sets up gloo DDP when told to use the CPU.
        defaults["use_cpu"] = True
    use_cuda = torch.cuda.is_available() and not given.get("use_cpu", defaults.get("use_cpu", False))
    defaults.update(data_loader_defaults(given, use_cuda, usable_cpus(), processes_on_node()))

    def effective(name):
        return given.get(name, defaults.get(name))

    accumulation = effective("gradient_accumulation_steps") or 1
    per_step = processes * accumulation  # images per optimizer step for a per-device batch of 1
    if "global_batch_size" in given or "per_device_train_batch_size" not in given:
        global_batch = effective("global_batch_size")
        if global_batch is None or global_batch < 1 or global_batch % per_step:
            raise UserInputError(
                f"--global_batch_size={global_batch} must be a positive multiple of world size x gradient "
                f"accumulation steps = {processes} x {accumulation} = {per_step}, so that every device gets the "
                "same batch."
            )
        per_device = global_batch // per_step
        if "per_device_train_batch_size" in given and given["per_device_train_batch_size"] != per_device:
            raise UserInputError(
                f"--per_device_train_batch_size={given['per_device_train_batch_size']} contradicts "
                f"--global_batch_size={global_batch} over {processes} process(es) with {accumulation} accumulation "
                f"step(s) ({per_device} per device); give one of the two."
            )
        defaults["per_device_train_batch_size"] = per_device
    else:  # only the per-device batch given: the global batch follows from it
        global_batch = given["per_device_train_batch_size"] * per_step
    defaults["global_batch_size"] = global_batch
    defaults["per_device_eval_batch_size"] = effective("per_device_train_batch_size") or defaults[
        "per_device_train_batch_size"
    ]
    defaults["learning_rate"] = peak_learning_rate(effective("base_learning_rate"), global_batch)

    epochs, warmup_epochs = effective("num_train_epochs"), effective("warmup_epochs")
    if effective("do_train") and not epochs > 0:
        raise UserInputError(f"--num_train_epochs={epochs} must be positive: a run of no epochs trains nothing.")
    if "warmup_epochs" not in given and warmup_epochs >= epochs:
        # A run shortened below the default warm-up keeps the default's share of warm-up instead.
        warmup_epochs = epochs * warmup_epochs / defaults["num_train_epochs"]
        defaults["warmup_epochs"] = warmup_epochs
    if warmup_epochs < 0 or (warmup_epochs > 0 and warmup_epochs >= epochs):
        raise UserInputError(
            f"--warmup_epochs={warmup_epochs} must be >= 0 and less than --num_train_epochs={epochs}."
        )
    # Trainer reads warmup_steps below 1 as a fraction of all optimisation steps.
    defaults["warmup_steps"] = warmup_epochs / epochs if warmup_epochs else 0
    # The reference holds one learning rate per epoch (lr_schedule.py); a --lr_scheduler_type given on the command
    # line asks for Trainer's per-step schedule instead.
    defaults["epoch_lr_schedule"] = "lr_scheduler_type" not in given
    if effective("lr_scheduler_type") == "cosine_with_min_lr":
        defaults["lr_scheduler_kwargs"] = json.dumps({"min_lr": effective("min_learning_rate")})
    return defaults

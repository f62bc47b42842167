"""Every default of the DEMS recipe, and the rules by which they meet the command line.

Order of precedence, lowest first: Trainer's own defaults < COMMON_DEFAULTS (Trainer's that the recipe changes) <
STAGE_DEFAULTS (`--stage pretrain|finetune`) < the data set's `recipe_overrides` (its entry in the data-set table,
data/table.py) < what the user passed.
Values that depend on others are derived from the effective ones (`recipe_defaults`): the peak learning rate from
the global batch (`peak_learning_rate`), the per-device batch from the global batch and the world size, warm-up
from warm-up epochs; the augmentation's first probability from the model's width (`augmentation_p0_for`).

Where is the default learning rate of a finetune on CIFAR100 decided? Here: STAGE_DEFAULTS["finetune"] gives a base
rate of 1e-3 per 256 images, the cifar100 entry of the data-set table changes nothing, the global batch is
COMMON_DEFAULTS' 256, so `peak_learning_rate` gives 1e-3 * 256 / 256 = 1e-3 (2e-3 with --global_batch_size 512).

What is built from these values lives with what it builds: the input pipeline in augmentation/pipeline.py, the
per-epoch learning-rate schedule in lr_schedule.py, the model and its image processor in modeling.py.
"""

import json

import torch

from . import UserInputError
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


def peak_learning_rate(base_learning_rate: float, global_batch_size: int) -> float:
    """The reference gives its learning rates per 256 images and scales them linearly with the global batch."""
    return base_learning_rate * global_batch_size / REFERENCE_BATCH


def augmentation_p0_for(hidden_size: int) -> float:
    """The first probability of colour jitter, greyscale and solarize when neither --augmentation_p0 nor the data
    set sets one: the reference's 0.6 for its tiny models (width 192), 0.8 for its small ones (width 384)."""
    return 0.8 if hidden_size >= 384 else 0.6


def data_loader_defaults(given: dict, use_cuda: bool, cpus: int, local_processes: int) -> dict:
    """Workers, persistence and pinning for the data loaders, where the user set none of them.

    On CUDA each process gets its share of the node's cores less one (its own: it launches the GPU work), at least
    one worker; workers persist across epochs (no re-forking, the schedule reaches them through shared memory) and
    batches are pinned for asynchronous copies. On the CPU the loading stays in the training process: a training
    step there takes thousands of times longer than its images' transforms (benchmarks/RESULTS.md), so workers
    would only take cores from the model."""
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

"""The reference recipe's defaults, and how they meet the command line.

Order of precedence, lowest first: Trainer's own defaults < the stage (`--stage pretrain|finetune`, RECIPE.md) <
the data set preset's adjustments (only `digits` has some: a recipe short enough for a CPU) < what the user passed.
Values that depend on others are derived from the effective ones: the peak learning rate from the global batch,
the per-device batch from the global batch and the world size, warm-up from warm-up epochs.
"""

import argparse
import json
import os

import torch

from . import UserInputError


STAGES = ("pretrain", "finetune")
REFERENCE_BATCH = 256  # the peak learning rate is given per 256 images
# Default data loader workers per process are capped: each holds two batches ahead (at 256 px a float batch of 256
# images is 200 MB), so memory grows with every worker.
MAX_DEFAULT_WORKERS = 16

COMMON_DEFAULTS = {
    "global_batch_size": 256,
    "weight_decay": 0.05,
    "adam_beta1": 0.9,
    "adam_beta2": 0.999,
    "min_learning_rate": 1e-6,
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

STAGE_DEFAULTS = {
    "pretrain": {
        "num_train_epochs": 800,
        "base_learning_rate": 5e-4,
        "warmup_epochs": 10,
        "drop_path_rate": 0.15,
        "attention_probs_dropout_prob": 0.05,
        "augmentation_schedule": True,
    },
    "finetune": {
        "num_train_epochs": 100,
        "base_learning_rate": 1e-3,
        "warmup_epochs": 0,
        "drop_path_rate": 0.2,
        "attention_probs_dropout_prob": 0.0,
        "augmentation_schedule": False,
    },
}


def user_given_options(parser: argparse.ArgumentParser, argv: list[str]) -> dict:
    """The options present in `argv`, parsed (so `--lr=1` and `--lr 1` both count), without defaults."""
    saved = [(action, action.default) for action in parser._actions]
    try:
        for action, _ in saved:
            action.default = argparse.SUPPRESS
        namespace, _ = parser.parse_known_args(argv)
    finally:
        for action, default in saved:
            action.default = default
    return vars(namespace)


def world_size() -> int:
    """Processes in the job, from the variables torchrun and `accelerate launch` set (1 for a plain `python`)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def usable_cpus() -> int:
    """The cores this process may run on (its affinity mask, which taskset, cgroup cpusets and SLURM set)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def processes_on_node() -> int:
    """Training processes on this machine: LOCAL_WORLD_SIZE (torchrun, accelerate launch), else WORLD_SIZE."""
    return int(os.environ.get("LOCAL_WORLD_SIZE", os.environ.get("WORLD_SIZE", "1")))


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


def recipe_defaults(given: dict, preset_overrides: dict, processes: int) -> dict:
    """Defaults for every recipe-controlled option the user did not give, from the stage, the data set preset and
    the derived quantities."""
    stage = given.get("stage", "pretrain")
    if stage not in STAGES:
        raise UserInputError(f"--stage={stage!r} must be one of {STAGES}.")
    defaults = {**COMMON_DEFAULTS, **STAGE_DEFAULTS[stage], **preset_overrides}
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
    defaults["learning_rate"] = effective("base_learning_rate") * global_batch / REFERENCE_BATCH

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

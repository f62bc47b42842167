"""What a run leaves in --output_dir beyond Trainer's own files: the resume decision and the model card."""

import json
import logging
import os
import zipfile

from safetensors import SafetensorError, safe_open
from transformers.trainer_callback import TrainerState
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
from transformers.utils import SAFE_WEIGHTS_INDEX_NAME, SAFE_WEIGHTS_NAME, WEIGHTS_INDEX_NAME, WEIGHTS_NAME

from modeling_dems.model_card import read_results, render_model_card

from . import UserInputError


logger = logging.getLogger(__name__)

TRAINER_STATE = "trainer_state.json"  # Trainer writes it last: a checkpoint without it was cut off mid-save
WEIGHT_FILES = (SAFE_WEIGHTS_NAME, SAFE_WEIGHTS_INDEX_NAME, WEIGHTS_NAME, WEIGHTS_INDEX_NAME)


def checkpoint_problem(folder: str) -> str | None:
    """Why Trainer could not resume from `folder`, or None when it holds the trainer state and weights and every
    state file in it parses. A run killed mid-save, or a machine that lost power before the files reached the
    disk, leaves files empty or cut short; Trainer would stop on them at every rerun."""
    names = sorted(e.name for e in os.scandir(folder) if e.is_file())
    if TRAINER_STATE not in names:
        return f"no {TRAINER_STATE}: a run stopped while saving it"
    if not set(WEIGHT_FILES) & set(names):
        return f"no model weights (none of {', '.join(WEIGHT_FILES)})"
    torn = []
    for name in names:
        path = os.path.join(folder, name)
        try:
            if name == TRAINER_STATE:
                TrainerState.load_from_json(path)  # as Trainer reads it on resume
            elif name.endswith(".json"):
                with open(path, encoding="utf-8") as f:
                    json.load(f)
            elif name.endswith((".pt", ".pth", ".bin")):
                # torch.save writes a zip whose directory comes last: a file cut short has none. (Every byte is not
                # read again: a checkpoint holds the optimizer state, several times the model's size.)
                zipfile.ZipFile(path).close()
            elif name.endswith(".safetensors"):
                with safe_open(path, "pt"):  # parses the header and checks the file is as long as it announces
                    pass
        except (OSError, ValueError, TypeError, zipfile.BadZipFile, SafetensorError) as error:
            detail = str(error).strip().splitlines()[0] if str(error).strip() else "empty"
            torn.append(f"{name} does not parse ({type(error).__name__}: {detail})")
    return "; ".join(torn) or None


def complete_checkpoints(output_dir: str) -> list[str]:
    """Checkpoint folders in `output_dir` that were fully written (`checkpoint_problem`), oldest first; each one
    that is not is named in a warning."""
    found = []
    for entry in os.scandir(output_dir):
        name = entry.name
        if entry.is_dir() and name.startswith(PREFIX_CHECKPOINT_DIR + "-") and name.split("-")[-1].isdigit():
            problem = checkpoint_problem(entry.path)
            if problem is None:
                found.append((int(name.split("-")[-1]), entry.path))
            else:
                logger.warning(f"{entry.path} is incomplete and cannot be resumed ({problem}); it is passed over")
    return [path for _, path in sorted(found)]


def find_resume_checkpoint(training_args, overwrite_output_dir: bool) -> str | None:
    """The checkpoint to resume automatically, following transformers' example scripts: the newest complete one
    in a non-empty --output_dir. A non-empty folder without one is refused unless --overwrite_output_dir. A
    --resume_from_checkpoint given by hand must be a complete checkpoint."""
    output_dir = training_args.output_dir
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise UserInputError(f"--output_dir={output_dir!r} is a file; give a folder (a new one, or a run's to resume).")
    if not training_args.do_train:
        return None
    if training_args.resume_from_checkpoint is not None:
        check_resume_checkpoint(training_args.resume_from_checkpoint)
        return None
    if overwrite_output_dir or not os.path.isdir(output_dir) or not os.listdir(output_dir):
        return None
    checkpoints = complete_checkpoints(output_dir)
    if checkpoints:
        logger.warning(
            f"Resuming from {checkpoints[-1]}, the last checkpoint in --output_dir; pass --overwrite_output_dir to "
            "start again from scratch."
        )
        return checkpoints[-1]
    if training_args.process_index != 0:
        # The main process alone decides: it may already have written this run's first files (logs) when another
        # rank looks, and it stops the whole job if the folder must be refused.
        return None
    entries = sorted(os.listdir(output_dir))
    raise UserInputError(
        f"--output_dir={output_dir!r} is not empty ({len(entries)} entries, e.g. {entries[:3]}) and holds no "
        "checkpoint to resume. Choose another folder, or pass --overwrite_output_dir to train into it anyway."
    )


def check_resume_checkpoint(path: str) -> None:
    if not os.path.isdir(path):
        what = "is a file" if os.path.exists(path) else "does not exist"
        raise UserInputError(
            f"--resume_from_checkpoint={path!r} {what}; give a checkpoint-* folder of an earlier run (or leave the "
            "flag out: rerunning the same command resumes from the last complete checkpoint in --output_dir)."
        )
    problem = checkpoint_problem(path)
    if problem is not None:
        raise UserInputError(f"--resume_from_checkpoint={path!r} cannot be resumed: {problem}.")


def recipe_summary(training_args, recipe_args) -> dict:
    return {
        "stage": recipe_args.stage,
        "epochs": training_args.num_train_epochs,
        "global batch size": recipe_args.global_batch_size,
        "processes": training_args.world_size,
        "optimizer": f"AdamW (betas {training_args.adam_beta1}, {training_args.adam_beta2}), weight decay "
        f"{training_args.weight_decay}" + (" on every parameter" if recipe_args.decay_all_parameters else ""),
        "peak learning rate": training_args.learning_rate,
        "schedule": _schedule_summary(training_args, recipe_args),
        "minimum learning rate": recipe_args.min_learning_rate,
        "drop path / attention dropout": f"{recipe_args.drop_path_rate} / {recipe_args.attention_probs_dropout_prob}",
        "mixup / cutmix alpha": f"{recipe_args.mixup_alpha} / {recipe_args.cutmix_alpha} "
        f"(switch prob {recipe_args.mixup_switch_prob}, batch prob {recipe_args.mixup_prob})",
        "label smoothing": recipe_args.label_smoothing,
        "augmentation schedule": "on" if recipe_args.augmentation_schedule else "off (resize + normalise)",
        "mixed precision": "bf16" if training_args.bf16 else "fp16" if training_args.fp16 else "no",
        "seed": training_args.seed,
    }


def _schedule_summary(training_args, recipe_args) -> str:
    if recipe_args.epoch_lr_schedule:
        # the trainer's per-epoch schedule rounds warm-up to whole epochs (lr_schedule.py)
        return f"per-epoch cosine (reference), warm-up {round(recipe_args.warmup_epochs)} epoch(s)"
    # SchedulerType is a str enum: its value, not "SchedulerType.COSINE"
    scheduler = getattr(training_args.lr_scheduler_type, "value", training_args.lr_scheduler_type)
    return f"{scheduler} per step, warm-up {recipe_args.warmup_epochs} epoch(s)"


def write_model_card(trainer, model_args, data_args, recipe_args, data, results: dict) -> str:
    output_dir = trainer.args.output_dir
    dataset = data.source
    base_model = model_args.model_name_or_path
    if base_model is not None and (os.path.exists(base_model) or base_model.endswith(".pth")):
        base_model = None  # only Hub ids go into the card's metadata
    card = render_model_card(
        model_name=os.path.basename(os.path.normpath(output_dir)),
        dataset=dataset,
        recipe=recipe_summary(trainer.args, recipe_args),
        results=read_results(output_dir) or results,
        config=trainer.model.config,
        base_model=base_model,
        num_parameters=sum(p.numel() for p in trainer.model.parameters()),
    )
    path = os.path.join(output_dir, "README.md")
    with open(path, "w", encoding="utf-8") as f:
        f.write(card)
    return path

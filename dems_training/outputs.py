"""What a run leaves in --output_dir beyond Trainer's own files, and how it is read back: the file names, the check
that a weight file reads, the resume decision, and the run summary (`training_summary.json`: data set, recipe, final
results, per-epoch history) with its picture and the model card rendered from it. The Hub export (hub/) reads a
run's folder through these."""

import json
import logging
import math
import os
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path

from safetensors import SafetensorError, safe_open
from transformers.trainer_callback import TrainerState
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
from transformers.utils import SAFE_WEIGHTS_INDEX_NAME, SAFE_WEIGHTS_NAME, WEIGHTS_INDEX_NAME, WEIGHTS_NAME

from . import UserInputError


logger = logging.getLogger(__name__)

TRAINER_STATE = "trainer_state.json"  # Trainer writes it last: a checkpoint without it was cut off mid-save
WEIGHT_FILES = (SAFE_WEIGHTS_NAME, SAFE_WEIGHTS_INDEX_NAME, WEIGHTS_NAME, WEIGHTS_INDEX_NAME)
TORCH_FILE_SUFFIXES = (".pt", ".pth", ".bin")
SUMMARY_FILE = "training_summary.json"
CURVES_FILE = "training_curves.png"
EXPLANATIONS_FILE = "explanations.png"  # a few held-out images explained (explanations.py), shown in the card
RESULT_FILES = ("all_results.json", "eval_results.json", "train_results.json", "test_results.json")


def weight_file_error(path: str | os.PathLike, safe_load: bool = False) -> Exception | None:
    """The error reading the weight file `path` (safetensors, or torch.save's .bin / .pt / .pth) meets, or None.

    A safetensors file must have a header that parses and be as long as the header announces. A torch.save file is
    a zip whose directory comes last, so a file cut short has none: without `safe_load` that directory is all that
    is looked for, since a checkpoint's optimizer state is several times the model's size and reading it whole at
    every resume would cost minutes. With `safe_load` the file is loaded with the safe loader,
    `torch.load(weights_only=True)`, which also refuses a file that carries Python objects (code): for weights that
    are about to be shared."""
    path = Path(path)
    if safe_load and path.suffix != ".safetensors":
        import torch

        try:
            torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # torch.load fails with RuntimeError, EOFError, KeyError, UnpicklingError, ...
            return error
        return None
    try:
        if path.suffix == ".safetensors":
            with safe_open(str(path), "pt"):
                pass
        else:
            zipfile.ZipFile(path).close()
    except (OSError, zipfile.BadZipFile, SafetensorError) as error:
        return error
    return None


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
        error = None
        if name.endswith((".safetensors", *TORCH_FILE_SUFFIXES)):
            error = weight_file_error(path)
        else:
            try:
                if name == TRAINER_STATE:
                    TrainerState.load_from_json(path)  # as Trainer reads it on resume
                elif name.endswith(".json"):
                    with open(path, encoding="utf-8") as f:
                        json.load(f)
            except (OSError, ValueError, TypeError) as caught:
                error = caught
        if error is not None:
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
        "augmentation schedule": _augmentation_summary(recipe_args),
        "mixed precision": "bf16" if training_args.bf16 else "fp16" if training_args.fp16 else "no",
        "seed": training_args.seed,
    }


def _augmentation_summary(recipe_args) -> str:
    if not recipe_args.augmentation_schedule:
        return "off (resize + normalise)"
    p0 = recipe_args.augmentation_p0
    return f"on, cosine decay from p0 {p0}" if recipe_args.augmentation_decay else f"constant at p0 {p0} (no decay)"


def _schedule_summary(training_args, recipe_args) -> str:
    if recipe_args.epoch_lr_schedule:
        # the trainer's per-epoch schedule rounds warm-up to whole epochs (lr_schedule.py)
        return f"per-epoch cosine (reference), warm-up {round(recipe_args.warmup_epochs)} epoch(s)"
    # SchedulerType is a str enum: its value, not "SchedulerType.COSINE"
    scheduler = getattr(training_args.lr_scheduler_type, "value", training_args.lr_scheduler_type)
    return f"{scheduler} per step, warm-up {recipe_args.warmup_epochs} epoch(s)"


# Evaluation log keys that measure speed, not the model: left out of the history.
_SPEED_KEYS = ("eval_runtime", "eval_samples_per_second", "eval_steps_per_second")


def epoch_history(log_history: list[Mapping]) -> list[dict]:
    """One row per epoch of training from Trainer's `state.log_history`: `train_loss`, the mean of the training
    losses logged during the epoch; `learning_rate`, the last rate logged in it; and the held-out metrics of the
    evaluation at its end (`eval_loss`, `eval_top1_accuracy`, ...; the last one if several).

    A log entry at fractional epoch e belongs to epoch ceil(e): Trainer logs after the step, with the loss averaged
    over the steps since the previous log and the rate that step used, and evaluates at e = 1, 2, ... exactly.
    Evaluations after training (from the entry with `train_runtime` on) are the final results, not history."""
    rows: dict[int, dict] = {}
    losses: dict[int, list[float]] = {}
    for entry in log_history:
        if "train_runtime" in entry:
            break
        if "epoch" not in entry:
            continue
        epoch = max(1, math.ceil(entry["epoch"]))
        if "loss" in entry:
            losses.setdefault(epoch, []).append(entry["loss"])
            row = rows.setdefault(epoch, {"epoch": epoch})
            row["step"] = entry.get("step")
            if entry.get("learning_rate") is not None:
                row["learning_rate"] = entry["learning_rate"]
        metrics = {k: v for k, v in entry.items() if k.startswith("eval_") and k not in _SPEED_KEYS}
        if metrics:
            row = rows.setdefault(epoch, {"epoch": epoch})
            row["step"] = entry.get("step")
            row.update(metrics)
    for epoch, values in losses.items():
        rows[epoch]["train_loss"] = sum(values) / len(values)
    return [rows[epoch] for epoch in sorted(rows)]


def run_summary(trainer, model_args, recipe_args, data, results: dict, train_images: int, held_out_images: int,
                base_model_license: str | None = None):
    """The facts of a finished run that the model card shows, as data (written to SUMMARY_FILE).
    `base_model_license`: the license of the weights it started from (`hub.model_card.inherited_license`)."""
    base_model = model_args.model_name_or_path
    if base_model is not None and (os.path.exists(base_model) or base_model.endswith(".pth")):
        base_model = None  # only Hub ids go into the card's metadata
    return {
        "dataset": {
            "name": shareable_dataset_name(data.source),  # the summary is uploaded with the model: no local paths
            "train_images": train_images,
            "held_out_images": held_out_images,
            "classes": len(data.class_names),
        },
        "base_model": base_model,
        # Fine-tuned weights keep the license of the weights they started from (e.g. the reference release's).
        "base_model_license": base_model_license,
        "recipe": recipe_summary(trainer.args, recipe_args),
        # Trainer's *_results.json files: a resumed run's final numbers include those of the earlier process.
        "results": read_results(trainer.args.output_dir) or results,
        "history": epoch_history(trainer.state.log_history),
    }


def write_run_outputs(trainer, summary: dict) -> None:
    """SUMMARY_FILE, the picture of its history (CURVES_FILE), a DEMS model's explanations of a few held-out images
    (EXPLANATIONS_FILE) and the model card rendered from them, in --output_dir. Call on the main process."""
    from .explain.explanations import draw_held_out_examples
    from .training_plot import plot_history

    output_dir = trainer.args.output_dir
    title = os.path.basename(os.path.normpath(output_dir))
    if summary.get("history"):
        plot_history(summary["history"], os.path.join(output_dir, CURVES_FILE), title=title)
        summary = {**summary, "curves": CURVES_FILE}
    model, images = trainer.accelerator.unwrap_model(trainer.model), trainer.eval_dataset
    if draw_held_out_examples(model, trainer.processing_class, images, os.path.join(output_dir, EXPLANATIONS_FILE),
                              title=f"{title} on held-out images"):
        summary = {**summary, "explanations": EXPLANATIONS_FILE}
    with open(os.path.join(output_dir, SUMMARY_FILE), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2)
        f.write("\n")
    trainer.create_model_card()


def read_run_summary(folder: str | os.PathLike) -> dict | None:
    """The SUMMARY_FILE in `folder`, or None when there is none."""
    path = os.path.join(folder, SUMMARY_FILE)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


_NO_DATASET = "evaluation set"  # model-index name when the data set is unknown
_SPLIT_FOLDERS = {"train", "training", "val", "valid", "validation", "test", "eval", "images"}

# A Hub dataset id: "name" or "owner/name". A local path (imagefolder) is not one and stays out of the metadata.
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")


def read_results(folder: str | os.PathLike) -> dict | None:
    """Merge the metrics files that Trainer's `save_metrics` writes into `folder` (all_results.json wins on a
    clash, as it is written last). Returns None when there are none."""
    merged: dict = {}
    for name in reversed(RESULT_FILES):  # lowest priority first
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
            if isinstance(data, dict):
                merged.update(data)
    return merged or None


def shareable_dataset_name(dataset: str | None) -> str:
    """A Hub data set id as it is; anything else with its local paths shortened (see below)."""
    if not dataset:
        return _NO_DATASET
    return dataset if is_hub_dataset_id(dataset) else _without_local_paths(dataset)


def _without_local_paths(text: str) -> str:
    """Replace each local path in `text` by the name of the data set folder: no machine's paths on the Hub.
    `/data/caltech101/train` becomes `caltech101` (split folders name no data set)."""

    def short(match: re.Match) -> str:
        parts = [p for p in re.split(r"[/\\]", match.group(0)) if p not in ("", ".", "..")]
        while len(parts) > 1 and parts[-1].lower() in _SPLIT_FOLDERS:
            parts.pop()
        return parts[-1] if parts else match.group(0)

    return re.sub(r"\S*[/\\]\S*", short, text)


def is_hub_dataset_id(dataset: str | None) -> bool:
    return bool(dataset) and _HUB_ID.match(dataset) is not None and not os.path.exists(dataset)

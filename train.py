#!/usr/bin/env python
"""Train DEMS-ViT image classifiers with the reference recipe on transformers' Trainer.

One GPU, many GPUs, many machines: the same script under `python`, `torchrun` or `accelerate launch`.

    # the built-in offline data set (scikit-learn's handwritten digits), a few minutes on a CPU
    python train.py --output_dir outputs/digits
    # the reference pretrain recipe on CIFAR100, then finetune from it
    accelerate launch --multi_gpu --num_processes 8 train.py --dataset cifar100 --stage pretrain \
        --output_dir outputs/c100-pretrain --bf16
    accelerate launch --multi_gpu --num_processes 8 train.py --dataset cifar100 --stage finetune \
        --model_name_or_path outputs/c100-pretrain --output_dir outputs/c100-finetune --bf16
    # your own image folders (class sub-folders)
    python train.py --train_dir data/train --validation_dir data/val --output_dir outputs/mine
    # Fashion-MNIST offline from its original IDX files (apt-get install dataset-fashion-mnist), and the ViT
    # baseline under the same recipe: does DEMS beat ViT on this data?
    python train.py --dataset fashion_mnist --output_dir outputs/fmnist-dems
    python train.py --dataset fashion_mnist --architecture vit --output_dir outputs/fmnist-vit

Every `TrainingArguments` flag works and overrides the recipe (`--num_train_epochs 50`, `--learning_rate 1e-3`,
`--fp16`, `--report_to wandb`, ...). `--push_to_hub --hub_model_id me/dems-digits` publishes the run once it is
evaluated: weights, remote code (loads with `trust_remote_code=True`), model card and TensorBoard traces.
`--stage` sets the reference defaults (see dems_training/recipe.py); `--global_batch_size` is kept whatever the
number of processes: the per-device batch is derived from it.
"""

import json
import logging
import sys
from dataclasses import dataclass, field

import datasets
import transformers
from transformers import HfArgumentParser, TrainingArguments, set_seed

from dems_training import UserInputError, run_command
from dems_training.augmentation.mixup import default_collator
from dems_training.augmentation.pipeline import InputPipeline, build_input_pipeline
from dems_training.cpu_memory import keep_freed_memory
from dems_training.data.loading import load_data
from dems_training.data.subsets import balanced_subset, split_off_validation
from dems_training.data.table import DATASET_ENTRIES, dataset_entry
from dems_training.data.torch_data import DatasetEpochCallback, TransformedImageDataset
from dems_training.hub.model_card import inherited_license
from dems_training.launch import user_given_options, world_size
from dems_training.lr_schedule import epoch_schedule_for
from dems_training.metrics import TopKAccuracy
from dems_training.modeling import (
    ARCHITECTURES,
    build_image_processor,
    build_model,
    check_model_arguments,
    supported_drop_path_rate,
)
from dems_training.outputs import find_resume_checkpoint, run_summary, write_run_outputs
from dems_training.recipe import STAGES, recipe_defaults
from dems_training.trainer import DemsTrainer


logger = logging.getLogger("train")


@dataclass
class ModelArguments:
    architecture: str = field(
        default="dems",
        metadata={
            "help": "dems: DEMS-ViT. vit: transformers' ViTForImageClassification (DeiT's model without distillation) "
            "with the DEMS config's width, depth, heads and MLP ratio, patch size = the finest DEMS patch, trained "
            "with the same recipe: the baseline. transformers' ViT has no stochastic depth: its drop path is 0.",
            "choices": list(ARCHITECTURES),
        },
    )
    model_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "Start from this model: a saved folder (e.g. a pretrain run's --output_dir), a Hub id, or a "
            "reference-release checkpoint ending in .pth. Leave out to train from random initialisation."
        },
    )
    model_preset: str | None = field(
        default=None,
        metadata={"help": "DEMS preset for a new model: tiny-32, tiny-256, small-32, small-256 (default: the data "
                  "set's, tiny-32 for most)."},
    )
    config_overrides: str | None = field(
        default=None,
        metadata={"help": "Comma-separated DemsConfig overrides for a new model, e.g. "
                  "'image_size=16,num_hidden_layers=6,merge_layers=[3,5]'."},
    )
    ignore_mismatched_sizes: bool = field(
        default=False,
        metadata={"help": "Replace the classifier head when the checkpoint has a different number of classes."},
    )
    cache_dir: str | None = field(default=None, metadata={"help": "Where Hub models and data sets are cached."})
    model_revision: str = field(default="main", metadata={"help": "Hub branch, tag or commit of the model."})
    token: str | None = field(default=None, metadata={"help": "Hub token for private models or data sets."})


@dataclass
class DataArguments:
    dataset: str = field(
        default="digits",
        metadata={"help": f"A data set of the table ({', '.join(DATASET_ENTRIES)}) or any Hub data set id. 'digits' "
                  "is built in and needs no network."},
    )
    dataset_config_name: str | None = field(default=None, metadata={"help": "Hub data set configuration."})
    data_dir: str | None = field(
        default=None,
        metadata={"help": "Folder of an MNIST-format release in IDX files (train-images-idx3-ubyte.gz, ...) for "
                  "--dataset fashion_mnist, mnist or emnist: read instead of the Hub. Without it, fashion_mnist "
                  "falls back to /usr/share/datasets/fashion-mnist (apt-get install dataset-fashion-mnist) when "
                  "the Hub cannot be reached."},
    )
    image_column: str | None = field(default=None, metadata={"help": "Image column (default: the data "
                                                                      "set's, else 'image')."})
    label_column: str | None = field(default=None, metadata={"help": "Label column (default: the data "
                                                                      "set's, else 'label')."})
    train_dir: str | None = field(
        default=None,
        metadata={"help": "Local folder of class sub-folders, or a folder holding train/ and val/ (or test/)."},
    )
    validation_dir: str | None = field(default=None, metadata={"help": "Held-out folder of class sub-folders."})
    train_val_split: float = field(
        default=0.15, metadata={"help": "Fraction of train held out when the data has no held-out split."}
    )
    broken_images: str = field(
        default="skip",
        metadata={"help": "Unreadable image files in a folder: 'skip' them (each path is logged) or 'error'."},
    )
    preprocessing_num_workers: int | None = field(
        default=None,
        metadata={"help": "Processes that check an image folder for unreadable files (default: one per usable "
                  "CPU). The result is cached: a rerun or a resume does not decode the images again."},
    )
    max_train_samples: int | None = field(default=None, metadata={"help": "Use only this many train images."})
    train_samples_per_class: int | None = field(
        default=None,
        metadata={"help": "Train on a class-balanced subset: this many images of each class, drawn with --data_seed "
                  "(else --seed). Every class must have that many."},
    )
    max_eval_samples: int | None = field(default=None, metadata={"help": "Use only this many held-out images."})
    validation_samples_per_class: int | None = field(
        default=None,
        metadata={"help": "Set aside this many train images of each class as a validation set (drawn with "
                  "--validation_seed, before any train subset): evaluations during training use it, and the held-out "
                  "split is evaluated once, at the end, as the test set (test_* metrics)."},
    )
    validation_seed: int = field(
        default=1234,
        metadata={"help": "Seed of the validation draw; fixed, so that runs of every --seed share one validation set."},
    )


@dataclass
class RecipeArguments:
    """The DEMS recipe. Defaults (None here) come from --stage and the data set: dems_training/recipe.py."""

    stage: str = field(default="pretrain", metadata={"help": f"One of {STAGES}: sets the reference defaults."})
    global_batch_size: int | None = field(
        default=None, metadata={"help": "Images per optimizer step over all processes (reference: 256)."}
    )
    base_learning_rate: float | None = field(
        default=None,
        metadata={"help": "Peak learning rate per 256 images (5e-4 pretrain, 1e-3 finetune); --learning_rate "
                  "sets the peak directly."},
    )
    min_learning_rate: float | None = field(default=None, metadata={"help": "End of the cosine (1e-6)."})
    warmup_epochs: float | None = field(default=None, metadata={"help": "Linear warm-up epochs (10 pretrain)."})
    epoch_lr_schedule: bool | None = field(
        default=None,
        metadata={"help": "The reference's schedule: one learning rate per epoch, warm-up from the minimum, then "
                  "cosine (default unless --lr_scheduler_type is given, which selects Trainer's per-step one)."},
    )
    drop_path_rate: float | None = field(default=None, metadata={"help": "Stochastic depth (0.15 / 0.2)."})
    attention_probs_dropout_prob: float | None = field(default=None, metadata={"help": "(0.05 / 0)."})
    mixup_alpha: float | None = field(default=None, metadata={"help": "Mixup Beta alpha (0.8); 0 turns it off."})
    cutmix_alpha: float | None = field(default=None, metadata={"help": "Cutmix Beta alpha (1.0); 0 turns it off."})
    mixup_prob: float | None = field(default=None, metadata={"help": "Chance a batch is mixed (1.0)."})
    mixup_switch_prob: float | None = field(default=None, metadata={"help": "Chance of cutmix over mixup (0.5)."})
    label_smoothing: float | None = field(default=None, metadata={"help": "Label smoothing in the targets (0.1)."})
    augmentation_schedule: bool | None = field(
        default=None,
        metadata={"help": "Train with the decaying augmentation schedule (pretrain) instead of resize + normalise "
                  "(finetune)."},
    )
    augmentation_decay: bool = field(
        default=True,
        metadata={"help": "Fade colour jitter, greyscale and solarize by cosine over training (the paper's schedule). "
                  "False keeps them at --augmentation_p0 throughout: the ablation without the schedule."},
    )
    augmentation_p0: float | None = field(
        default=None, metadata={"help": "Initial probability of colour jitter, greyscale and solarize (0.6 tiny, "
                                        "0.8 small)."}
    )
    crop_scale_min: float | None = field(default=None, metadata={"help": "Random-resized-crop minimum area (0.2)."})
    hflip_prob: float | None = field(default=None, metadata={"help": "Horizontal flip probability (0.5)."})
    augment_on_device: bool = field(
        default=False,
        metadata={"help": "Data loader workers only decode, crop, resize and flip (uint8); colour jitter, greyscale, "
                  "solarize, normalisation and mixup/cutmix run batched on the training device (GPU or CPU)."},
    )
    decay_all_parameters: bool = field(
        default=True,
        metadata={"help": "Weight decay on every parameter, as the reference (False: Trainer's choice, no decay on "
                  "biases and LayerNorm)."},
    )
    seeded_augmentation: bool = field(
        default=False,
        metadata={"help": "Augment image i of epoch e from a generator seeded by (--seed, e, i): the augmentation "
                  "draws are the same whatever the model (DEMS or ViT), and a resumed run draws what an uninterrupted "
                  "one draws."},
    )
    keep_freed_memory: bool = field(
        default=False,
        metadata={"help": "CPU training on Linux: keep freed memory in the process (glibc) rather than returning "
                  "large blocks to the kernel; faster steps, see dems_training/cpu_memory.py."},
    )
    overwrite_output_dir: bool = field(
        default=False,
        metadata={"help": "Train into a non-empty --output_dir that holds no checkpoint to resume (its files may "
                  "be overwritten)."},
    )


def parse_arguments(argv: list[str]):
    """The four argument groups, every default filled in from recipe.py, and the data set's entry in the data-set
    table (resolved here, once per run: it also sets the model, the normalisation and the processor)."""
    parser = HfArgumentParser((ModelArguments, DataArguments, RecipeArguments, TrainingArguments))
    from_json = len(argv) == 1 and argv[0].endswith(".json")
    given = read_json_arguments(argv[0]) if from_json else user_given_options(parser, argv)
    entry = dataset_entry(given.get("dataset", "digits"), given.get("train_dir"))
    defaults = recipe_defaults(given, entry.recipe_overrides, world_size())
    try:
        if from_json:
            groups = parser.parse_dict({**defaults, **given})
        else:
            parser.set_defaults(**defaults)
            groups = parser.parse_args_into_dataclasses(args=argv)
    except ValueError as error:  # TrainingArguments' own checks of the flags, a key of the JSON file that is no flag
        raise UserInputError(str(error)) from None
    return (*groups, entry)


def read_json_arguments(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            given = json.load(f)
    except OSError as error:
        raise UserInputError(f"{path}: cannot read the arguments file ({error.strerror}).") from None
    except ValueError as error:
        raise UserInputError(f"{path}: the arguments file is not valid JSON ({error}).") from None
    if not isinstance(given, dict):
        raise UserInputError(f"{path} must hold a JSON object of flags, e.g. {{\"output_dir\": \"outputs/run\"}}.")
    return given


def setup_logging(training_args: TrainingArguments) -> None:
    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s",
        datefmt="%m/%d/%Y %H:%M:%S",
        handlers=[logging.StreamHandler(sys.stdout)],
    )
    level = training_args.get_process_log_level()
    for log in (logger, logging.getLogger("dems_training")):
        log.setLevel(level)
    datasets.utils.logging.set_verbosity(level)
    transformers.utils.logging.set_verbosity(level)
    transformers.utils.logging.enable_default_handler()
    transformers.utils.logging.enable_explicit_format()


def subset(dataset, limit: int | None, flag: str):
    if limit is None:
        return dataset
    if limit < 1:
        raise UserInputError(f"{flag}={limit} must be a positive number of images.")
    return dataset.select(range(min(limit, len(dataset))))


def log_run_shape(recipe_args: RecipeArguments, training_args: TrainingArguments) -> None:
    logger.warning(
        f"Process rank {training_args.process_index} of world size {training_args.world_size}, device "
        f"{training_args.device}, global batch {recipe_args.global_batch_size} = "
        f"{training_args.per_device_train_batch_size} per device x {training_args.world_size} process(es) x "
        f"{training_args.gradient_accumulation_steps} accumulation step(s), peak lr {training_args.learning_rate:g}"
    )


def transformed_datasets(data, data_args: DataArguments, recipe_args: RecipeArguments, training_args,
                         pipeline: InputPipeline):
    """The train and held-out images as the model sees them, cut to the sizes the flags ask for: (train, evaluated
    during training, test). With --validation_samples_per_class the second is the validation set and the third the
    held-out split; without it the second is the held-out split and there is no third."""
    train_split, validation_split = data.train, None
    if data_args.validation_samples_per_class is not None:
        train_split, validation_split = split_off_validation(
            train_split, data.label_column, data_args.validation_samples_per_class, data_args.validation_seed
        )
        logger.info(f"Validation set: {len(validation_split)} train images ({data_args.validation_samples_per_class} "
                    f"per class, seed {data_args.validation_seed}), outside every train subset")
    if data_args.train_samples_per_class is not None:
        seed = training_args.data_seed if training_args.data_seed is not None else training_args.seed
        train_split = balanced_subset(train_split, data.label_column, data_args.train_samples_per_class, seed)
        logger.info(f"Class-balanced subset: {len(train_split)} train images "
                    f"({data_args.train_samples_per_class} per class, seed {seed})")
    train_dataset = TransformedImageDataset(
        subset(train_split, data_args.max_train_samples, "--max_train_samples"),
        data.image_column, data.label_column, pipeline.train_transform,
        seed=training_args.seed if recipe_args.seeded_augmentation else None,
    )
    held_out = TransformedImageDataset(
        subset(data.eval, data_args.max_eval_samples, "--max_eval_samples"),
        data.image_column, data.label_column, pipeline.eval_transform,
    )
    if validation_split is None:
        return train_dataset, held_out, None
    validation = TransformedImageDataset(
        validation_split, data.image_column, data.label_column, pipeline.eval_transform
    )
    return train_dataset, validation, held_out


def build_trainer(model, image_processor, pipeline: InputPipeline, train_dataset, eval_dataset,
                  recipe_args: RecipeArguments, training_args: TrainingArguments,
                  extra_callbacks=()) -> DemsTrainer:
    callbacks = list(pipeline.callbacks) + list(extra_callbacks)
    if train_dataset.seed is not None:  # --seeded_augmentation: the images' seeds follow the epoch
        callbacks.append(DatasetEpochCallback(train_dataset))
    return DemsTrainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset if training_args.do_train else None,
        eval_dataset=eval_dataset if training_args.do_eval else None,
        data_collator=pipeline.train_collator,
        eval_data_collator=default_collator,
        compute_metrics=TopKAccuracy(top_k=(1, 5)),
        preprocess_logits_for_metrics=TopKAccuracy.keep_top_k,
        processing_class=image_processor,
        callbacks=callbacks,
        device_augmentation=pipeline.device_augmentation,
        decay_all_parameters=recipe_args.decay_all_parameters,
        epoch_schedule=epoch_schedule_for(recipe_args),
    )


def train_model(trainer: DemsTrainer, checkpoint: str | None) -> dict:
    train_result = trainer.train(resume_from_checkpoint=checkpoint)
    trainer.save_model()  # model, config and image processor: what `pipeline` loads
    trainer.log_metrics("train", train_result.metrics)
    trainer.save_metrics("train", train_result.metrics)
    trainer.save_state()
    return train_result.metrics


def evaluate_model(trainer: DemsTrainer, images: int, source: str, test_dataset=None) -> dict:
    """Top-1 and top-5 on the set evaluated during training (eval_*) and, with a validation set, on the held-out
    split as the test set (test_*), once."""
    metrics = trainer.evaluate()
    trainer.log_metrics("eval", metrics)
    trainer.save_metrics("eval", metrics)
    where = "validation images" if test_dataset is not None else f"images of {source}"
    if trainer.is_world_process_zero():
        print(f"Held-out top-1 accuracy: {100 * metrics['eval_top1_accuracy']:.2f}% "
              f"(top-5 {100 * metrics['eval_top5_accuracy']:.2f}%) on {images} {where}")
    if test_dataset is not None:
        test = trainer.evaluate(test_dataset, metric_key_prefix="test")
        trainer.log_metrics("test", test)
        trainer.save_metrics("test", test)
        metrics.update(test)
        if trainer.is_world_process_zero():
            print(f"Test top-1 accuracy: {100 * test['test_top1_accuracy']:.2f}% "
                  f"(top-5 {100 * test['test_top5_accuracy']:.2f}%) on {len(test_dataset)} images of {source}")
    return metrics


def run(argv: list[str], extra_callbacks=()) -> dict:
    """The run `argv` asks for; `extra_callbacks` (TrainerCallbacks) join the recipe's, for callers that run it in
    their own process (benchmarks/gpu_check.py stops its Fashion-MNIST run at a deadline with one)."""
    model_args, data_args, recipe_args, training_args, entry = parse_arguments(argv)
    setup_logging(training_args)
    log_run_shape(recipe_args, training_args)
    if recipe_args.stage == "finetune" and model_args.model_name_or_path is None and training_args.do_train:
        raise UserInputError("--stage finetune needs --model_name_or_path (the pretrain run's folder, a Hub id or a "
                             "reference .pth).")

    # Resume the run in --output_dir if it has a checkpoint; refuse to write over anything else.
    resume_from = find_resume_checkpoint(training_args, recipe_args.overwrite_output_dir)
    set_seed(training_args.seed)
    if recipe_args.keep_freed_memory and not keep_freed_memory():
        raise UserInputError("--keep_freed_memory needs glibc (Linux); this C library has no such setting.")

    check_model_arguments(model_args, recipe_args, entry)  # before the data: a typo must not wait for a download

    # One process loads first and fills datasets' cache (downloads, the image check); the others then read it.
    with training_args.main_process_first(desc="loading the data"):
        data = load_data(
            dataset=data_args.dataset,
            dataset_config_name=data_args.dataset_config_name,
            data_dir=data_args.data_dir,
            image_column=data_args.image_column,
            label_column=data_args.label_column,
            train_dir=data_args.train_dir,
            validation_dir=data_args.validation_dir,
            train_val_split=data_args.train_val_split,
            broken_images=data_args.broken_images,
            cache_dir=model_args.cache_dir,
            token=model_args.token,
            seed=training_args.seed,
            preprocessing_num_workers=data_args.preprocessing_num_workers,
        )
    logger.info(f"Data: {data.source}: {len(data.train)} train / {len(data.eval)} held-out images, "
                f"{len(data.class_names)} classes")

    recipe_args.drop_path_rate = supported_drop_path_rate(model_args.architecture, recipe_args.drop_path_rate)
    model = build_model(model_args, recipe_args, entry, data.class_names)
    image_processor = build_image_processor(model_args.model_name_or_path, model.config, entry)

    pipeline = build_input_pipeline(recipe_args, model.config, image_processor)
    train_dataset, eval_dataset, test_dataset = transformed_datasets(data, data_args, recipe_args, training_args,
                                                                     pipeline)

    trainer = build_trainer(model, image_processor, pipeline, train_dataset, eval_dataset, recipe_args, training_args,
                            extra_callbacks)

    results = {}
    if training_args.do_train:
        results.update(train_model(trainer, training_args.resume_from_checkpoint or resume_from))
    if training_args.do_eval:
        results.update(evaluate_model(trainer, len(eval_dataset), data.source, test_dataset))

    if trainer.is_world_process_zero() and training_args.do_train:
        summary = run_summary(trainer, model_args, recipe_args, data, results, len(train_dataset), len(eval_dataset),
                              base_model_license=inherited_license(model_args.model_name_or_path))
        write_run_outputs(trainer, summary)  # the summary, its plot and the model card
    if training_args.push_to_hub:  # once, with the final results and card (DemsTrainer.save_model does not push)
        trainer.push_to_hub()
    return results


def main(argv: list[str] | None = None) -> int:
    """0 on success; 2 after a user error, printed in one line (`run_command`)."""
    return run_command(run, "train.py", sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())

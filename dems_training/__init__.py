"""Training and sharing DEMS-ViT: what `train.py` and `push_to_hub.py` are made of.

Where things live (docs/architecture.md draws the same map):

    data/           the data-set table (one entry per data set: where it lives, how the reference trains on it) and
                    the loaders: Hub, IDX releases, image folders, scikit-learn's digits; class-balanced subsets
    augmentation/   what the model sees: the per-image transforms, the colour operations on the CPU and on the
                    training device, mixup / cutmix, the augmentation schedule and its callback, the input pipeline
    hub/            sharing: reading and checking a source, the model card, building and uploading the export,
                    the ONNX export
    explain/        what a trained model looks at: saliency through the merges and the scale mix, and their pictures
    metrics/        top-1 / top-5 accuracy, offline
    recipe.py       the recipe's defaults and the rules that derive one value from others
    lr_schedule.py  the reference's per-epoch learning-rate schedule
    trainer.py      `DemsTrainer`, transformers' Trainer with the recipe's differences
    modeling.py     the model and image processor a run trains (DEMS, or the ViT baseline)
    outputs.py      what a run leaves in --output_dir: the weight-file check, the resume decision, the run summary
    launch.py       what the command line and the launcher tell a run (given options, processes, cores)
    config_overrides.py, cpu_memory.py, training_plot.py: `--config_overrides`, `--keep_freed_memory`, the run's plot

No two of these parts import each other (tests/test_layout.py). The user-error type and the command wrapper come
from `modeling_dems.command_line`, the lowest layer, so that every command shares them.
"""

from contextlib import contextmanager

from modeling_dems.command_line import USER_ERROR_EXIT_CODE, UserInputError, report_user_error, run_command


__all__ = [
    "USER_ERROR_EXIT_CODE", "UserInputError", "one_line", "quiet_transformers", "report_user_error", "run_command",
]


# Two helpers of every part that loads a model for a user (hub/, explain/): kept here, below all parts, so that
# neither imports the other for them.
def one_line(error: BaseException, secret: str | None = None) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text.replace(secret, "<token>") if secret else text


@contextmanager
def quiet_transformers():
    """transformers' load report (a table of missing / unexpected keys on stderr) and warnings off while loading:
    what matters in them is checked here and raised as one line."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)


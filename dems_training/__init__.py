"""Training and sharing DEMS-ViT: what `train.py` and `push_to_hub.py` are made of.

Where things live (docs/architecture.md draws the same map):

    data/           the data-set table (one entry per data set: where it lives, how the reference trains on it) and
                    the loaders: Hub, IDX releases, image folders, scikit-learn's digits; class-balanced subsets
    augmentation/   what the model sees: the per-image transforms, the colour operations on the CPU and on the
                    training device, mixup / cutmix, the augmentation schedule and its callback, the input pipeline
    hub/            sharing: reading and checking a source, the model card, building and uploading the export
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

from modeling_dems.command_line import USER_ERROR_EXIT_CODE, UserInputError, report_user_error, run_command


__all__ = ["USER_ERROR_EXIT_CODE", "UserInputError", "report_user_error", "run_command"]

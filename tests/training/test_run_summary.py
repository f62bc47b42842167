"""The run summary's per-epoch history, computed from a Trainer log history by hand, and its picture."""

import numpy as np
from PIL import Image

from dems_training.outputs import epoch_history
from dems_training.training_plot import plot_history


# Two epochs of 4 steps, logged every 2 steps, as Trainer writes `state.log_history`: the loss of a log is the mean
# over the steps since the previous one, the rate is the one its step used; the evaluations land on whole epochs;
# the last entries are the end-of-training summary and the final evaluation.
LOG_HISTORY = [
    {"loss": 2.0, "grad_norm": 1.0, "learning_rate": 1e-6, "epoch": 0.5, "step": 2},
    {"loss": 1.0, "grad_norm": 1.0, "learning_rate": 1e-6, "epoch": 1.0, "step": 4},
    {"eval_loss": 1.5, "eval_top1_accuracy": 0.25, "eval_runtime": 0.1, "eval_samples_per_second": 80.0,
     "eval_steps_per_second": 10.0, "epoch": 1.0, "step": 4},
    {"loss": 0.75, "grad_norm": 1.0, "learning_rate": 1e-3, "epoch": 1.5, "step": 6},
    {"loss": 0.25, "grad_norm": 1.0, "learning_rate": 1e-3, "epoch": 2.0, "step": 8},
    {"eval_loss": 0.75, "eval_top1_accuracy": 0.5, "epoch": 2.0, "step": 8},
    {"train_runtime": 5.0, "train_loss": 1.0, "total_flos": 1.0, "epoch": 2.0, "step": 8},
    {"eval_loss": 0.5, "eval_top1_accuracy": 0.625, "epoch": 2.0, "step": 8},
]


def test_epoch_history_from_the_log():
    assert epoch_history(LOG_HISTORY) == [
        # (2.0 + 1.0) / 2; the log at epoch 1.0 closes epoch 1
        {"epoch": 1, "step": 4, "train_loss": 1.5, "learning_rate": 1e-6, "eval_loss": 1.5, "eval_top1_accuracy": 0.25},
        # (0.75 + 0.25) / 2; the evaluation after training (0.625) is a final result, not this epoch's
        {"epoch": 2, "step": 8, "train_loss": 0.5, "learning_rate": 1e-3, "eval_loss": 0.75, "eval_top1_accuracy": 0.5},
    ]


def test_epoch_history_without_evaluation_or_logs():
    assert epoch_history([]) == []
    only_training = [{"loss": 3.0, "learning_rate": 0.5, "epoch": 0.25, "step": 1},
                     {"loss": 1.0, "learning_rate": 0.5, "epoch": 0.75, "step": 3}]
    assert epoch_history(only_training) == [{"epoch": 1, "step": 3, "train_loss": 2.0, "learning_rate": 0.5}]


def test_plot_is_a_png_of_three_panels(tmp_path):
    path = tmp_path / "curves.png"
    plot_history(epoch_history(LOG_HISTORY), str(path), title="digits")
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size == (1200, 340)  # figsize (12, 3.4) inches at 100 dpi
        pixels = np.asarray(image.convert("L"))
    assert pixels.min() < 100 < pixels.max()  # something is drawn on the white background

"""The augmentation schedule reaches the data loader workers: every image of epoch e is augmented with p(e), in
worker processes, with fresh or persistent workers."""

import math
import os

import pytest
from train_helpers import tiny_run_args

import train
from dems_training.augmentation.transforms import CpuAugmentation


# Data loader worker processes, started afresh or kept across epochs.
pytestmark = pytest.mark.slow


TRAIN_IMAGES, EPOCHS, P0 = 32, 3, 0.6


@pytest.mark.parametrize("persistent", ["false", "true"], ids=["fresh-workers", "persistent-workers"])
def test_each_epoch_uses_its_probabilities_inside_the_workers(tmp_path, monkeypatch, persistent):
    record = tmp_path / "probabilities.txt"
    original_call = CpuAugmentation.__call__

    def recording_call(self, image):
        p = self.current_probabilities()
        # One short line per image, appended: small writes to one file do not interleave between processes.
        with open(record, "a") as f:
            f.write(f"{os.getpid()} {p['color_jitter']:.9f} {p['grayscale']:.9f} {p['solarize']:.9f}\n")
        return original_call(self, image)

    # Workers are forked from this process, so they run the patched method too.
    monkeypatch.setattr(CpuAugmentation, "__call__", recording_call)
    train.run(
        tiny_run_args(
            tmp_path / "out",
            "--dataset", "digits",
            "--num_train_epochs", str(EPOCHS),
            "--augmentation_p0", str(P0),
            "--max_train_samples", str(TRAIN_IMAGES),
            "--global_batch_size", "16",
            "--do_eval", "false",
            "--save_strategy", "no",
            "--dataloader_num_workers", "2",
            "--dataloader_persistent_workers", persistent,
        )
    )
    rows = [line.split() for line in record.read_text().splitlines()]
    assert len(rows) == TRAIN_IMAGES * EPOCHS
    pids = {row[0] for row in rows}
    assert str(os.getpid()) not in pids and len(pids) >= 2, pids  # augmented in the workers, not here
    expected = [0.5 * P0 * (1 + math.cos(math.pi * e / EPOCHS)) for e in range(EPOCHS)]
    for column in (1, 2, 3):
        seen = [float(row[column]) for row in rows]
        for epoch, p in enumerate(expected):
            block = seen[epoch * TRAIN_IMAGES:(epoch + 1) * TRAIN_IMAGES]  # the epochs run one after the other
            assert block == pytest.approx([p] * TRAIN_IMAGES, abs=1e-8), (epoch, sorted(set(block)))

"""Class-balanced subsets of a train split, and the validation set set aside before them, each drawn with a seed
(the same seed gives the same rows)."""

import datasets
import numpy as np

from .. import UserInputError
from .loading import label_array


def balanced_rows(labels: np.ndarray, per_class: int, seed: int, flag: str) -> np.ndarray:
    """Row numbers of `per_class` rows of each class, drawn at random with `seed`, sorted (the same seed gives the
    same rows)."""
    if per_class < 1:
        raise UserInputError(f"{flag}={per_class} must be a positive number of images.")
    rng = np.random.default_rng(seed)
    chosen = []
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        if len(rows) < per_class:
            raise UserInputError(f"{flag}={per_class}: class {int(label)} has only {len(rows)} train images.")
        chosen.append(rng.choice(rows, size=per_class, replace=False))
    return np.sort(np.concatenate(chosen))


def balanced_subset(split: datasets.Dataset, label_column: str, per_class: int, seed: int) -> datasets.Dataset:
    """`per_class` rows of each class, drawn at random with `seed` (the same seed gives the same subset)."""
    rows = balanced_rows(label_array(split, label_column), per_class, seed, "--train_samples_per_class")
    return split.select(rows.tolist())


def split_off_validation(split: datasets.Dataset, label_column: str, per_class: int, seed: int):
    """(rest, validation): `per_class` images of each class set aside as a validation set, drawn with `seed`. Train
    subsets are drawn from the rest, so that no run, whatever its seed, trains on a validation image."""
    rows = balanced_rows(label_array(split, label_column), per_class, seed, "--validation_samples_per_class")
    rest = np.setdiff1d(np.arange(len(split)), rows)
    return split.select(rest.tolist()), split.select(rows.tolist())

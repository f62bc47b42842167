"""Loading a run's data from wherever it lives: the offline `digits` set, Hub data sets (an entry of the data-set
table, table.py, or any id), IDX releases and local image folders, each returned as train / held-out
`datasets.Dataset`s with their image and label columns checked, and the class names."""

import logging
import os
from dataclasses import dataclass

import datasets
from datasets import ClassLabel, DatasetDict

from .. import UserInputError
from ..launch import usable_cpus
from .digits import load_digits_dataset
from .idx import load_idx_release
from .image_folder import find_reference_layout, load_image_folders
from .table import DATASET_ENTRIES, IdxRelease, dataset_entry


logger = logging.getLogger(__name__)


@dataclass
class LoadedData:
    train: datasets.Dataset
    eval: datasets.Dataset
    image_column: str
    label_column: str
    class_names: list[str]
    source: str  # what was loaded, for the logs and the model card


def load_hub_dataset(hub_id: str, config_name: str | None, cache_dir: str | None, token: str | None) -> DatasetDict:
    try:
        return datasets.load_dataset(hub_id, config_name, cache_dir=cache_dir, token=token)
    except ConnectionError as error:  # datasets raises it both offline and with HF_HUB_OFFLINE=1 and no cache
        raise UserInputError(
            f"--dataset={hub_id!r}: cannot reach the Hugging Face Hub and the data set is not in the local cache "
            f"({error}). Way out: train on a local image folder (--train_dir/--validation_dir), or load the data set "
            "once on a machine with network access so that it lands in the cache (HF_HOME), then rerun with "
            "HF_DATASETS_OFFLINE=1."
        ) from None


def read_idx_release(release: IdxRelease, data_dir: str) -> tuple[DatasetDict, str]:
    splits = load_idx_release(data_dir, list(release.class_names), transposed=release.transposed)
    source = f"{release.name} IDX release in {data_dir}"
    logger.info(f"Read the original {release.name} release from its IDX files in {data_dir}")
    return splits, source


def idx_fallback(release: IdxRelease | None, dataset: str, hub_error: UserInputError) -> tuple[DatasetDict, str]:
    """The IDX release in its default folder when the Hub copy cannot be had; else one error with every way out."""
    if release is None:
        raise hub_error
    if release.default_dir is not None and os.path.isdir(release.default_dir):
        logger.warning(f"--dataset={dataset!r}: the Hub copy cannot be reached; reading the IDX release in "
                       f"{release.default_dir} instead")
        return read_idx_release(release, release.default_dir)
    ways = [f"--data_dir DIR with the four IDX files of the {release.name} release"]
    if release.install_hint is not None:
        ways.insert(0, f"`{release.install_hint}` (installs them in {release.default_dir})")
    raise UserInputError(
        f"--dataset={dataset!r}: the Hub copy cannot be reached and it is not in the local cache, and no IDX "
        f"release was found{f' in {release.default_dir}' if release.default_dir else ''}. Way out: "
        f"{' or '.join(ways)}."
    ) from None


def pick_eval_split(splits: DatasetDict, preferred: str, train_split: str = "train") -> str | None:
    for name in (preferred, "validation", "val", "test"):
        if name in splits and name != train_split:
            return name
    return None


def load_data(
    dataset: str = "digits",
    dataset_config_name: str | None = None,
    data_dir: str | None = None,
    image_column: str | None = None,
    label_column: str | None = None,
    train_dir: str | None = None,
    validation_dir: str | None = None,
    train_val_split: float = 0.15,
    broken_images: str = "skip",
    cache_dir: str | None = None,
    token: str | None = None,
    seed: int = 42,
    preprocessing_num_workers: int | None = None,
) -> LoadedData:
    """Load train and held-out data for `train.py` and check the image and label columns. Image folders are checked
    for broken files in `preprocessing_num_workers` processes (default: one per usable CPU)."""
    num_proc = usable_cpus() if preprocessing_num_workers is None else preprocessing_num_workers
    if isinstance(num_proc, bool) or not isinstance(num_proc, int) or num_proc < 1:
        raise UserInputError(f"--preprocessing_num_workers={num_proc!r} must be a positive whole number of processes.")
    if train_dir is not None and data_dir is not None:
        raise UserInputError(f"--train_dir={train_dir!r} and --data_dir={data_dir!r}: give one source of images, an "
                             "image folder or an IDX release, not both.")
    entry = dataset_entry(dataset, train_dir)
    image_column = image_column or entry.image_column
    label_column = label_column or entry.label_column
    if train_dir is not None:
        layout = None if validation_dir else find_reference_layout(train_dir)
        if layout is not None:
            train_dir, validation_dir = layout
        splits = load_image_folders(train_dir, validation_dir, broken_images, num_proc, cache_dir)
        image_column, label_column, source = "image", "label", f"image folder {train_dir}"
    elif validation_dir is not None:
        raise UserInputError(f"--validation_dir={validation_dir!r} needs --train_dir as well.")
    elif data_dir is not None:
        if entry.idx_release is None:
            with_idx = [name for name, e in DATASET_ENTRIES.items() if e.idx_release is not None]
            raise UserInputError(
                f"--data_dir={data_dir!r} is read as an MNIST-format IDX release, which --dataset={dataset!r} does "
                f"not have; use it with --dataset {' / '.join(with_idx)}, or --train_dir for image folders."
            )
        splits, source = read_idx_release(entry.idx_release, data_dir)
    elif dataset == "digits":
        splits, source = load_digits_dataset(), "scikit-learn digits"
    elif dataset == "caltech101":
        raise UserInputError(
            "--dataset=caltech101 has no standard split on the Hub: pass --train_dir pointing at a folder with "
            "train/ and val/ (or test/) class sub-folders, as the reference expects."
        )
    else:
        hub_id = entry.hub_id or dataset
        try:
            splits, source = load_hub_dataset(hub_id, dataset_config_name, cache_dir, token), hub_id
        except UserInputError as hub_error:
            splits, source = idx_fallback(entry.idx_release, dataset, hub_error)

    if "train" not in splits:
        raise UserInputError(f"--dataset={dataset!r} has no 'train' split (it has {sorted(splits)}).")
    eval_name = pick_eval_split(splits, entry.eval_split)
    train = splits["train"]
    if eval_name is None:
        train, held_out = hold_out(train, label_column, train_val_split, seed)
    else:
        held_out = splits[eval_name]

    for split_name, split in (("train", train), ("held-out", held_out)):
        for flag, column in (("--image_column", image_column), ("--label_column", label_column)):
            if column not in split.column_names:
                raise UserInputError(
                    f"{flag}={column!r} is not a column of the {split_name} split of {source}; its columns are "
                    f"{split.column_names}."
                )
    if not isinstance(train.features[image_column], datasets.Image):
        raise UserInputError(
            f"--image_column={image_column!r} holds {train.features[image_column]!r}, not images; name the column "
            f"that holds them (columns: {train.column_names})."
        )
    class_names = label_names(train, label_column)
    for split_name, split in (("train", train), ("held-out", held_out)):
        check_label_range(split, label_column, len(class_names), f"{split_name} split of {source}")
    return LoadedData(train, held_out, image_column, label_column, class_names, source)


def hold_out(train: datasets.Dataset, label_column: str, fraction: float, seed: int):
    """(train, held-out): `fraction` of `train` held out. With `ClassLabel` labels the split is stratified: each
    class keeps its share of the images in both parts (within one image)."""
    if not 0.0 < fraction < 1.0:
        raise UserInputError(
            f"--train_val_split={fraction} must be in (0, 1): the data has no held-out split, so a fraction of the "
            "train split is held out."
        )
    if not isinstance(train.features.get(label_column), ClassLabel):
        logger.info(f"--label_column={label_column!r} is not a ClassLabel: the held-out part is drawn at random, "
                    "not stratified by class")
        parts = train.train_test_split(test_size=fraction, seed=seed)
        return parts["train"], parts["test"]
    try:
        parts = train.train_test_split(test_size=fraction, seed=seed, stratify_by_column=label_column)
    except ValueError as error:  # too few images for a share of every class on both sides
        raise UserInputError(
            f"--train_val_split={fraction}: {len(train)} images cannot be split with every class in both parts "
            f"({error}). Hold out a larger fraction, add images, or give a held-out split (--validation_dir)."
        ) from None
    return parts["train"], parts["test"]


def label_names(train: datasets.Dataset, label_column: str) -> list[str]:
    """Class names from a `ClassLabel` column, else "0".."n-1" from the largest integer label."""
    feature = train.features[label_column]
    if isinstance(feature, ClassLabel):
        return list(feature.names)
    dtype = getattr(feature, "dtype", None)
    if dtype is None or not str(dtype).startswith(("int", "uint")):
        raise UserInputError(
            f"--label_column={label_column!r} holds {feature!r}; it must hold integer class ids or a ClassLabel."
        )
    labels = label_array(train, label_column)
    return [str(i) for i in range(int(labels.max()) + 1)]


def label_array(split: datasets.Dataset, label_column: str):
    """The label column as one numpy array, without decoding the images."""
    return split.select_columns([label_column]).with_format("numpy")[:][label_column]


def check_label_range(split: datasets.Dataset, label_column: str, num_labels: int, where: str) -> None:
    labels = label_array(split, label_column)
    if len(labels) == 0:
        raise UserInputError(f"The {where} is empty.")
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= num_labels:
        bad = low if low < 0 else high
        raise UserInputError(
            f"--label_column={label_column!r}: the {where} has label {bad}, out of range; labels must be class ids "
            f"in [0, {num_labels - 1}] ({num_labels} classes)."
        )

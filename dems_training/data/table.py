"""The data-set table: one entry per data set `--dataset` names, saying both where the data lives (Hub id, columns,
held-out split, an offline IDX release) and how the reference trains on it (model preset and shape, normalisation,
the held-out processor, recipe values on top of the stage's). Any other data (a Hub id not in the table, image
folders) gets `GENERIC_ENTRY`.

The recipe values here sit between the stage's defaults and the user's flags (recipe.py's order of precedence).
"""

from dataclasses import dataclass, field

from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD


IMAGENET_MEAN = tuple(IMAGENET_DEFAULT_MEAN)
IMAGENET_STD = tuple(IMAGENET_DEFAULT_STD)
# The reference normalises the MNIST family with mean 0.5 / std 0.5.
HALF = (0.5, 0.5, 0.5)


@dataclass(frozen=True)
class IdxRelease:
    """An MNIST-format release (IDX files) that stands in for the Hub copy when the Hub cannot be reached."""

    name: str
    class_names: tuple[str, ...]
    default_dir: str | None = None  # where a system package installs it, if one does
    install_hint: str | None = None
    transposed: bool = False  # EMNIST stores images column by column


DIGIT_NAMES = tuple(str(d) for d in range(10))
# The class names of the Hub copy (zalando-datasets/fashion_mnist), so that both sources label alike.
FASHION_MNIST_NAMES = (
    "T - shirt / top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)


@dataclass(frozen=True)
class DatasetEntry:
    """One data set: where it lives and how it is read, then how the reference trains on it."""

    hub_id: str | None = None  # None: local image folders only (--train_dir), or built in (digits)
    image_column: str = "image"
    label_column: str = "label"
    eval_split: str = "test"
    # The original release in IDX files, read with --data_dir or when the Hub is out of reach.
    idx_release: IdxRelease | None = None

    model_preset: str = "tiny-32"  # a DEMS preset; --model_preset names another
    # Model config values on top of the model preset (e.g. a smaller image for digits); a preset the user names with
    # --model_preset is taken as is.
    config_overrides: dict = field(default_factory=dict)
    image_mean: tuple = IMAGENET_MEAN
    image_std: tuple = IMAGENET_STD
    # Image processor settings beyond size / mean / std (the held-out transform, and what `pipeline` does).
    processor_overrides: dict = field(default_factory=dict)
    # Recipe / Trainer defaults on top of the stage's values; flags still override them.
    recipe_overrides: dict = field(default_factory=dict)


DATASET_ENTRIES: dict[str, DatasetEntry] = {
    # scikit-learn's, built in: no network. A CPU smoke recipe, not the reference's: 8x8 digits upsampled to 16x16
    # (one region of 85 tokens), a narrow 4-block model whose two merges come late (so that the class token first
    # sees every token), 20 short epochs. Mixup/cutmix are off and the colour schedule is mild: solarize turns white
    # strokes black, and a model this small on 1,437 images needs the clean signal to pass 90% within minutes.
    "digits": DatasetEntry(
        image_mean=HALF,
        image_std=HALF,
        config_overrides={
            "image_size": 16,
            "patch_size": 2,
            "hidden_size": 64,
            "num_hidden_layers": 4,
            "num_attention_heads": 4,
            "merge_layers": [3, 4],
            "num_merged_tokens": [32, 16],
            "mlp_ratios": [2.0, 2.0, 2.0],
        },
        recipe_overrides={
            "num_train_epochs": 20,
            "global_batch_size": 16,
            "base_learning_rate": 1.6e-2,  # 1e-3 at batch 16
            "warmup_epochs": 1,
            "mixup_alpha": 0.0,
            "cutmix_alpha": 0.0,
            "augmentation_p0": 0.3,
            "hflip_prob": 0.0,
            "crop_scale_min": 0.6,
            "drop_path_rate": 0.0,
            "attention_probs_dropout_prob": 0.0,
        },
    ),
    # The reference recipe as it stands: tiny-32, ImageNet normalisation, the stage's values.
    "cifar10": DatasetEntry("uoft-cs/cifar10", image_column="img"),
    "cifar100": DatasetEntry("uoft-cs/cifar100", image_column="img", label_column="fine_label"),
    "fashion_mnist": DatasetEntry(
        "zalando-datasets/fashion_mnist",
        idx_release=IdxRelease(
            "Fashion-MNIST",
            FASHION_MNIST_NAMES,
            default_dir="/usr/share/datasets/fashion-mnist",
            install_hint="apt-get install dataset-fashion-mnist",
        ),
        image_mean=HALF,
        image_std=HALF,
    ),
    "mnist": DatasetEntry(
        "ylecun/mnist", idx_release=IdxRelease("MNIST", DIGIT_NAMES), image_mean=HALF, image_std=HALF
    ),
    "emnist": DatasetEntry(
        "tanganke/emnist_mnist",
        idx_release=IdxRelease("EMNIST (mnist split)", DIGIT_NAMES, transposed=True),
        image_mean=HALF,
        image_std=HALF,
    ),
    # No standard split on the Hub: the reference reads train/ and val/ (or test/) class folders, and holds out as
    # it does: resize to 300x300 (bilinear), centre crop 256.
    "caltech101": DatasetEntry(
        model_preset="tiny-256",
        processor_overrides={
            "size": {"height": 300, "width": 300},
            "resample": 2,  # PIL bilinear
            "do_center_crop": True,
            "crop_size": {"height": 256, "width": 256},
        },
    ),
}
# Any other data: a Hub id that is not in the table, or image folders (--train_dir).
GENERIC_ENTRY = DatasetEntry()


def entry_name(dataset: str, train_dir: str | None) -> str | None:
    """The name of the table entry --dataset picks, or None for any other data."""
    if train_dir is not None and dataset == "digits":
        # --train_dir alone means "my folders": the default data set name must not pull digits-specific values.
        return None
    return dataset if dataset in DATASET_ENTRIES else None


def dataset_entry(dataset: str, train_dir: str | None) -> DatasetEntry:
    """The data set's entry; train.py resolves it once per run and passes it on."""
    name = entry_name(dataset, train_dir)
    return GENERIC_ENTRY if name is None else DATASET_ENTRIES[name]

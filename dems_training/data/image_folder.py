"""Local image folders in the reference layout (one sub-folder of images per class, named after it), read with
`datasets`' packaged `imagefolder` builder: the class folder names become a `ClassLabel`.

A broken file (unreadable, truncated, not an image) is found before training starts: `Dataset.filter` decodes every
image once, in `--preprocessing_num_workers` processes, with datasets' progress bar. Its result is cached by datasets'
fingerprinting (the folder's file list and modification times, then the filter), so a rerun or a resume reads the
cache instead of decoding again. What happens to a broken file is the user's choice (`--broken_images`): "skip" (the
default) leaves it out and logs its path and the count, "error" stops with the list of paths. Either way a broken
file never reaches a data loader worker, where it would kill a run hours in.
"""

import glob
import io
import logging
import os

import datasets
import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict, Features, Image
from datasets.packaged_modules.imagefolder.imagefolder import ImageFolder
from PIL import Image as PILImage

from .. import UserInputError


logger = logging.getLogger(__name__)

BROKEN_IMAGE_POLICIES = ("skip", "error")
# Folder names that hold the held-out split in the reference layout, in order of preference.
EVAL_SPLIT_FOLDERS = ("val", "validation", "test")
# The file extensions the imagefolder builder reads as images.
IMAGE_EXTENSIONS = tuple(ImageFolder.EXTENSIONS)
# Images per filter batch: small enough that the progress bar moves while large images decode.
CHECK_BATCH_SIZE = 100


def find_reference_layout(root: str) -> tuple[str, str | None] | None:
    """If `root` holds `train/` and `val/` (or `validation/`, `test/`), return (train folder, held-out folder)."""
    train = os.path.join(root, "train")
    if not os.path.isdir(train):
        return None
    for name in EVAL_SPLIT_FOLDERS:
        if os.path.isdir(os.path.join(root, name)):
            return train, os.path.join(root, name)
    return train, None


def scan_class_folders(folder: str, flag: str) -> dict[str, bool]:
    """Each class sub-folder of `folder` (sorted by name), and whether it holds an image file.

    Written here because the imagefolder builder labels an image by the folder it sits in and never sees a folder
    without images: an empty class folder and images in sub-folders of a class folder must be caught by name."""
    if not os.path.exists(folder):
        raise UserInputError(f"{flag}={folder!r} does not exist.")
    if not os.path.isdir(folder):
        raise UserInputError(f"{flag}={folder!r} is a file; give a folder with one sub-folder of images per class.")
    classes = {}
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if not entry.is_dir() or entry.name.startswith("."):
            continue
        inside = [item for item in os.scandir(entry.path) if not item.name.startswith(".")]
        nested = sorted(item.name for item in inside if item.is_dir())
        if nested:
            raise UserInputError(
                f"{flag}={folder!r}: the class folder {entry.name!r} holds sub-folders {nested}; images must sit "
                f"directly in their class folder ({entry.name}/1.jpg), since each image is labelled by its folder."
            )
        classes[entry.name] = any(
            os.path.splitext(item.name)[1].lower() in IMAGE_EXTENSIONS for item in inside if item.is_file()
        )
    if not classes:
        raise UserInputError(
            f"{flag}={folder!r} has no class sub-folders; it must hold one sub-folder of images per class "
            "(e.g. train/cat/1.jpg, train/dog/2.jpg)."
        )
    return classes


def is_readable_image(image: dict) -> bool:
    """Decode the whole image (`Image.verify` alone misses truncated files); `image` is an undecoded `Image` value."""
    try:
        with PILImage.open(io.BytesIO(image["bytes"]) if image["bytes"] is not None else image["path"]) as opened:
            opened.load()
        return True
    except Exception:  # PIL raises many types (OSError, SyntaxError, ValueError, DecompressionBombError...)
        return False


def readable_images(images: list[dict]) -> list[bool]:
    return [is_readable_image(image) for image in images]


def image_paths(undecoded: Dataset) -> list[str]:
    """The file path of each row of an undecoded image column, read as one Arrow column (row by row is slow)."""
    images = undecoded.select_columns(["image"]).with_format("arrow")[:]["image"]
    return images.combine_chunks().field("path").to_pylist()


def drop_broken_images(split: Dataset, folder: str, flag: str, broken_images: str, num_proc: int) -> Dataset:
    """`split` without its unreadable images, checked in `num_proc` processes (or refused, with "error")."""
    undecoded = split.cast_column("image", Image(decode=False))  # only the feature changes: no data is rewritten
    readable = undecoded.filter(
        readable_images,
        input_columns="image",
        batched=True,
        batch_size=CHECK_BATCH_SIZE,
        num_proc=min(num_proc, len(split)) if num_proc > 1 else None,
        desc=f"Checking the images of {flag}",
    )
    if len(readable) < len(undecoded):
        kept = set(image_paths(readable))
        broken = [path for path in image_paths(undecoded) if path not in kept]
        listing = ", ".join(broken)
        if broken_images == "error":
            raise UserInputError(
                f"{flag}={folder!r}: {len(broken)} image file(s) cannot be read: {listing}. Remove or repair them, "
                "or pass --broken_images skip to leave them out."
            )
        logger.warning(f"{flag}={folder!r}: skipped {len(broken)} unreadable image file(s): {listing}")
    if len(readable) == 0:
        raise UserInputError(f"{flag}={folder!r} holds no readable images.")
    return readable.cast_column("image", Image())


def refuse_empty_classes(folder: str, flag: str, empty: list[str]) -> None:
    # A class without a training image gets a head output that nothing teaches (a held-out folder may lack one).
    if empty:
        raise UserInputError(
            f"{flag}={folder!r}: the class folder(s) {empty} hold no readable images; every class needs training "
            "images. Add some, or remove the folder."
        )


def load_image_folders(
    train_dir: str,
    validation_dir: str | None = None,
    broken_images: str = "skip",
    num_proc: int = 1,
    cache_dir: str | None = None,
) -> DatasetDict:
    """The "train" split (and "validation" with `validation_dir`), columns `image` and `label`: a `ClassLabel` of the
    train folder's class names. A held-out folder's images get the train id of their class, even when it lacks
    classes; a class folder there that the train folder lacks is an error."""
    if broken_images not in BROKEN_IMAGE_POLICIES:
        raise UserInputError(f"--broken_images={broken_images!r} must be one of {BROKEN_IMAGE_POLICIES}.")
    folders = {"train": (train_dir, "--train_dir")}
    if validation_dir:
        folders["validation"] = (validation_dir, "--validation_dir")
    scans = {split: scan_class_folders(folder, flag) for split, (folder, flag) in folders.items()}
    class_names = list(scans["train"])
    refuse_empty_classes(train_dir, "--train_dir", [name for name, has in scans["train"].items() if not has])
    if validation_dir:
        unknown = sorted(set(scans["validation"]) - set(class_names))
        if unknown:
            raise UserInputError(
                f"--validation_dir={validation_dir!r} has class folders {unknown} that the train folder does not "
                "have; the held-out folder must use the train folder's class names."
            )
        if not any(scans["validation"].values()):
            raise UserInputError(f"--validation_dir={validation_dir!r} holds no image files in its class folders.")
    # One pattern per class folder with images (a pattern that matches nothing is an error in datasets).
    data_files = {
        split: [os.path.join(glob.escape(folders[split][0]), glob.escape(name), "*") for name in scan if scan[name]]
        for split, scan in scans.items()
    }
    features = Features({"image": Image(), "label": ClassLabel(names=class_names)})
    loaded = datasets.load_dataset(
        "imagefolder", data_files=data_files, features=features, drop_labels=False, drop_metadata=True,
        cache_dir=cache_dir,
    )  # fmt: skip
    splits = DatasetDict(
        {split: drop_broken_images(loaded[split], *folders[split], broken_images, num_proc) for split in folders}
    )
    labels = splits["train"].select_columns(["label"]).with_format("numpy")[:]["label"]
    counts = np.bincount(labels, minlength=len(class_names))
    refuse_empty_classes(train_dir, "--train_dir", [class_names[i] for i in np.flatnonzero(counts == 0)])
    return splits

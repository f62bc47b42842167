"""Local image folders in the reference layout: one sub-folder per class, named after it.

A broken file (unreadable, truncated, not an image) is found before training starts, by decoding every image once.
What happens then is the user's choice (`--broken_images`): "skip" (the default) leaves each broken file out and
logs its path and the count, "error" stops with the list of paths. Either way a broken file never reaches a data
loader worker, where it would kill a run hours in.
"""

import logging
import os

from datasets import ClassLabel, Dataset, Features, Image
from PIL import Image as PILImage

from . import UserInputError


logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
BROKEN_IMAGE_POLICIES = ("skip", "error")
# Folder names that hold the held-out split in the reference layout, in order of preference.
EVAL_SPLIT_FOLDERS = ("val", "validation", "test")


def find_reference_layout(root: str) -> tuple[str, str | None] | None:
    """If `root` holds `train/` and `val/` (or `validation/`, `test/`), return (train folder, held-out folder)."""
    train = os.path.join(root, "train")
    if not os.path.isdir(train):
        return None
    for name in EVAL_SPLIT_FOLDERS:
        if os.path.isdir(os.path.join(root, name)):
            return train, os.path.join(root, name)
    return train, None


def list_class_folders(folder: str, flag: str) -> list[str]:
    if not os.path.isdir(folder):
        raise UserInputError(f"{flag}={folder!r} is not a folder.")
    classes = sorted(e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))
    if not classes:
        raise UserInputError(
            f"{flag}={folder!r} has no class sub-folders; it must hold one sub-folder of images per class "
            "(e.g. train/cat/1.jpg, train/dog/2.jpg)."
        )
    return classes


def is_readable_image(path: str) -> bool:
    """Decode the whole file: `Image.verify` alone misses truncated files."""
    try:
        with PILImage.open(path) as image:
            image.load()
        return True
    except Exception:  # PIL raises many types (OSError, SyntaxError, ValueError, DecompressionBombError...)
        return False


def load_image_folder(folder: str, flag: str, class_names: list[str] | None = None, broken_images: str = "skip"):
    """Build a `datasets.Dataset` with columns `image` and `label` (a `ClassLabel` of the sub-folder names) from
    `folder`. `class_names` (from the train folder) fixes the label ids of a held-out folder; a class folder there
    that the train folder lacks is an error."""
    if broken_images not in BROKEN_IMAGE_POLICIES:
        raise UserInputError(f"--broken_images={broken_images!r} must be one of {BROKEN_IMAGE_POLICIES}.")
    found = list_class_folders(folder, flag)
    is_train_folder = class_names is None
    if is_train_folder:
        class_names = found
    unknown = sorted(set(found) - set(class_names))
    if unknown:
        raise UserInputError(
            f"{flag}={folder!r} has class folders {unknown} that the train folder does not have; the held-out "
            "folder must use the train folder's class names."
        )
    paths, labels, broken = [], [], []
    for label, name in enumerate(class_names):
        class_dir = os.path.join(folder, name)
        if not os.path.isdir(class_dir):
            continue
        for root, _, files in sorted(os.walk(class_dir)):
            for file in sorted(files):
                if not file.lower().endswith(IMAGE_EXTENSIONS):
                    continue
                path = os.path.join(root, file)
                if is_readable_image(path):
                    paths.append(path)
                    labels.append(label)
                else:
                    broken.append(path)
    if broken:
        listing = ", ".join(broken)
        if broken_images == "error":
            raise UserInputError(
                f"{flag}={folder!r}: {len(broken)} image file(s) cannot be read: {listing}. Remove or repair them, "
                "or pass --broken_images skip to leave them out."
            )
        logger.warning(f"{flag}={folder!r}: skipped {len(broken)} unreadable image file(s): {listing}")
    if not paths:
        raise UserInputError(f"{flag}={folder!r} holds no readable images with extensions {IMAGE_EXTENSIONS}.")
    present = set(labels)
    empty = [name for label, name in enumerate(class_names) if label not in present]
    if is_train_folder and empty:
        # A class without a training image gets a head output that nothing teaches (a held-out folder may lack one).
        raise UserInputError(
            f"{flag}={folder!r}: the class folder(s) {empty} hold no readable images; every class needs training "
            "images. Add some, or remove the folder."
        )
    features = Features({"image": Image(), "label": ClassLabel(names=class_names)})
    dataset = Dataset.from_dict({"image": paths, "label": labels}, features=features)
    dataset.info.description = f"{len(broken)} unreadable file(s) skipped"
    return dataset

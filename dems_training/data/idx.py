"""The original MNIST-format releases (Fashion-MNIST, MNIST, EMNIST) read from their IDX files, offline.

An IDX file is a big-endian header (two zero bytes, a type byte, the number of dimensions), one 4-byte size per
dimension, then the values. Images are `idx3` (count, rows, cols) of unsigned bytes, labels `idx1` (count). The
releases ship them gzipped (`train-images-idx3-ubyte.gz`) or plain. Written here because neither `datasets` nor
transformers reads IDX, and torchvision (which does) is not a dependency.

The result has the columns and features of the Hub copies (`image`: `Image`, `label`: `ClassLabel`), so that
`train.py` does not care where the data came from.
"""

import gzip
import os
import zlib

import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict, Features, Image

from .. import UserInputError


IDX_UNSIGNED_BYTE = 0x08
# File stems of the train and test splits; a release may prefix them (EMNIST: "emnist-mnist-train-images-...").
IDX_STEMS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
IDX_TEST_STEMS_EMNIST = ("test-images-idx3-ubyte", "test-labels-idx1-ubyte")


class IdxFormatError(UserInputError):
    """An IDX file that cannot be what it claims to be: the message names the file and what is wrong."""


def _read_bytes(path: str) -> bytes:
    try:
        if path.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                return f.read()
        with open(path, "rb") as f:
            return f.read()
    except (OSError, EOFError, zlib.error) as error:  # gzip raises BadGzipFile (an OSError) or EOFError when cut
        raise IdxFormatError(f"{path}: cannot read it as {'gzip' if path.endswith('.gz') else 'a file'} ({error}); "
                             "the download may be truncated or corrupt.") from None


def read_idx(path: str, ndim: int) -> np.ndarray:
    """The array stored in an IDX file of unsigned bytes with `ndim` dimensions (3: images, 1: labels)."""
    data = _read_bytes(path)
    if len(data) < 4:
        raise IdxFormatError(f"{path}: {len(data)} bytes, too short for an IDX header.")
    zero, dtype_code, file_ndim = int.from_bytes(data[:2], "big"), data[2], data[3]
    magic = int.from_bytes(data[:4], "big")
    expected_magic = (IDX_UNSIGNED_BYTE << 8) | ndim
    if zero != 0 or dtype_code != IDX_UNSIGNED_BYTE or file_ndim != ndim:
        raise IdxFormatError(
            f"{path}: magic number 0x{magic:08x}, expected 0x{expected_magic:08x} (unsigned bytes, {ndim} "
            f"dimension{'s' if ndim > 1 else ''}); this is not an IDX {'image' if ndim == 3 else 'label'} file."
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise IdxFormatError(f"{path}: {len(data)} bytes, too short for the {ndim} sizes of its header.")
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape))
    if len(data) - header != expected:
        raise IdxFormatError(
            f"{path}: the header promises shape {shape} ({expected} bytes of values) but the file holds "
            f"{len(data) - header}; it is truncated or not an IDX file."
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def find_idx_file(data_dir: str, stem: str) -> str | None:
    """The file in `data_dir` whose name ends with `stem` or `stem.gz` (a prefix such as "emnist-mnist-" is
    allowed); None if there is none. Two candidates are an error: which one was meant cannot be guessed."""
    found = sorted(
        name for name in os.listdir(data_dir) if name.endswith((stem, stem + ".gz")) and not name.startswith(".")
    )
    if len(found) > 1:
        raise UserInputError(f"--data_dir={data_dir!r} holds several files for {stem}: {found}; keep one.")
    return os.path.join(data_dir, found[0]) if found else None


def read_idx_split(images_path: str, labels_path: str, transposed: bool = False) -> tuple[np.ndarray, np.ndarray]:
    images, labels = read_idx(images_path, 3), read_idx(labels_path, 1)
    if len(images) != len(labels):
        raise IdxFormatError(
            f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} labels; the two "
            "files must come from the same split of the same release."
        )
    if transposed:  # EMNIST stores each image column by column
        images = images.transpose(0, 2, 1)
    return images, labels


def _examples(images: np.ndarray, labels: np.ndarray):
    for image, label in zip(images, labels, strict=True):
        yield {"image": image, "label": int(label)}


def load_idx_release(data_dir: str, class_names: list[str], transposed: bool = False) -> DatasetDict:
    """{"train", "test"} splits of `image` (grey PIL, through `datasets.Image`) and `label` (`ClassLabel` with
    `class_names`). The Arrow tables land in the `datasets` cache, so the next run reads them back instead of
    encoding the images again."""
    if not os.path.isdir(data_dir):
        raise UserInputError(f"--data_dir={data_dir!r} is not a folder.")
    features = Features({"image": Image(), "label": ClassLabel(names=list(class_names))})
    splits = {}
    for split, stems in IDX_STEMS.items():
        paths = [find_idx_file(data_dir, stem) for stem in stems]
        if split == "test" and None in paths:
            emnist_paths = [find_idx_file(data_dir, stem) for stem in IDX_TEST_STEMS_EMNIST]
            if None not in emnist_paths:
                paths = emnist_paths
        missing = [stem for stem, path in zip(stems, paths, strict=True) if path is None]
        if missing:
            raise UserInputError(
                f"--data_dir={data_dir!r} has no {' or '.join(missing)}[.gz]: an MNIST-format release holds "
                f"{', '.join(s + '.gz' for pair in IDX_STEMS.values() for s in pair)}."
            )
        images, labels = read_idx_split(*paths, transposed=transposed)
        if len(labels) and int(labels.max()) >= len(class_names):
            raise IdxFormatError(
                f"{paths[1]} has label {int(labels.max())}, out of range for the {len(class_names)} classes "
                f"{class_names[:3]}...; is this the release of another data set?"
            )
        # The fingerprint comes from the generator's arguments (the arrays' bytes), so a changed file is re-read.
        splits[split] = Dataset.from_generator(
            _examples, features=features, gen_kwargs={"images": images, "labels": labels}
        )
    return DatasetDict(splits)

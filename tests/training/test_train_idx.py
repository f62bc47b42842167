"""MNIST-format IDX releases read offline: files written here byte by byte (gzip and plain), their images, labels
and class names, each malformed file's error, and the Hub -> IDX fallback of `--dataset fashion_mnist`."""

import dataclasses
import gzip
import struct

import numpy as np
import pytest
from datasets import ClassLabel, Image
from fragments import raises_naming

from dems_training import UserInputError
from dems_training.data import loading, table
from dems_training.data.idx import IdxFormatError, load_idx_release, read_idx
from dems_training.data.loading import load_data
from dems_training.data.table import FASHION_MNIST_NAMES


def idx_bytes(array: np.ndarray, magic_type: int = 0x08) -> bytes:
    """The IDX encoding as the format defines it: 0, 0, type, ndim, then big-endian uint32 sizes, then the bytes."""
    header = bytes([0, 0, magic_type, array.ndim]) + b"".join(struct.pack(">I", n) for n in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write(path, data: bytes, compress: bool):
    if compress:
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)
    return path


def make_release(folder, n_train=6, n_test=4, compress=True, prefix=""):
    """Images whose pixel (r, c) of image i is 10*i + r + 2*c (so orientation is checked), labels i % 3."""
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if compress else ""
    arrays = {}
    for split, stem, n in (("train", "train", n_train), ("test", "t10k", n_test)):
        rows, cols = np.meshgrid(np.arange(5), np.arange(4), indexing="ij")
        images = np.stack([10 * i + rows + 2 * cols for i in range(n)]).astype(np.uint8)  # (n, 5, 4)
        labels = (np.arange(n) % 3).astype(np.uint8)
        write(folder / f"{prefix}{stem}-images-idx3-ubyte{suffix}", idx_bytes(images), compress)
        write(folder / f"{prefix}{stem}-labels-idx1-ubyte{suffix}", idx_bytes(labels), compress)
        arrays[split] = (images, labels)
    return arrays


@pytest.mark.parametrize("compress", [True, False])
def test_release_reads_images_labels_and_class_names(tmp_path, compress):
    arrays = make_release(tmp_path / "release", compress=compress)
    splits = load_idx_release(str(tmp_path / "release"), ["a", "b", "c"])
    assert set(splits) == {"train", "test"}
    for split, (_, labels) in arrays.items():
        data = splits[split]
        assert isinstance(data.features["image"], Image)
        assert data.features["label"] == ClassLabel(names=["a", "b", "c"])
        assert len(data) == len(labels)
        for i in range(len(labels)):
            picture = data[i]["image"]
            assert picture.mode == "L" and picture.size == (4, 5)  # PIL sizes are (width, height)
            pixels = np.asarray(picture)
            assert pixels[0, 0] == 10 * i and pixels[4, 0] == 10 * i + 4 and pixels[0, 3] == 10 * i + 6
            assert data[i]["label"] == i % 3


def test_emnist_layout_prefixed_names_and_column_major_images(tmp_path):
    make_release(tmp_path / "emnist", prefix="emnist-mnist-")
    for kind in ("images-idx3", "labels-idx1"):  # EMNIST names its test files "test", not "t10k"
        old = tmp_path / "emnist" / f"emnist-mnist-t10k-{kind}-ubyte.gz"
        old.rename(tmp_path / "emnist" / f"emnist-mnist-test-{kind}-ubyte.gz")
    splits = load_idx_release(str(tmp_path / "emnist"), [str(d) for d in range(10)], transposed=True)
    assert len(splits["test"]) == 4
    pixels = np.asarray(splits["train"][1]["image"])
    assert pixels.shape == (4, 5)
    assert pixels[0, 4] == 10 + 4 and pixels[3, 0] == 10 + 6  # (r, c) of the file is (c, r) of the image


def test_read_idx_header_and_values(tmp_path):
    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    path = write(tmp_path / "labels-idx1-ubyte", idx_bytes(labels), compress=False)
    np.testing.assert_array_equal(read_idx(str(path), 1), labels)


def test_truncated_gzip_names_the_file(tmp_path):
    make_release(tmp_path / "r")
    path = tmp_path / "r" / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:40])
    with raises_naming(IdxFormatError, "train-images-idx3-ubyte.gz", "truncated"):
        load_idx_release(str(tmp_path / "r"), ["a", "b", "c"])


def test_wrong_magic_number_names_the_file_and_both_numbers(tmp_path):
    make_release(tmp_path / "r")
    images = np.zeros((6, 5, 4), dtype=np.uint8)
    write(tmp_path / "r" / "train-images-idx3-ubyte.gz", idx_bytes(images, magic_type=0x0D), compress=True)
    with raises_naming(IdxFormatError, "train-images-idx3-ubyte.gz", "0x00000d03", "0x00000803"):
        load_idx_release(str(tmp_path / "r"), ["a", "b", "c"])


def test_labels_file_given_for_images_is_refused(tmp_path):
    make_release(tmp_path / "r")
    labels = np.zeros(6, dtype=np.uint8)
    write(tmp_path / "r" / "train-images-idx3-ubyte.gz", idx_bytes(labels), compress=True)
    with raises_naming(IdxFormatError, "train-images-idx3-ubyte.gz", "image"):
        load_idx_release(str(tmp_path / "r"), ["a", "b", "c"])


def test_short_values_are_refused(tmp_path):
    images = np.zeros((6, 5, 4), dtype=np.uint8)
    path = write(tmp_path / "x-idx3-ubyte", idx_bytes(images)[:-7], compress=False)
    with raises_naming(IdxFormatError, "x-idx3-ubyte", "(6, 5, 4)", "120", "113"):
        read_idx(str(path), 3)


def test_image_and_label_counts_must_agree(tmp_path):
    make_release(tmp_path / "r")
    write(tmp_path / "r" / "t10k-labels-idx1-ubyte.gz", idx_bytes(np.zeros(3, dtype=np.uint8)), compress=True)
    names = ("t10k-images-idx3-ubyte.gz", "4 images", "t10k-labels-idx1-ubyte.gz", "3 labels")
    with raises_naming(IdxFormatError, *names):
        load_idx_release(str(tmp_path / "r"), ["a", "b", "c"])


def test_label_beyond_the_class_names_is_refused(tmp_path):
    make_release(tmp_path / "r")
    with raises_naming(IdxFormatError, "label 2", "2 classes"):
        load_idx_release(str(tmp_path / "r"), ["a", "b"])


def test_missing_file_lists_what_a_release_holds(tmp_path):
    make_release(tmp_path / "r")
    (tmp_path / "r" / "t10k-labels-idx1-ubyte.gz").unlink()
    with raises_naming(UserInputError, "--data_dir", "t10k-labels-idx1-ubyte"):
        load_idx_release(str(tmp_path / "r"), ["a", "b", "c"])


def test_data_dir_gives_the_hub_columns_and_fashion_names(tmp_path):
    make_release(tmp_path / "fmnist")
    data = load_data(dataset="fashion_mnist", data_dir=str(tmp_path / "fmnist"))
    assert data.class_names == list(FASHION_MNIST_NAMES)
    assert data.class_names[0] == "T - shirt / top" and data.class_names[9] == "Ankle boot"
    assert (data.image_column, data.label_column) == ("image", "label")
    assert len(data.train) == 6 and len(data.eval) == 4  # the release's own test split is held out
    assert "Fashion-MNIST IDX release in" in data.source


def test_data_dir_and_train_dir_together_are_refused(tmp_path):
    with raises_naming(UserInputError, "--train_dir", "--data_dir"):
        load_data(dataset="fashion_mnist", data_dir=str(tmp_path), train_dir=str(tmp_path))


def test_data_dir_for_a_data_set_without_an_idx_release_is_refused(tmp_path):
    with raises_naming(UserInputError, "--data_dir", "--dataset='cifar10'"):
        load_data(dataset="cifar10", data_dir=str(tmp_path))


def _hub_unreachable(*args, **kwargs):
    raise UserInputError("cannot reach the Hugging Face Hub (test)")


@pytest.fixture
def offline_fashion_mnist(monkeypatch):
    """--dataset fashion_mnist with the Hub unreachable and its IDX default folder moved to `folder`."""

    def move_default_dir(folder):
        entry = table.DATASET_ENTRIES["fashion_mnist"]
        release = dataclasses.replace(entry.idx_release, default_dir=str(folder))
        moved = dataclasses.replace(entry, idx_release=release)
        monkeypatch.setitem(table.DATASET_ENTRIES, "fashion_mnist", moved)
        monkeypatch.setattr(loading, "load_hub_dataset", _hub_unreachable)

    return move_default_dir


def test_hub_failure_falls_back_to_the_installed_release(tmp_path, offline_fashion_mnist, caplog):
    make_release(tmp_path / "installed")
    offline_fashion_mnist(tmp_path / "installed")
    data = load_data(dataset="fashion_mnist")
    assert len(data.train) == 6 and str(tmp_path / "installed") in data.source
    assert data.class_names == list(FASHION_MNIST_NAMES)
    assert "reading the IDX release in" in caplog.text


def test_neither_source_names_both_ways_out(tmp_path, offline_fashion_mnist):
    offline_fashion_mnist(tmp_path / "absent")
    with pytest.raises(UserInputError) as error:
        load_data(dataset="fashion_mnist")
    message = str(error.value)
    assert "\n" not in message
    assert "`apt-get install dataset-fashion-mnist`" in message and "--data_dir DIR" in message

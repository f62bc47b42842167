"""Data loading for train.py: digits, image folders with broken files, label checks, the offline Hub message."""

import logging
import os

import numpy as np
import pytest
from datasets import ClassLabel, Dataset, Features, Image, Value
from fragments import raises_naming
from PIL import Image as PILImage
from train_helpers import offline_env, run_train_script

import train
from dems_training import UserInputError
from dems_training.data.digits import load_digits_dataset
from dems_training.data.loading import check_label_range, label_names, load_data


def test_digits_is_a_fixed_split_of_real_grey_digits():
    first, second = load_digits_dataset(), load_digits_dataset()
    assert len(first["train"]) == 1437 and len(first["test"]) == 360
    assert first["train"].features["label"].names == [str(d) for d in range(10)]
    assert first["test"]["label"][:50] == second["test"]["label"][:50]
    image = first["train"][0]["image"]
    assert image.mode == "L" and image.size == (8, 8) and np.asarray(image).max() > 100
    assert sorted(set(first["test"]["label"])) == list(range(10))


def write_png(path, value, size=(12, 12), mode="RGB"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    color = (value, 255 - value, 0) if mode == "RGB" else value
    PILImage.new(mode, size, color).save(path)


def make_folder(root, broken: bool):
    """root/train/{cat,dog} and root/val/{cat,dog}; with `broken`, a truncated PNG and a text file named .jpg."""
    for split, n in (("train", 4), ("val", 2)):
        for label, name in enumerate(("cat", "dog")):
            for i in range(n):
                write_png(os.path.join(root, split, name, f"{i}.png"), 40 + 150 * label + i, mode="RGB" if i else "L")
    broken_paths = []
    if broken:
        truncated = os.path.join(root, "train", "cat", "truncated.png")
        with open(os.path.join(root, "train", "cat", "0.png"), "rb") as f:
            data = f.read()
        with open(truncated, "wb") as f:
            f.write(data[: len(data) // 2])
        not_an_image = os.path.join(root, "train", "dog", "notes.jpg")
        with open(not_an_image, "w") as f:
            f.write("not an image")
        broken_paths = [truncated, not_an_image]
    return broken_paths


def test_image_folder_skips_broken_files_and_names_each(tmp_path, caplog):
    broken = make_folder(tmp_path, broken=True)
    with caplog.at_level(logging.WARNING, logger="dems_training"):
        data = load_data(train_dir=str(tmp_path))
    assert len(data.train) == 8 and len(data.eval) == 4  # the two broken files left out
    assert data.class_names == ["cat", "dog"]
    assert "skipped 2 unreadable image file(s)" in caplog.text
    for path in broken:
        assert path in caplog.text
    assert sorted(data.train["label"]) == [0] * 4 + [1] * 4


def test_image_folder_stops_on_broken_files_when_asked(tmp_path):
    broken = make_folder(tmp_path, broken=True)
    with pytest.raises(UserInputError) as error:
        load_data(train_dir=str(tmp_path), broken_images="error")
    assert "2 image file(s) cannot be read" in str(error.value)
    assert all(path in str(error.value) for path in broken)


def test_train_script_reports_broken_file_before_training(tmp_path, capsys):
    broken = make_folder(tmp_path / "data", broken=True)
    out = tmp_path / "out"
    code = train.main(["--train_dir", str(tmp_path / "data"), "--broken_images", "error", "--output_dir", str(out)])
    stderr = capsys.readouterr().err
    assert code == 2
    assert broken[0] in stderr and "--broken_images skip" in stderr
    assert not out.exists()


def test_held_out_folder_with_an_unknown_class_is_an_error(tmp_path):
    make_folder(tmp_path, broken=False)
    write_png(os.path.join(tmp_path, "val", "bird", "0.png"), 9)
    with raises_naming(UserInputError, "--validation_dir", "['bird']"):
        load_data(train_dir=str(tmp_path / "train"), validation_dir=str(tmp_path / "val"))


def labelled(labels, feature=None):
    features = Features({"image": Image(), "label": feature or Value("int64")})
    images = [PILImage.new("RGB", (4, 4))] * len(labels)
    return Dataset.from_dict({"image": images, "label": labels}, features=features)


def test_label_out_of_range_is_a_clear_error():
    split = labelled([0, 1, 7])
    with raises_naming(UserInputError, "--label_column", "label 7", "[0, 2]"):
        check_label_range(split, "label", 3, "train split")
    with raises_naming(UserInputError, "--label_column", "label -1"):
        check_label_range(labelled([0, -1]), "label", 3, "train split")


def test_label_names_from_classlabel_or_integers():
    assert label_names(labelled([0, 1], ClassLabel(names=["a", "b", "c"])), "label") == ["a", "b", "c"]
    assert label_names(labelled([0, 3]), "label") == ["0", "1", "2", "3"]
    strings = Dataset.from_dict({"label": ["x", "y"]})
    with raises_naming(UserInputError, "--label_column='label'"):
        label_names(strings, "label")


def test_missing_label_column_is_named_with_the_columns_there():
    with raises_naming(UserInputError, "--label_column='fine_label'", "['image', 'label']"):
        load_data(dataset="digits", label_column="fine_label")


@pytest.mark.slow
def test_offline_hub_failure_is_one_line_with_the_way_out(tmp_path):
    result = run_train_script(["--dataset", "cifar10", "--output_dir", str(tmp_path / "out")], offline_env(tmp_path))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    message = [line for line in result.stderr.splitlines() if line.startswith("train.py: error:")]
    assert len(message) == 1, result.stderr[-2000:]
    assert "'uoft-cs/cifar10': cannot reach the Hugging Face Hub" in message[0]
    assert "--train_dir" in message[0] and "HF_DATASETS_OFFLINE=1" in message[0]


def test_a_column_without_images_is_refused():
    with raises_naming(UserInputError, "--image_column='label'", "not images"):
        load_data(dataset="digits", image_column="label")


def test_an_empty_class_folder_is_refused_in_train_but_may_be_in_held_out(tmp_path):
    make_folder(tmp_path, broken=False)
    (tmp_path / "train" / "bird").mkdir()
    with raises_naming(UserInputError, "--train_dir", "['bird']"):
        load_data(train_dir=str(tmp_path))
    (tmp_path / "train" / "bird").rmdir()
    for image in (tmp_path / "val" / "dog").iterdir():
        image.unlink()
    data = load_data(train_dir=str(tmp_path))
    assert data.class_names == ["cat", "dog"] and sorted(data.eval["label"]) == [0, 0]

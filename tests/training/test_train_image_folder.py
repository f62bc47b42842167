"""Local image folders through datasets' imagefolder builder: class ids by name, the stratified --train_val_split,
the parallel broken-image check and its cache, and the folder layouts that are refused."""

import logging
import os

import numpy as np
import pytest
from datasets import Image as ImageFeature
from fragments import raises_naming
from PIL import Image

import train
from benchmarks import image_folder_check
from dems_training import UserInputError
from dems_training.data.loading import load_data


def write_images(folder, counts: dict[str, int], size=8):
    """folder/<class>/<i>.png, `counts[class]` images each, every one a different colour."""
    for c, (name, count) in enumerate(counts.items()):
        os.makedirs(os.path.join(folder, name), exist_ok=True)
        for i in range(count):
            Image.new("RGB", (size, size), (30 * c, 7 * i % 256, 0)).save(os.path.join(folder, name, f"{i}.png"))
    return str(folder)


def paths(split):
    return {image["path"] for image in split.cast_column("image", ImageFeature(decode=False))["image"]}


def break_file(path):
    with open(path, "wb") as f:
        f.write(b"not an image")


def test_held_out_images_get_the_train_id_of_their_class(tmp_path):
    root = tmp_path / "my [data]*"  # glob characters in the path are read literally
    write_images(root / "train", {"cat": 3, "dog": 3, "fox": 3})
    write_images(root / "val", {"dog": 2, "fox": 1})  # no "cat": "dog" must stay 1, not become 0
    data = load_data(train_dir=str(root))
    assert data.class_names == ["cat", "dog", "fox"]
    assert data.train.features["label"].names == data.eval.features["label"].names == ["cat", "dog", "fox"]
    assert sorted(data.train["label"]) == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert sorted(data.eval["label"]) == [1, 1, 2]
    assert data.eval[0]["image"].size == (8, 8)  # decoded again after the check


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_train_val_split_keeps_each_class_share_within_one_image(tmp_path, seed):
    counts = {"many": 30, "some": 12, "few": 6}
    folder = write_images(tmp_path / "flat", counts)
    data = load_data(train_dir=folder, train_val_split=0.25, seed=seed)
    total = sum(counts.values())
    assert len(data.train) + len(data.eval) == total and len(data.eval) == 12
    held = np.bincount(data.eval["label"], minlength=3)
    kept = np.bincount(data.train["label"], minlength=3)
    for label, name in enumerate(data.class_names):
        assert abs(held[label] - len(data.eval) * counts[name] / total) <= 1, (name, held)
        assert held[label] + kept[label] == counts[name]
    assert not paths(data.train) & paths(data.eval)


def test_a_split_that_cannot_hold_out_every_class_is_refused(tmp_path):
    folder = write_images(tmp_path / "flat", {"a": 10, "b": 1})
    with raises_naming(UserInputError, "--train_val_split=0.15", "11 images"):
        load_data(train_dir=folder)


def test_the_check_is_cached_until_a_file_changes(tmp_path, caplog):
    folder = write_images(tmp_path / "flat", {"a": 6, "b": 6})
    break_file(os.path.join(folder, "b", "5.png"))
    with caplog.at_level(logging.WARNING, logger="dems_training"):
        first = load_data(train_dir=folder, train_val_split=0.5, preprocessing_num_workers=2)
    assert "skipped 1 unreadable image file(s)" in caplog.text and "5.png" in caplog.text
    assert len(first.train) + len(first.eval) == 11
    # Break a good file but keep its modification time: the cached result is read, nothing is decoded again.
    good = os.path.join(folder, "a", "0.png")
    stat = os.stat(good)
    break_file(good)
    os.utime(good, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    again = load_data(train_dir=folder, train_val_split=0.5, preprocessing_num_workers=2)
    assert len(again.train) + len(again.eval) == 11
    assert again.train.cache_files == first.train.cache_files
    # A new modification time is a new file for datasets: checked again, in one process this time.
    os.utime(good)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="dems_training"):
        changed = load_data(train_dir=folder, train_val_split=0.5, preprocessing_num_workers=1)
    assert len(changed.train) + len(changed.eval) == 10
    assert "skipped 2 unreadable image file(s)" in caplog.text and good in caplog.text


def test_a_broken_held_out_image_stops_the_run_when_asked(tmp_path):
    write_images(tmp_path / "train", {"a": 2, "b": 2})
    write_images(tmp_path / "val", {"a": 2})
    break_file(tmp_path / "val" / "a" / "1.png")
    with raises_naming(UserInputError, "--validation_dir", "1.png"):
        load_data(train_dir=str(tmp_path / "train"), validation_dir=str(tmp_path / "val"), broken_images="error")


def test_a_class_whose_images_are_all_broken_is_refused(tmp_path):
    folder = write_images(tmp_path / "flat", {"a": 4, "b": 2})
    for i in range(2):
        break_file(os.path.join(folder, "b", f"{i}.png"))
    with raises_naming(UserInputError, "--train_dir", "['b']"):
        load_data(train_dir=folder)


@pytest.mark.parametrize(
    "layout, message",
    [
        ("missing", r"--train_dir='.*nowhere' does not exist\."),
        ("file", r"--train_dir='.*notes.txt' is a file; give a folder"),
        ("no classes", r"has no class sub-folders"),
        ("nested", r"the class folder 'b' holds sub-folders \['old'\]; images must sit directly"),
        ("unknown held-out class", r"--validation_dir=.* has class folders \['c'\] that the train folder"),
        ("held-out without images", r"--validation_dir=.* holds no image files"),
    ],
)
def test_folder_layouts_that_are_refused(tmp_path, layout, message):
    train_dir, validation_dir = str(tmp_path / "train"), None
    if layout == "missing":
        train_dir = str(tmp_path / "nowhere")
    elif layout == "file":
        train_dir = str(tmp_path / "notes.txt")
        (tmp_path / "notes.txt").write_text("x")
    elif layout == "no classes":
        (tmp_path / "train").mkdir()
        Image.new("RGB", (8, 8)).save(tmp_path / "train" / "loose.png")
    else:
        write_images(tmp_path / "train", {"a": 2, "b": 2})
    if layout == "nested":
        write_images(tmp_path / "train" / "b", {"old": 1})
    elif layout == "unknown held-out class":
        validation_dir = write_images(tmp_path / "val", {"a": 1, "c": 1})
    elif layout == "held-out without images":
        validation_dir = str(tmp_path / "val")
        (tmp_path / "val" / "a").mkdir(parents=True)
        (tmp_path / "val" / "a" / "notes.txt").write_text("x")
    with pytest.raises(UserInputError, match=message):
        load_data(train_dir=train_dir, validation_dir=validation_dir)


@pytest.mark.parametrize("workers", [0, -2])
def test_preprocessing_num_workers_must_be_positive(tmp_path, capsys, workers):
    folder = write_images(tmp_path / "flat", {"a": 2, "b": 2})
    out = tmp_path / "out"
    code = train.main(["--train_dir", folder, "--preprocessing_num_workers", str(workers), "--output_dir", str(out)])
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("train.py: error:")]
    assert code == 2 and not out.exists()
    assert errors == [f"train.py: error: --preprocessing_num_workers={workers} must be a positive whole number of "
                      "processes."]


def test_the_benchmark_times_a_first_run_and_a_cached_rerun(tmp_path, capsys):
    args = ["--root", str(tmp_path / "folder"), "--images", "40", "--classes", "4", "--size", "16", "--broken", "2",
            "--cache_dir", str(tmp_path / "cache"), "--preprocessing_num_workers", "2"]
    first = image_folder_check.run(args)
    again = image_folder_check.run(args)
    assert first["check"] == "computed" and again["check"] == "read from cache"
    assert first["train"] + first["held_out"] == again["train"] + again["held_out"] == 40  # the 2 broken left out
    assert first["held_out"] == 6  # --train_val_split 0.15 of 40
    assert "check: read from cache" in capsys.readouterr().out
    assert image_folder_check.main(["--root", str(tmp_path / "other"), "--classes", "1"]) == 2

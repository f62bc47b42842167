"""explain.py on a tiny saved model: one PNG per image, the data-set chart with its examples and numbers, PNGs that
decode; every input it cannot use refused in one line with exit code 2, before anything is written."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from tiny_configs import make_tiny_config
from train_helpers import REPO, offline_env

import explain
from dems_training.explain.explanations import display_images, pick_examples
from modeling_dems import DemsForImageClassification, DemsImageProcessor


DIGITS = [str(d) for d in range(10)]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A random tiny DEMS classifier (one 16x16 region, two merges) for the ten digits, as train.py saves one."""
    torch.manual_seed(0)
    config = make_tiny_config("train_py", labels=DIGITS)
    folder = tmp_path_factory.mktemp("model")
    DemsForImageClassification(config).save_pretrained(folder)
    DemsImageProcessor.from_model_config(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """An RGB PNG, a grey JPEG and a second image of the same name in another folder."""
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    (folder / "other").mkdir()
    paths = [folder / "shoe.png", folder / "shirt.jpg", folder / "other" / "shoe.png"]
    Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)).save(paths[0])
    Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8)).save(paths[1])
    Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(paths[2])
    return paths


def decoded_size(path) -> tuple[int, int]:
    with Image.open(path) as image:
        image.load()  # decodes every pixel: a cut-short PNG fails here
        assert image.format == "PNG"
        return image.size


def test_one_png_per_image(model_dir, images, tmp_path, capsys):
    out = tmp_path / "out"
    assert explain.main([str(model_dir), *map(str, images), "--output", str(out), "--top_k", "2"]) == 0
    names = ["shoe.explained.png", "shirt.explained.png", "shoe-2.explained.png"]
    assert sorted(os.listdir(out)) == sorted(names)
    for name in names:
        width, height = decoded_size(out / name)
        assert width > 2 * height > 300  # one row: input, saliency, predictions, a panel per merge
    assert capsys.readouterr().out.count("wrote ") == 3


def test_a_data_set_gives_the_mean_scale_mix_chart_examples_and_numbers(model_dir, tmp_path, capsys):
    out = tmp_path / "out"
    argv = [str(model_dir), "--dataset", "digits", "--max_images", "12", "--examples", "3", "--output", str(out)]
    assert explain.main(argv) == 0
    assert sorted(os.listdir(out)) == ["examples.png", "scale_mix.json", "scale_mix.png"]
    decoded_size(out / "scale_mix.png")
    width, height = decoded_size(out / "examples.png")
    assert height > width / 3  # three rows
    numbers = json.loads((out / "scale_mix.json").read_text())
    assert numbers["images"] == 12 and numbers["data"] == "scikit-learn digits"
    assert [(m["tokens_in"], m["tokens_out"]) for m in numbers["merges"]] == [(85, 16), (16, 8)]
    for merge in numbers["merges"]:
        assert sum(merge["mean_scale_mix"]) == pytest.approx(1.0, abs=1e-3)
    assert sum(numbers["class_token_saliency_by_scale"]) == pytest.approx(1.0, abs=1e-3)
    assert 0.0 <= numbers["top1_accuracy"] <= 1.0
    assert "12 held-out images of scikit-learn digits" in capsys.readouterr().out


def _write(path, data: bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing_model", r"MODEL \S*nowhere/at/all is neither an existing folder nor a Hub model id"),
        ("model_file", r"MODEL \S*config.json is a file; give the folder"),
        ("no_config", r"MODEL \S*empty has no config.json: it is not a train.py output"),
        ("other_model", r"MODEL \S*vit is a 'vit' model, not a DEMS-ViT \('dems'\)"),
        ("torn_config", r"MODEL \S*torn: cannot read its config"),
        ("encoder_only", r"its weights lack 2 tensors of a DEMS-ViT classifier \(e.g. classifier.bias\)"),
        ("broken_image", r"IMAGE \S*broken.png cannot be read as an image \(cannot identify image file"),
        ("missing_image", r"IMAGE \S*absent.png does not exist"),
        ("folder_image", r"IMAGE \S*images\d* is a folder, not an image file"),
        ("nothing", r"nothing to explain: give IMAGE files, --dataset or --train_dir"),
        ("max_images", r"--max_images=0 must be at least 1"),
        ("data_dir_alone", r"--data_dir='idx' needs --dataset"),
        ("output_file", r"--output \S*taken is a file; give a folder"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(case, message, model_dir, images, tmp_path, capfd):
    image, model, out, extra = str(images[0]), str(model_dir), tmp_path / "out", []
    if case == "missing_model":
        model = str(tmp_path / "nowhere" / "at" / "all")
    elif case == "model_file":
        model = str(model_dir / "config.json")
    elif case == "no_config":
        (tmp_path / "empty").mkdir()
        model = str(tmp_path / "empty")
    elif case == "other_model":
        model = str(_write(tmp_path / "vit" / "config.json", b'{"model_type": "vit"}').parent)
    elif case == "torn_config":
        model = str(_write(tmp_path / "torn" / "config.json", b'{"model_type": "de').parent)
    elif case == "encoder_only":
        encoder = tmp_path / "encoder"
        DemsForImageClassification.from_pretrained(model_dir).dems.save_pretrained(encoder)
        model = str(encoder)
    elif case == "broken_image":
        image = str(_write(tmp_path / "broken.png", b"\x89PNG\r\n\x1a\n not the rest of a PNG"))
    elif case == "missing_image":
        image = str(tmp_path / "absent.png")
    elif case == "folder_image":
        image = str(images[0].parent)
    elif case == "nothing":
        image = None
    elif case == "max_images":
        extra = ["--dataset", "digits", "--max_images", "0"]
    elif case == "data_dir_alone":
        extra = ["--data_dir", "idx"]
    elif case == "output_file":
        out = _write(tmp_path / "taken", b"")
    argv = [model, *([image] if image else []), "--output", str(out), *extra]
    code = explain.main(argv)
    captured = capfd.readouterr()  # the file descriptors: transformers' logging writes to the stderr it saw first
    assert code == 2, captured.err[-3000:]
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("explain.py: error: "), captured.err[-3000:]
    assert re.search(message, lines[0]), lines[0]
    assert captured.out == "" and "Traceback" not in captured.err
    if case != "output_file":
        assert not out.exists()  # refused before anything was written


@pytest.mark.slow
def test_a_hub_id_out_of_reach_is_one_line_from_the_command_line(images, tmp_path):
    """A real process offline: nothing else that transformers or a progress bar would print reaches stderr."""
    argv = [sys.executable, os.path.join(REPO, "explain.py"), "someone/not-cached", str(images[0])]
    proc = subprocess.run([*argv, "--output", str(tmp_path / "out")], env=offline_env(tmp_path), cwd=REPO,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr[-3000:]
    assert lines[0].startswith("explain.py: error: MODEL someone/not-cached: cannot read its config")


def test_display_images_undo_the_processors_normalisation():
    # A flat colour survives resize, rescale and normalisation: undone, it is the colour again (to rounding).
    image = Image.new("RGB", (20, 12), (10, 200, 90))
    for processor in (DemsImageProcessor(size={"height": 16, "width": 16}),
                      DemsImageProcessor(size={"height": 16, "width": 16}, image_mean=0.5, image_std=0.5)):
        shown = display_images(processor(images=image, return_tensors="pt")["pixel_values"], processor)
        assert shown.shape == (1, 16, 16, 3) and shown.dtype == np.uint8
        assert np.abs(shown.astype(int) - [10, 200, 90]).max() <= 1
    grey = DemsImageProcessor(size={"height": 16, "width": 16}, num_channels=1, image_mean=0.5, image_std=0.5)
    shown = display_images(grey(images=Image.new("L", (16, 16), 77), return_tensors="pt")["pixel_values"], grey)
    assert shown.shape == (1, 16, 16, 3) and np.abs(shown.astype(int) - 77).max() <= 1


def test_pick_examples_shows_several_classes_first():
    assert pick_examples([3, 3, 1, 3, 2, 1], 3) == [0, 2, 4]
    assert pick_examples([5, 5, 5, 5], 3) == [0, 1, 2]  # one class: the next images in order
    assert pick_examples([1, 2], 4) == [0, 1]

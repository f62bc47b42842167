"""train.py's user errors: each is one line on stderr (`train.py: error: ...`), exit code 2, no stack trace, and
nothing is written into --output_dir: neither a traceback nor, worse, exit code 0."""

import json
import shutil

import pytest
import torch
from PIL import Image
from reference_dems import random_reference_state_dict
from tiny_configs import make_tiny_config
from train_helpers import TINY_MODEL, tiny_run_args
from transformers.trainer_callback import TrainerState

import train
from dems_training import UserInputError
from modeling_dems import DemsForImageClassification


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    """A save_pretrained folder of a tiny model with the digits' 10 classes."""
    folder = tmp_path_factory.mktemp("saved") / "model"
    DemsForImageClassification(make_tiny_config("train_py", labels=10)).save_pretrained(folder)
    return folder


def _cut_short(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _copy_of(saved_model, tmp_path):
    return shutil.copytree(saved_model, tmp_path / "model")


def epochs(tmp_path, value):
    return ["--num_train_epochs", value], ("--num_train_epochs", f"={float(value)}")


def empty_class_folder(tmp_path):
    for name in ("cat", "dog"):
        (tmp_path / "data" / name).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (8, 8), (40 * i, 0, 0)).save(tmp_path / "data" / name / f"{i}.png")
    (tmp_path / "data" / "bird").mkdir()
    return ["--train_dir", str(tmp_path / "data")], ("--train_dir", "'bird'", "no readable images")


def missing_resume_checkpoint(tmp_path):
    return ["--resume_from_checkpoint", str(tmp_path / "checkpoint-7")], ("--resume_from_checkpoint", "checkpoint-7",
                                                                         "does not exist")


def resume_checkpoint_is_a_file(tmp_path):
    (tmp_path / "checkpoint-7").write_text("x")
    return ["--resume_from_checkpoint", str(tmp_path / "checkpoint-7")], ("--resume_from_checkpoint", "checkpoint-7",
                                                                         "is a file")


def torn_resume_checkpoint(tmp_path):
    folder = tmp_path / "checkpoint-7"
    folder.mkdir()
    torch.save({}, folder / "pytorch_model.bin")
    TrainerState(global_step=7).save_to_json(str(folder / "trainer_state.json"))
    _cut_short(folder / "trainer_state.json")
    return ["--resume_from_checkpoint", str(folder)], ("--resume_from_checkpoint", "trainer_state.json")


def model_path_is_a_file(tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"\0" * 8)
    return ["--model_name_or_path", str(tmp_path / "weights.bin")], ("--model_name_or_path", "weights.bin", "is a file")


def torn_weights(tmp_path, saved_model):
    folder = _copy_of(saved_model, tmp_path)
    _cut_short(folder / "model.safetensors")
    return ["--model_name_or_path", str(folder)], ("--model_name_or_path", "model", "incomplete metadata")


def config_with_a_string_number(tmp_path, saved_model):
    folder = _copy_of(saved_model, tmp_path)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "hidden_size": "32"}))
    return ["--model_name_or_path", str(folder)], ("--model_name_or_path", "'hidden_size'", "'32'")


def truncated_reference_checkpoint(tmp_path):
    state_dict = random_reference_state_dict(dim=32, patch=2, image_size=16, channels=3, depth=4, classes=10,
                                             merged=(10, 3))  # fmt: skip
    torch.save({"model": state_dict}, tmp_path / "ref.pth")
    _cut_short(tmp_path / "ref.pth")
    fragments = ("--model_name_or_path", "ref.pth", "PyTorch checkpoint")
    return ["--model_name_or_path", str(tmp_path / "ref.pth")], fragments


def float_merge_layer(tmp_path):
    fragments = ("--config_overrides", "'merge_layers'", "[2.5, 3]")
    return ["--config_overrides", "image_size=16,merge_layers=[2.5,3]"], fragments


def four_channels_by_overrides(tmp_path):
    fragments = ("--config_overrides", "num_channels=4", "1 or 3 channels")
    return ["--config_overrides", f"{TINY_MODEL},num_channels=4"], fragments


def saved_four_channel_model(tmp_path):
    folder = tmp_path / "rgba"
    DemsForImageClassification(make_tiny_config("train_py", labels=10, num_channels=4)).save_pretrained(folder)
    return ["--model_name_or_path", str(folder)], ("--model_name_or_path", "rgba", "num_channels=4", "1 or 3")


CASES = {
    "zero epochs": lambda tmp_path, _: epochs(tmp_path, "0"),
    "negative epochs": lambda tmp_path, _: epochs(tmp_path, "-1"),
    "empty class folder": lambda tmp_path, _: empty_class_folder(tmp_path),
    "missing --resume_from_checkpoint": lambda tmp_path, _: missing_resume_checkpoint(tmp_path),
    "--resume_from_checkpoint is a file": lambda tmp_path, _: resume_checkpoint_is_a_file(tmp_path),
    "torn --resume_from_checkpoint": lambda tmp_path, _: torn_resume_checkpoint(tmp_path),
    "--model_name_or_path is a file": lambda tmp_path, _: model_path_is_a_file(tmp_path),
    "torn model.safetensors": torn_weights,
    "config.json with a string number": config_with_a_string_number,
    "truncated reference .pth": lambda tmp_path, _: truncated_reference_checkpoint(tmp_path),
    "merge layer 2.5": lambda tmp_path, _: float_merge_layer(tmp_path),
    # the training transforms make grey or RGB images only: refused when the model is built, before any training
    "4 channels by --config_overrides": lambda tmp_path, _: four_channels_by_overrides(tmp_path),
    "a saved 4-channel model": lambda tmp_path, _: saved_four_channel_model(tmp_path),
}


def _error_line(capsys) -> str:
    stderr = capsys.readouterr().err
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if "error" in line.lower()]
    assert len(lines) == 1 and lines[0].startswith("train.py: error: "), stderr[-2000:]
    return lines[0]


@pytest.mark.parametrize("case", list(CASES))
def test_user_errors_name_the_option_and_value_and_write_nothing(tmp_path, saved_model, case):
    extra, fragments = CASES[case](tmp_path, saved_model)
    output_dir = tmp_path / "out"
    with pytest.raises(UserInputError) as error:
        train.run(tiny_run_args(output_dir, "--max_train_samples", "16", *extra))
    assert [fragment for fragment in fragments if fragment not in str(error.value)] == [], str(error.value)
    assert not output_dir.exists()


@pytest.mark.parametrize(
    ("extra", "fragments"),
    [
        (["--config_overrides", f"{TINY_MODEL},num_channels=4"], ("--config_overrides", "num_channels=4", "1 or 3")),
        (["--config_overrides", "image_size=16,merge_layers=[2.5,3]"], ("--config_overrides", "[2.5, 3]")),
        (["--model_preset", "tiny-64"], ("--model_preset", "'tiny-64'", "not a DEMS preset")),
        (["--architecture", "vit", "--model_name_or_path", "ref.pth"], ("'ref.pth'", "--architecture vit")),
    ],
)
def test_a_bad_model_argument_is_refused_before_the_data_loads(tmp_path, monkeypatch, extra, fragments):
    # A data set from the Hub can take minutes to load: these refusals need no data, so they must come first.
    def no_data(**_):
        raise AssertionError("the data was loaded before the model arguments were checked")

    monkeypatch.setattr(train, "load_data", no_data)
    with pytest.raises(UserInputError) as error:
        train.run(tiny_run_args(tmp_path / "out", *extra))
    assert [fragment for fragment in fragments if fragment not in str(error.value)] == [], str(error.value)


@pytest.mark.parametrize("case", ["zero epochs", "torn model.safetensors"])
def test_the_command_prints_a_user_error_in_one_line_with_exit_code_2(tmp_path, saved_model, capsys, case):
    extra, fragments = CASES[case](tmp_path, saved_model)
    assert train.main(tiny_run_args(tmp_path / "out", "--max_train_samples", "16", *extra)) == 2
    line = _error_line(capsys)
    assert all(fragment in line for fragment in fragments), line


def test_an_output_dir_that_is_a_file_is_refused_and_kept(tmp_path, capsys):
    mine = tmp_path / "results.txt"
    mine.write_text("my own results")
    assert train.main(tiny_run_args(mine, "--max_steps", "1")) == 2
    line = _error_line(capsys)
    assert "--output_dir" in line and "results.txt" in line and "is a file" in line
    assert mine.read_text() == "my own results"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, ("args.json", "cannot read")),
        ('{"output_dir": ', ("args.json", "not valid JSON")),
        ('["--output_dir", "OUT"]', ("args.json", "JSON object")),
        ('{"output_dir": "OUT", "learning_rat": 1e-3}', ("'learning_rat'",)),
    ],
)
def test_a_bad_arguments_file_is_one_line(tmp_path, capsys, content, message):
    arguments = tmp_path / "args.json"
    if content is not None:
        arguments.write_text(content.replace("OUT", str(tmp_path / "out")))
    assert train.main([str(arguments)]) == 2
    line = _error_line(capsys)
    assert all(fragment in line for fragment in message), line
    assert not (tmp_path / "out").exists()

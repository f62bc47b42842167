"""push_to_hub.py's user errors: each is one line on stderr (`push_to_hub.py: error: ...`) naming the option or file,
the value and the rule, exit code 2, no stack trace, and nothing the user gave is changed: every file under the
test's folder (the source, label files, checkpoints, an existing --local_dir) keeps its bytes and mtime, and no
file or folder appears: neither a traceback, nor exit code 0 with a wrong repository, nor (--local_dir inside the
source) a write into the folder being pushed.

The inputs are made here: real files cut short, JSON written half, configs edited by hand."""

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from reference_dems import random_reference_state_dict
from tiny_configs import make_tiny_config

from dems_training import UserInputError
from modeling_dems import DemsForImageClassification, DemsImageProcessor


REPO_ROOT = Path(__file__).resolve().parents[2]
# push_to_hub.py is a top-level script, not part of the installed packages: load it from the checkout.
_spec = importlib.util.spec_from_file_location("push_to_hub", REPO_ROOT / "push_to_hub.py")
push_to_hub = sys.modules.setdefault("push_to_hub", importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(push_to_hub)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A save_pretrained folder of a tiny 3-class, 3-block model with its processor, and a reference-format .pth of a
    10-class model that the converter reads (12 blocks, merges [6, 10])."""
    root = tmp_path_factory.mktemp("saved")
    torch.manual_seed(0)
    model = DemsForImageClassification(make_tiny_config(labels=3, num_hidden_layers=3))
    model.save_pretrained(root / "model")
    DemsImageProcessor(size={"height": 16, "width": 16}).save_pretrained(root / "model")
    state_dict = random_reference_state_dict(dim=32, patch=2, image_size=16, channels=3, depth=12, classes=10,
                                             merged=(10, 3))  # fmt: skip
    torch.save({"model": state_dict}, root / "ref.pth")
    return {"model": root / "model", "pth": root / "ref.pth", "state_dict": model.state_dict()}


# ------------------------------------------------------------------------------------------------------ helpers


def _cut_short(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _model(tmp_path, saved):
    """The test's own copy of the model folder: it lies under tmp_path, so the not-changed check covers it."""
    return shutil.copytree(saved["model"], tmp_path / "model")


def _pth(tmp_path, saved):
    return shutil.copyfile(saved["pth"], tmp_path / "ref.pth")


def _edit_json(path, **changes):
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def _write(path, text):
    path.write_text(text)
    return path


def _out(tmp_path):
    return ["--local_dir", tmp_path / "out"]


# ------------------------------------------------------------------------------------------- the cases: source


def missing_source(tmp_path, saved):
    return [tmp_path / "nothere", "--dry_run"], ("source", "nothere", "does not exist")


def weight_file_as_source(tmp_path, saved):
    model = _model(tmp_path, saved)
    return [model / "model.safetensors", "--dry_run"], ("source", "model.safetensors", "give the folder")


def folder_without_config(tmp_path, saved):
    (tmp_path / "empty").mkdir()
    return [tmp_path / "empty", *_out(tmp_path)], ("source", "empty", "config.json")


def torn_config(tmp_path, saved):
    model = _model(tmp_path, saved)
    _cut_short(model / "config.json")
    return [model, *_out(tmp_path)], ("model/config.json", "not valid JSON")


def config_not_an_object(tmp_path, saved):
    model = _model(tmp_path, saved)
    (model / "config.json").write_text("[1, 2]")
    return [model, *_out(tmp_path)], ("model/config.json", "JSON object", "list")


def config_with_a_string_number(tmp_path, saved):
    model = _model(tmp_path, saved)
    _edit_json(model / "config.json", hidden_size="32")
    return [model, *_out(tmp_path)], ("model", "'hidden_size'", "int", "str")


def torn_safetensors(tmp_path, saved):
    model = _model(tmp_path, saved)
    _cut_short(model / "model.safetensors")
    return [model, *_out(tmp_path)], ("model/model.safetensors", "truncated")


def torn_pytorch_model_bin(tmp_path, saved):
    model = _model(tmp_path, saved)
    (model / "model.safetensors").unlink()
    torch.save(saved["state_dict"], model / "pytorch_model.bin")
    _cut_short(model / "pytorch_model.bin")
    return [model, *_out(tmp_path)], ("model/pytorch_model.bin", "truncated", "PytorchStreamReader")


def pytorch_model_bin_the_safe_loader_refuses(tmp_path, saved):
    model = _model(tmp_path, saved)
    (model / "model.safetensors").unlink()
    torch.save({**saved["state_dict"], "args": argparse.Namespace(lr=0.1)}, model / "pytorch_model.bin")
    return [model, *_out(tmp_path)], (
        'model/pytorch_model.bin', 'weights_only=True', 'argparse.Namespace', 'save_pretrained',
    )


def index_naming_a_missing_shard(tmp_path, saved):
    model = _model(tmp_path, saved)
    (model / "model.safetensors").rename(model / "model-00001-of-00002.safetensors")
    shards = {"classifier.weight": "model-00001-of-00002.safetensors", "classifier.bias": "model-00002-of-00002"
              ".safetensors"}  # fmt: skip
    (model / "model.safetensors.index.json").write_text(json.dumps({"weight_map": shards}))
    return [model, *_out(tmp_path)], ("model.safetensors.index.json", "model-00002-of-00002.safetensors")


def torn_index(tmp_path, saved):
    model = _model(tmp_path, saved)
    (model / "model.safetensors.index.json").write_text('{"weight_map": {"classifier.weight": "model-0')
    return [model, *_out(tmp_path)], ("model/model.safetensors.index.json", "not valid JSON")


def weights_with_blocks_the_config_lacks(tmp_path, saved):
    # Three blocks saved, two in config.json: transformers would drop the third block's tensors with a warning.
    model = _model(tmp_path, saved)
    _edit_json(model / "config.json", num_hidden_layers=2)
    return [model, *_out(tmp_path)], ("model", "11 tensors", "dems.encoder.layers.2.")


def weights_of_another_class_count(tmp_path, saved):
    model = _model(tmp_path, saved)
    config = json.loads((model / "config.json").read_text())
    del config["id2label"], config["label2id"]
    (model / "config.json").write_text(json.dumps({**config, "num_labels": 4}))
    return [model, *_out(tmp_path)], ("model", "2 tensors", "classifier.bias", "(3,)", "(4,)")


def torn_preprocessor_config(tmp_path, saved):
    model = _model(tmp_path, saved)
    _cut_short(model / "preprocessor_config.json")
    return [model, *_out(tmp_path)], ("model/preprocessor_config.json", "not valid JSON")


def preprocessor_config_of_a_size_the_model_refuses(tmp_path, saved):
    model = _model(tmp_path, saved)
    _edit_json(model / "preprocessor_config.json", size={"height": 20, "width": 20})
    return [model, *_out(tmp_path)], ("model/preprocessor_config.json", "(1, 3, 20, 20)", "8 * patch_size = 16")


def torn_training_summary(tmp_path, saved):
    model = _model(tmp_path, saved)
    _write(model / "training_summary.json", '{"dataset": {"name": "uoft-')
    return [model, *_out(tmp_path)], ("model/training_summary.json", "not valid JSON")


def training_summary_with_a_string_dataset(tmp_path, saved):
    model = _model(tmp_path, saved)
    _write(model / "training_summary.json", json.dumps({"dataset": "cifar10"}))
    return [model, *_out(tmp_path)], ("model/training_summary.json", "'dataset'", "object", "string")


def torn_all_results(tmp_path, saved):
    model = _model(tmp_path, saved)
    _write(model / "all_results.json", '{"eval_top1_accuracy": 0.')
    return [model, *_out(tmp_path)], ("model/all_results.json", "not valid JSON")



# ----------------------------------------------------------------------------------------------- the cases: .pth


def truncated_reference_pth(tmp_path, saved):
    pth = _pth(tmp_path, saved)
    _cut_short(pth)
    return [pth, *_out(tmp_path)], ("ref.pth", "truncated")


def reference_pth_the_safe_loader_refuses(tmp_path, saved):
    state_dict = torch.load(saved["pth"], weights_only=True)["model"]
    torch.save({"model": state_dict, "args": argparse.Namespace(lr=0.1)}, tmp_path / "ref.pth")
    return [tmp_path / "ref.pth", *_out(tmp_path)], ("ref.pth", "weights_only=True", "argparse.Namespace")


def num_labels_other_than_the_head(tmp_path, saved):
    pth = _pth(tmp_path, saved)
    return [pth, "--num_labels", "7", *_out(tmp_path)], ("num_labels=7", "10 classes")


def zero_num_labels(tmp_path, saved):
    pth = _pth(tmp_path, saved)
    return [pth, "--num_labels", "0", *_out(tmp_path)], ("--num_labels=0", "positive")


def image_mean_of_two_values(tmp_path, saved):
    pth = _pth(tmp_path, saved)
    return [pth, "--image_mean", "0.5", "0.5", *_out(tmp_path)], ("--image_mean", "2 values", "3 channels")


def zero_image_std(tmp_path, saved):
    pth = _pth(tmp_path, saved)
    return [pth, "--image_std", "0.2", "0", "0.2", *_out(tmp_path)], ("--image_std", "0.0", "positive")


def nan_image_mean(tmp_path, saved):
    pth = _pth(tmp_path, saved)
    return [pth, "--image_mean", "nan", *_out(tmp_path)], ("--image_mean", "nan", "finite")


def normalisation_with_a_folder(tmp_path, saved):
    model = _model(tmp_path, saved)
    return [model, "--image_mean", "0.5", *_out(tmp_path)], ("--image_mean", ".pth")



# --------------------------------------------------------------------------------------------- the cases: labels


def label_file_with_more_names_than_classes(tmp_path, saved):
    model = _model(tmp_path, saved)
    labels = _write(tmp_path / "labels.txt", "cat\ndog\nbird\nfish\n")
    return [model, "--labels", labels, *_out(tmp_path)], ("--labels", "labels.txt", "4 names", "3 classes")


def json_label_file_with_fewer_names_than_the_head(tmp_path, saved):
    pth = _pth(tmp_path, saved)
    labels = _write(tmp_path / "labels.json", json.dumps(["cat", "dog", "bird"]))
    return [pth, "--labels", labels, *_out(tmp_path)], ("--labels", "labels.json", "3 names", "10 classes")


def missing_label_file(tmp_path, saved):
    model = _model(tmp_path, saved)
    return [model, "--labels", tmp_path / "labels.txt", *_out(tmp_path)], ("--labels", "labels.txt", "no such file")


def label_folder(tmp_path, saved):
    model = _model(tmp_path, saved)
    (tmp_path / "labels").mkdir()
    return [model, "--labels", tmp_path / "labels", *_out(tmp_path)], ("--labels", "labels", "folder")


def torn_label_json(tmp_path, saved):
    model = _model(tmp_path, saved)
    labels = _write(tmp_path / "labels.json", '["cat", "dog", "bi')
    return [model, "--labels", labels, *_out(tmp_path)], ("--labels", "labels.json", "not valid JSON")


def label_json_that_is_a_string(tmp_path, saved):
    # Read as a list, "cat" was three classes c, a, t.
    model = _model(tmp_path, saved)
    labels = _write(tmp_path / "labels.json", '"cat"')
    return [model, "--labels", labels, *_out(tmp_path)], ("--labels", "labels.json", "list of class names")


def label_json_with_an_id_missing(tmp_path, saved):
    model = _model(tmp_path, saved)
    labels = _write(tmp_path / "labels.json", json.dumps({"0": "cat", "1": "dog", "3": "bird"}))
    return [model, "--labels", labels, *_out(tmp_path)], ("--labels", "labels.json", "[0, 1, 3]")


def a_class_named_twice(tmp_path, saved):
    model = _model(tmp_path, saved)
    return [model, "--labels", "cat,dog,cat", *_out(tmp_path)], ("--labels", "'cat,dog,cat'", "(cat)")


def an_empty_class_name(tmp_path, saved):
    model = _model(tmp_path, saved)
    return [model, "--labels", "cat,,bird", *_out(tmp_path)], ("--labels", "'cat,,bird'", "empty")


def label_file_not_utf8(tmp_path, saved):
    model = _model(tmp_path, saved)
    (tmp_path / "labels.txt").write_bytes("chat\nchien\noiseau\n".encode("utf-16"))
    return [model, "--labels", tmp_path / "labels.txt", *_out(tmp_path)], ("--labels", "labels.txt", "UTF-8")



# -------------------------------------------------------------------------------------------- the cases: options


def missing_results_file(tmp_path, saved):
    model = _model(tmp_path, saved)
    return [model, "--results", tmp_path / "results.json", *_out(tmp_path)], (
        '--results', 'results.json', 'does not exist',
    )


def results_folder(tmp_path, saved):
    model = _model(tmp_path, saved)
    (tmp_path / "results").mkdir()
    return [model, "--results", tmp_path / "results", *_out(tmp_path)], ("--results", "results", "not a file")


def torn_results_file(tmp_path, saved):
    model = _model(tmp_path, saved)
    results = _write(tmp_path / "results.json", '{"eval_top1_accuracy": ')
    return [model, "--results", results, *_out(tmp_path)], ("--results", "results.json", "not valid JSON")


def results_file_of_a_list(tmp_path, saved):
    model = _model(tmp_path, saved)
    results = _write(tmp_path / "results.json", "[0.5]")
    return [model, "--results", results, *_out(tmp_path)], ("--results", "results.json", "object", "list")


def missing_processor_folder(tmp_path, saved):
    model = _model(tmp_path, saved)
    return [model, "--processor", tmp_path / "processor", *_out(tmp_path)], (
        '--processor', 'processor', 'does not exist',
    )


def processor_file_instead_of_its_folder(tmp_path, saved):
    model = _model(tmp_path, saved)
    return [model, "--processor", model / "preprocessor_config.json", *_out(tmp_path)], (
        '--processor', 'preprocessor_config.json', 'is a file',
    )


def processor_folder_without_its_file(tmp_path, saved):
    model = _model(tmp_path, saved)
    (tmp_path / "processor").mkdir()
    return [model, "--processor", tmp_path / "processor", *_out(tmp_path)], (
        '--processor', 'processor', 'preprocessor_config.json',
    )


def torn_processor(tmp_path, saved):
    model = _model(tmp_path, saved)
    DemsImageProcessor().save_pretrained(tmp_path / "processor")
    _cut_short(tmp_path / "processor" / "preprocessor_config.json")
    return [model, "--processor", tmp_path / "processor", *_out(tmp_path)], (
        '--processor', 'processor/preprocessor_config.json', 'not valid JSON',
    )


def processor_of_a_size_the_model_refuses(tmp_path, saved):
    pth = _pth(tmp_path, saved)
    DemsImageProcessor(size={"height": 20, "width": 20}).save_pretrained(tmp_path / "processor")
    return [pth, "--processor", tmp_path / "processor", *_out(tmp_path)], ("--processor", "(1, 3, 20, 20)")


def processor_with_normalisation_flags(tmp_path, saved):
    pth = _pth(tmp_path, saved)
    DemsImageProcessor().save_pretrained(tmp_path / "processor")
    return [pth, "--processor", tmp_path / "processor", "--image_std", "0.5", *_out(tmp_path)], (
        '--processor', '--image_mean / --image_std',
    )


def local_dir_that_is_a_file(tmp_path, saved):
    model = _model(tmp_path, saved)
    _write(tmp_path / "exported", "my notes")
    return [model, "--local_dir", tmp_path / "exported"], ("--local_dir", "exported", "not a directory")


def local_dir_under_a_file(tmp_path, saved):
    model = _model(tmp_path, saved)
    _write(tmp_path / "notes", "my notes")
    return [model, "--local_dir", tmp_path / "notes" / "exported"], ("--local_dir", "notes/exported", "notes is a file")


def local_dir_inside_the_source(tmp_path, saved):
    model = _model(tmp_path, saved)
    return [model, "--local_dir", model / "exported"], ("--local_dir", "model/exported", "inside the source")


def local_dir_holding_the_source(tmp_path, saved):
    model = _model(tmp_path, saved)
    return [model, "--local_dir", tmp_path, "--overwrite"], ("--local_dir", "holds the source")


def local_dir_not_empty(tmp_path, saved):
    model = _model(tmp_path, saved)
    (tmp_path / "exported").mkdir()
    _write(tmp_path / "exported" / "keep.txt", "mine")
    return [model, "--local_dir", tmp_path / "exported"], ("--local_dir", "exported", "--overwrite")


def label_file_that_overwrite_would_delete(tmp_path, saved):
    model = _model(tmp_path, saved)
    (tmp_path / "exported").mkdir()
    labels = _write(tmp_path / "exported" / "labels.txt", "cat\ndog\nbird\n")
    return [model, "--labels", labels, "--local_dir", tmp_path / "exported", "--overwrite"], (
        '--labels', 'exported/labels.txt', '--local_dir', '--overwrite',
    )


def overwrite_of_a_local_dir_with_torn_weights(tmp_path, saved):
    # --overwrite replaces --local_dir only once the new folder is complete: a failed load keeps the old one.
    model = _model(tmp_path, saved)
    _cut_short(model / "model.safetensors")
    (tmp_path / "exported").mkdir()
    _write(tmp_path / "exported" / "README.md", "last week's export")
    return [model, "--local_dir", tmp_path / "exported", "--overwrite"], ("model.safetensors", "truncated")


def upload_options_with_local_dir(tmp_path, saved):
    model = _model(tmp_path, saved)
    return [model, "--revision", "v1", "--create_pr", *_out(tmp_path)], ("--revision", "--create_pr", "--local_dir")


def dry_run_with_local_dir(tmp_path, saved):
    model = _model(tmp_path, saved)
    return [model, "--dry_run", *_out(tmp_path)], ("--dry_run", "--local_dir")


def nothing_to_do(tmp_path, saved):
    model = _model(tmp_path, saved)
    return [model], ("--repo_id", "--local_dir", "--dry_run")


def invalid_repo_id(tmp_path, saved):
    model = _model(tmp_path, saved)
    return [model, "--repo_id", "me/two/slashes", "--dry_run"], ('--repo_id', "'me/two/slashes'")


def empty_repo_id(tmp_path, saved):
    # An unset shell variable ("--repo_id $REPO") must not read as "no --repo_id".
    model = _model(tmp_path, saved)
    return [model, "--repo_id", "", "--dry_run"], ("--repo_id", "''", "empty")


def empty_commit_message(tmp_path, saved):
    # huggingface_hub would replace it by its own default without a word.
    model = _model(tmp_path, saved)
    return [model, "--repo_id", "me/dems", "--commit_message", " ", "--dry_run"], ("--commit_message", "' '", "empty")


def invalid_base_model(tmp_path, saved):
    model = _model(tmp_path, saved)
    return [model, "--base_model", "my runs/pretrain", *_out(tmp_path)], ('--base_model', "'my runs/pretrain'")


def license_with_a_space(tmp_path, saved):
    model = _model(tmp_path, saved)
    return [model, "--license", "apache 2.0", *_out(tmp_path)], ('--license', "'apache 2.0'")



CASES = {
    case.__name__.replace("_", " "): case
    for case in (
        missing_source,
        weight_file_as_source,
        folder_without_config,
        torn_config,
        config_not_an_object,
        config_with_a_string_number,
        torn_safetensors,
        torn_pytorch_model_bin,
        pytorch_model_bin_the_safe_loader_refuses,
        index_naming_a_missing_shard,
        torn_index,
        weights_with_blocks_the_config_lacks,
        weights_of_another_class_count,
        torn_preprocessor_config,
        preprocessor_config_of_a_size_the_model_refuses,
        torn_training_summary,
        training_summary_with_a_string_dataset,
        torn_all_results,
        truncated_reference_pth,
        reference_pth_the_safe_loader_refuses,
        num_labels_other_than_the_head,
        zero_num_labels,
        image_mean_of_two_values,
        zero_image_std,
        nan_image_mean,
        normalisation_with_a_folder,
        label_file_with_more_names_than_classes,
        json_label_file_with_fewer_names_than_the_head,
        missing_label_file,
        label_folder,
        torn_label_json,
        label_json_that_is_a_string,
        label_json_with_an_id_missing,
        a_class_named_twice,
        an_empty_class_name,
        label_file_not_utf8,
        missing_results_file,
        results_folder,
        torn_results_file,
        results_file_of_a_list,
        missing_processor_folder,
        processor_file_instead_of_its_folder,
        processor_folder_without_its_file,
        torn_processor,
        processor_of_a_size_the_model_refuses,
        processor_with_normalisation_flags,
        local_dir_that_is_a_file,
        local_dir_under_a_file,
        local_dir_inside_the_source,
        local_dir_holding_the_source,
        local_dir_not_empty,
        label_file_that_overwrite_would_delete,
        overwrite_of_a_local_dir_with_torn_weights,
        upload_options_with_local_dir,
        dry_run_with_local_dir,
        nothing_to_do,
        invalid_repo_id,
        empty_repo_id,
        empty_commit_message,
        invalid_base_model,
        license_with_a_space,
    )
}


def _snapshot(root: Path) -> dict:
    """Every path under `root`: a file's bytes and mtime, a folder's presence."""
    return {
        p.relative_to(root).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns) if p.is_file() else "folder"
        for p in sorted(root.rglob("*"))
    }


@pytest.mark.parametrize("case", list(CASES))
def test_user_errors_name_the_option_and_value_and_change_nothing(tmp_path, saved, case):
    argv, fragments = CASES[case](tmp_path, saved)
    before = _snapshot(tmp_path)
    with pytest.raises(UserInputError) as error:
        push_to_hub.run(push_to_hub.parse_args([str(a) for a in argv]))
    message = str(error.value)
    assert [fragment for fragment in fragments if fragment not in message] == [], message
    assert "weights_only=False" not in message  # it would run whatever code the file carries
    assert _snapshot(tmp_path) == before


@pytest.mark.parametrize("case", ["missing_source", "torn_safetensors", "a_class_named_twice"])
def test_the_command_prints_a_user_error_in_one_line_with_exit_code_2(tmp_path, saved, capfd, case):
    argv, fragments = CASES[case.replace("_", " ")](tmp_path, saved)
    code = push_to_hub.main([str(a) for a in argv])
    # capfd, not capsys: transformers' logging writes to the stderr it saw first, which only the file descriptor
    # capture sees.
    out, err = capfd.readouterr()
    assert code == 2 and out == "" and "Traceback" not in err, err[-3000:]
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("push_to_hub.py: error: "), err[-3000:]
    assert all(fragment in lines[0] for fragment in fragments)


@pytest.mark.slow
def test_the_command_line_prints_one_line_where_transformers_would_print_a_report(tmp_path, saved):
    """A real process, so that anything transformers, torch or a warning would print on stderr is seen."""
    model = _model(tmp_path, saved)
    _edit_json(model / "config.json", num_hidden_layers=2)  # transformers' load report would list 11 tensors
    before = _snapshot(tmp_path)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    argv = [sys.executable, str(REPO_ROOT / "push_to_hub.py"), str(model), "--local_dir", str(tmp_path / "out")]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, env=env, cwd=REPO_ROOT)
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr[-3000:]
    assert lines[0].startswith("push_to_hub.py: error: ") and "11 tensors" in lines[0] and "config.json" in lines[0]
    assert _snapshot(tmp_path) == before


def test_label_json_object_names_the_classes_by_id(tmp_path, saved, capfd):
    # As convert's --id2label: {"0": name, ...}, read by id, not as the names "0", "1", "2".
    model = _model(tmp_path, saved)
    labels = _write(tmp_path / "labels.json", json.dumps({"1": "dog", "0": "cat", "2": "bird"}))
    code = push_to_hub.main([str(model), "--labels", str(labels), "--local_dir", str(tmp_path / "out")])
    assert code == 0, capfd.readouterr().err[-3000:]
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["id2label"] == {"0": "cat", "1": "dog", "2": "bird"}
    assert config["label2id"] == {"cat": 0, "dog": 1, "bird": 2}


def test_a_hub_failure_is_one_line_with_exit_code_1_and_changes_nothing(tmp_path, saved, capfd, monkeypatch):
    """Not a user error (the command line was fine): exit code 1, not 2, but one line all the same."""
    import httpx2
    import huggingface_hub.constants as hub_constants
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(hub_constants, "HF_TOKEN_PATH", str(tmp_path.parent / f"{tmp_path.name}-no-cached-token"))
    monkeypatch.setenv("HF_TOKEN", "hf_user_errors_test_token")

    def refuse(self, repo_id, **kwargs):
        request = httpx2.Request("POST", "https://huggingface.co/api/repos/create")
        raise HfHubHTTPError("403 Forbidden: no write access", response=httpx2.Response(403, request=request))

    monkeypatch.setattr(HfApi, "create_repo", refuse)
    model = _model(tmp_path, saved)
    labels = _write(tmp_path / "labels.txt", "cat\ndog\nbird\n")
    before = _snapshot(tmp_path)
    code = push_to_hub.main([str(model), "--repo_id", "me/dems", "--labels", str(labels)])
    out, err = capfd.readouterr()
    assert code == 1 and out == "" and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err[-3000:]
    assert lines[0].startswith("push_to_hub.py: error: ")
    fragments = ("me/dems", "403 Forbidden", "write access", "nothing was uploaded")
    assert all(fragment in lines[0] for fragment in fragments), lines[0]
    assert "hf_user_errors_test_token" not in err
    assert _snapshot(tmp_path) == before

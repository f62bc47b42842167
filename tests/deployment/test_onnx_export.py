"""export_onnx.py: a saved classifier becomes an ONNX folder whose ONNX Runtime logits equal PyTorch's at any batch
size, whose image processor feeds it, and which is written only once checked; bad input is one line and exit 2."""

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from command_helpers import assert_one_line_error as one_line_error
from PIL import Image
from tiny_configs import make_tiny_config
from transformers import AutoConfig

import dems_training.hub.onnx_export as onnx_export
from dems_training import UserInputError
from modeling_dems import DemsForImageClassification, DemsImageProcessor


REPO_ROOT = Path(__file__).resolve().parents[2]
# export_onnx.py is a top-level script, not part of the installed packages: load it from the checkout.
_spec = importlib.util.spec_from_file_location("export_onnx", REPO_ROOT / "export_onnx.py")
export_onnx_command = sys.modules.setdefault("export_onnx", importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(export_onnx_command)

pytestmark = pytest.mark.usefixtures("single_torch_thread")


def _save_classifier(folder: Path, seed: int) -> DemsForImageClassification:
    torch.manual_seed(seed)
    config = make_tiny_config("four_regions")
    model = DemsForImageClassification(config).eval()
    model.save_pretrained(folder)
    DemsImageProcessor.from_model_config(config).save_pretrained(folder)
    return model


def run_main(capsys, *argv):
    code = export_onnx_command.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code, err, *fragments, exit_code=2):
    one_line_error("export_onnx.py", code, err, *fragments, exit_code=exit_code)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A saved classifier, and its ONNX folder written over an existing, non-empty output with --overwrite."""
    root = tmp_path_factory.mktemp("onnx")
    model = _save_classifier(root / "model", seed=0)
    out = root / "onnx"
    out.mkdir()
    (out / "stale.txt").write_text("from an earlier export")
    code = export_onnx_command.main([str(root / "model"), str(out), "--overwrite"])
    assert code == 0
    return model, root / "model", out


@pytest.mark.slow  # exports and runs ONNX (the module's shared export)
def test_the_folder_holds_the_model_its_labels_and_its_processor(exported):
    model, _, out = exported
    files = sorted(p.name for p in out.iterdir())
    assert files == [
        "config.json",
        "configuration_dems.py",
        "image_processing_dems.py",
        "model.onnx",
        "preprocessor_config.json",
    ]  # the stale file went with --overwrite
    config = json.loads((out / "config.json").read_text())
    assert config["id2label"] == {"0": "cat", "1": "dog", "2": "bird"}
    # only the configuration's code is there: auto_map names nothing else
    assert config["auto_map"] == {"AutoConfig": "configuration_dems.DemsConfig"}
    assert type(AutoConfig.from_pretrained(out)).__name__ == "DemsConfig"
    session = onnx_export.onnx_session(out / "model.onnx")
    (feed,) = session.get_inputs()
    assert (feed.name, feed.shape[1:], feed.type) == ("pixel_values", [3, 32, 32], "tensor(float)")
    assert isinstance(feed.shape[0], str)  # the batch axis is symbolic
    assert [o.name for o in session.get_outputs()] == ["logits"]


@pytest.mark.slow  # exports and runs ONNX (the module's shared export)
@pytest.mark.parametrize("batch_size", [1, 3, 8])
def test_onnx_runtime_gives_pytorchs_logits_at_any_batch_size(exported, batch_size):
    model, _, out = exported
    session = onnx_export.onnx_session(out / "model.onnx")
    pixels = torch.randn(batch_size, 3, 32, 32, generator=torch.Generator().manual_seed(batch_size))
    with torch.no_grad():
        expected = model(pixels).logits.numpy()
    (logits,) = session.run(["logits"], {"pixel_values": pixels.numpy()})
    assert logits.shape == (batch_size, 3)
    assert np.abs(logits - expected).max() <= 1e-4


@pytest.mark.slow  # exports and runs ONNX (the module's shared export)
def test_images_through_the_saved_processor_into_onnx_runtime(exported):
    # docs/deployment.md's inference example, step by step
    model, _, out = exported
    processor = DemsImageProcessor.from_pretrained(out)
    config = AutoConfig.from_pretrained(out)
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (40 + 7 * i, 30, 3), dtype=np.uint8)) for i in range(3)]
    pixel_values = processor(images, return_tensors="np")["pixel_values"]
    (logits,) = onnx_export.onnx_session(out / "model.onnx").run(["logits"], {"pixel_values": pixel_values})
    with torch.no_grad():
        expected = model(torch.from_numpy(pixel_values)).logits.numpy()
    np.testing.assert_allclose(logits, expected, rtol=0, atol=1e-4)
    labels = [config.id2label[int(i)] for i in logits.argmax(-1)]
    assert labels == [config.id2label[int(i)] for i in expected.argmax(-1)]


@pytest.mark.slow
def test_the_command_reports_the_check(exported, tmp_path, capsys):
    _, model_dir, out = exported
    # a second export, into a new folder: what it prints
    code, stdout, err = run_main(capsys, model_dir, tmp_path / "new" / "onnx")
    assert code == 0, err
    assert f"wrote {tmp_path / 'new' / 'onnx'}: config.json" in stdout
    assert "ONNX Runtime vs PyTorch, largest logit difference (allowed 0.0001): batch 1: " in stdout
    assert "batch 8: " in stdout
    assert (tmp_path / "new" / "onnx" / "model.onnx").stat().st_size == (out / "model.onnx").stat().st_size


@pytest.mark.slow  # exports and runs ONNX (the module's shared export)
def test_an_export_whose_logits_differ_is_not_written(exported, tmp_path, capsys, monkeypatch):
    # Another model's graph under this model's name: the check must catch it, and nothing may be left behind.
    _, _, out = exported
    other = tmp_path / "other"
    _save_classifier(other, seed=1)
    copy_the_first_graph = lambda model, path, opset: shutil.copyfile(out / "model.onnx", path)  # noqa: E731
    monkeypatch.setattr(onnx_export, "export_onnx", copy_the_first_graph)
    target = tmp_path / "target"
    code, stdout, err = run_main(capsys, other, target)
    assert_one_line_error(
        code, err, "ONNX Runtime's logits differ from PyTorch's", "at batch 1", "not written", exit_code=1
    )
    assert not target.exists() and stdout == ""
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".dems-onnx-")] == []  # no staging left


@pytest.mark.slow  # exports and runs ONNX (the module's shared export)
def test_check_onnx_measures_the_difference(exported):
    model, _, out = exported
    differences = onnx_export.check_onnx(model, out / "model.onnx")
    assert set(differences) == {1, 8} and max(differences.values()) <= 1e-4
    with torch.no_grad():
        model.classifier.bias.add_(1e-3)  # a change just above the tolerance
    try:
        with pytest.raises(onnx_export.OnnxCheckError, match=r"differ from PyTorch's by up to 0.001 at batch 1"):
            onnx_export.check_onnx(model, out / "model.onnx")
    finally:
        with torch.no_grad():
            model.classifier.bias.sub_(1e-3)


# ----------------------------------------------------------------------------------------------------- bad input


@pytest.fixture
def saved_folder(tmp_path) -> Path:
    _save_classifier(tmp_path / "model", seed=0)
    return tmp_path / "model"


def test_a_folder_that_is_not_a_model(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = run_main(capsys, empty, tmp_path / "out")
    assert_one_line_error(code, err, f"source {empty} has no config.json: not a save_pretrained model folder")
    (tmp_path / "vit").mkdir()
    (tmp_path / "vit" / "config.json").write_text(json.dumps({"model_type": "vit"}))
    code, _, err = run_main(capsys, tmp_path / "vit", tmp_path / "out")
    assert_one_line_error(code, err, "the config of a 'vit' model, not a DEMS-ViT ('dems') one")
    code, _, err = run_main(capsys, tmp_path / "missing", tmp_path / "out")
    assert_one_line_error(code, err, f"model_dir {tmp_path / 'missing'} does not exist")
    (tmp_path / "file.bin").write_bytes(b"")
    code, _, err = run_main(capsys, tmp_path / "file.bin", tmp_path / "out")
    assert_one_line_error(code, err, f"model_dir {tmp_path / 'file.bin'} is not a folder")
    assert not (tmp_path / "out").exists()


def test_weights_that_do_not_load_are_named(saved_folder, tmp_path, capsys):
    weights = saved_folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    code, _, err = run_main(capsys, saved_folder, tmp_path / "out")
    assert_one_line_error(code, err, f"cannot read {weights}: it is truncated or not a safetensors file")


@pytest.mark.parametrize("kind", ["file", "folder"])
def test_an_existing_output_needs_overwrite(saved_folder, tmp_path, capsys, kind):
    out = tmp_path / "out"
    if kind == "file":
        out.write_text("keep me")
        expected = "exists (a file); pass --overwrite to replace it"
    else:
        out.mkdir()
        (out / "model.onnx").write_text("keep me")
        expected = "exists (a folder that is not empty); pass --overwrite to replace it"
    code, stdout, err = run_main(capsys, saved_folder, out)
    assert_one_line_error(code, err, f"output_dir {out} {expected}")
    assert stdout == ""
    assert (out if kind == "file" else out / "model.onnx").read_text() == "keep me"


def test_the_output_may_not_hold_or_sit_in_the_model(saved_folder, capsys):
    code, _, err = run_main(capsys, saved_folder, saved_folder, "--overwrite")
    assert_one_line_error(code, err, "holds the model folder")
    code, _, err = run_main(capsys, saved_folder, saved_folder.parent, "--overwrite")
    assert_one_line_error(code, err, "holds the model folder")
    code, _, err = run_main(capsys, saved_folder, saved_folder / "onnx")
    assert_one_line_error(code, err, "lies inside the model folder")
    assert sorted(p.name for p in saved_folder.iterdir()) == [
        "config.json",
        "configuration_dems.py",
        "image_processing_dems.py",
        "model.safetensors",
        "modeling_dems.py",
        "preprocessor_config.json",
    ]


def test_missing_onnx_packages_are_named(monkeypatch):
    monkeypatch.setattr(onnx_export, "ONNX_PACKAGES", ("onnx", "no_such_onnx_package"))
    with pytest.raises(UserInputError, match=r"the ONNX export needs no_such_onnx_package, not installed: pip install"):
        onnx_export.require_onnx_packages()

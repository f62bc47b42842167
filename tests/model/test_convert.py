"""Reference checkpoints: layout, conversion, logits parity with an independent reference forward, and errors."""

import argparse
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from fragments import raises_naming
from reference_dems import random_reference_state_dict, reference_logits, reference_state_dict_shapes

from modeling_dems import DemsForImageClassification
from modeling_dems.command_line import UserInputError
from modeling_dems.convert import ReferenceCheckpointError, load_reference_checkpoint, main


# A copy of the spec's listing (shared/spec/reference_state_dict.txt), so that the suite needs nothing outside the repo.
SPEC = Path(__file__).parent / "data" / "reference_state_dict.txt"
TINY_100 = {"dim": 192, "patch": 2, "image_size": 32, "channels": 3, "depth": 12, "classes": 100, "merged": (64, 64)}
SMALL_LAYOUT = {"dim": 32, "patch": 2, "image_size": 32, "channels": 3, "depth": 4, "classes": 5, "merged": (10, 3)}


def _spec_shapes() -> dict[str, tuple[int, ...]]:
    """Keys and shapes from reference_state_dict.txt; blocks.0 stands for blocks.0 .. blocks.11."""
    shapes = {}
    for line in SPEC.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, dims = re.match(r"(\S+) \(([^)]*)\)", line).groups()
        shape = tuple(int(d) for d in dims.split(",") if d.strip())
        for i in range(12) if name.startswith("blocks.0.") else [None]:
            shapes[name.replace("blocks.0.", f"blocks.{i}.") if i is not None else name] = shape
    return shapes


def _checkpoint(state_dict: dict) -> dict:
    """Wrapped as the reference saves it: under `model`, DDP's `module.` prefix, training state beside it."""
    return {"model": {f"module.{k}": v for k, v in state_dict.items()}, "optimizer": {}, "epoch": 799, "scaler": {}}


def test_test_layout_matches_the_spec_listing():
    assert reference_state_dict_shapes(**TINY_100) == _spec_shapes()


@pytest.mark.parametrize(
    ("layout", "heads"),
    [
        (TINY_100, 3),
        ({**TINY_100, "patch": 16, "image_size": 256, "classes": 101}, 3),
        ({**TINY_100, "dim": 384, "merged": (64, 32), "classes": 10}, 6),
    ],
    ids=["tiny-32", "tiny-256", "small-32"],
)
@pytest.mark.slow  # the reference presets at full size; test_small_layout_with_given_merges_and_heads is the quick one
def test_converted_checkpoint_gives_the_reference_logits(tmp_path, layout, heads):
    state_dict = random_reference_state_dict(seed=1, **layout)
    path = tmp_path / "checkpoint.pth"
    torch.save(_checkpoint(state_dict), path)
    model = load_reference_checkpoint(path)
    assert model.config.num_attention_heads == heads and model.config.num_labels == layout["classes"]
    size = layout["image_size"]
    pixels = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(2))
    expected = reference_logits(state_dict, pixels, image_size=size, patch=layout["patch"], heads=heads, depth=12)
    with torch.no_grad():
        torch.testing.assert_close(model(pixels).logits, expected, rtol=0, atol=1e-5)


def test_small_layout_with_given_merges_and_heads():
    state_dict = random_reference_state_dict(seed=3, **SMALL_LAYOUT)
    model = load_reference_checkpoint({"model": state_dict}, merge_layers=[2, 4], num_attention_heads=2)
    pixels = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    expected = reference_logits(state_dict, pixels, image_size=32, patch=2, heads=2, depth=4, merge_layers=(2, 4))
    with torch.no_grad():
        torch.testing.assert_close(model(pixels).logits, expected, rtol=0, atol=1e-5)


def test_missing_key_is_named():
    state_dict = random_reference_state_dict(**SMALL_LAYOUT)
    del state_dict["blocks.3.mlp.fc2.bias"]
    with raises_naming(ReferenceCheckpointError, "lacks", "encoder.layers.3.mlp.fc2.bias"):
        load_reference_checkpoint(_checkpoint(state_dict), merge_layers=[2, 4])


def test_extra_key_is_named():
    state_dict = random_reference_state_dict(**SMALL_LAYOUT)
    state_dict["dist_token"] = torch.zeros(1, 1, 32)
    with raises_naming(ReferenceCheckpointError, "'dist_token'"):
        load_reference_checkpoint(_checkpoint(state_dict), merge_layers=[2, 4])


def test_dropped_keys_are_checked_not_ignored():
    state_dict = random_reference_state_dict(**SMALL_LAYOUT)
    state_dict["norm_merge2.weight"] = state_dict["norm_merge2.weight"] + 1
    with raises_naming(ReferenceCheckpointError, "norm_merge2.weight", "mlp2.norm"):
        load_reference_checkpoint(state_dict, merge_layers=[2, 4])
    state_dict = random_reference_state_dict(**SMALL_LAYOUT)
    state_dict["pos_embed_4"] = torch.zeros_like(state_dict["pos_embed_4"])
    with raises_naming(ReferenceCheckpointError, "pos_embed_4", "sin-cos", "4x4"):
        load_reference_checkpoint(state_dict, merge_layers=[2, 4])


def test_the_converters_errors_are_its_own_value_errors():
    # The model package stands alone: its errors come from it, and a caller may catch them as ValueError.
    assert issubclass(ReferenceCheckpointError, ValueError)
    assert ReferenceCheckpointError.__module__ == "modeling_dems.convert"
    assert UserInputError.__module__ == "modeling_dems.command_line"


def test_wrong_shapes_and_labels_are_explained():
    state_dict = random_reference_state_dict(**SMALL_LAYOUT)
    with raises_naming(ReferenceCheckpointError, "num_labels=7", "5 classes"):
        load_reference_checkpoint(state_dict, num_labels=7, merge_layers=[2, 4])
    with raises_naming(ReferenceCheckpointError, "preset='base-32'"):
        load_reference_checkpoint(state_dict, preset="base-32")
    with raises_naming(ReferenceCheckpointError, "'model'"):
        load_reference_checkpoint({"model": {"a": "not a tensor"}})


def test_command_line_writes_a_loadable_folder(tmp_path, capsys):
    state_dict = random_reference_state_dict(**SMALL_LAYOUT)
    torch.save(_checkpoint(state_dict), tmp_path / "ref.pth")
    (tmp_path / "labels.json").write_text('["a", "b", "c", "d", "e"]')
    out = tmp_path / "converted"
    args = [str(tmp_path / "ref.pth"), str(out), "--merge_layers", "2", "4", "--num_attention_heads", "2"]
    assert main(args + ["--id2label", str(tmp_path / "labels.json")]) == 0
    loaded = DemsForImageClassification.from_pretrained(out)
    assert loaded.config.id2label[4] == "e" and loaded.config.merge_layers == [2, 4]
    assert (out / "preprocessor_config.json").exists()

    # a second run must not overwrite what is there
    before = (out / "model.safetensors").stat().st_mtime_ns
    assert main(args) == 2
    assert "not empty; pass --overwrite" in capsys.readouterr().err
    assert (out / "model.safetensors").stat().st_mtime_ns == before
    assert main(args + ["--overwrite"]) == 0

    state_dict["extra.weight"] = torch.zeros(1)
    torch.save(_checkpoint(state_dict), tmp_path / "bad.pth")
    assert main([str(tmp_path / "bad.pth"), str(tmp_path / "bad_out"), "--merge_layers", "2", "4"]) == 2
    assert "no place for: ['extra.weight']" in capsys.readouterr().err


@pytest.mark.slow
def test_python_dash_m_convert_writes_a_folder_that_loads_as_remote_code(tmp_path):
    """`python -m modeling_dems.convert` is transformers' save_pretrained: the folder carries the code and auto_map,
    so it loads where the project is not installed."""
    import subprocess
    import sys

    from hub_helpers import check_loads_without_the_project

    torch.manual_seed(0)
    torch.save(_checkpoint(random_reference_state_dict(**SMALL_LAYOUT)), tmp_path / "ref.pth")
    out = tmp_path / "converted"
    command = [sys.executable, "-m", "modeling_dems.convert", str(tmp_path / "ref.pth"), str(out),
               "--merge_layers", "2", "4", "--num_attention_heads", "2"]
    proc = subprocess.run(command, cwd=Path(__file__).parents[2], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for name in ("modeling_dems.py", "configuration_dems.py", "image_processing_dems.py"):
        assert (out / name).is_file(), name
    check_loads_without_the_project(DemsForImageClassification.from_pretrained(out), out, tmp_path)


@pytest.fixture
def small_checkpoint(tmp_path) -> Path:
    path = tmp_path / "ref.pth"
    torch.save(_checkpoint(random_reference_state_dict(**SMALL_LAYOUT)), path)
    return path


def _one_line_error(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("python -m modeling_dems.convert: error: "), lines
    return lines[0]


def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("truncated", ("ref.pth", "truncated")),
        ("empty", ("ref.pth", "EOFError")),
        ("text", ("ref.pth", "UnpicklingError")),
        ("missing", ("ref.pth", "no such file")),
        ("folder", ("ref.pth", "folder")),
    ],
)
def test_unreadable_checkpoints_are_one_line_errors(small_checkpoint, tmp_path, capsys, damage, message):
    if damage == "truncated":
        _truncate(small_checkpoint)
    elif damage == "empty":
        small_checkpoint.write_bytes(b"")
    elif damage == "text":
        small_checkpoint.write_text("not a checkpoint")
    else:
        small_checkpoint.unlink()
        if damage == "folder":
            small_checkpoint.mkdir()
    out = tmp_path / "out"
    assert main([str(small_checkpoint), str(out), "--merge_layers", "2", "4"]) == 2
    line = _one_line_error(capsys)
    assert all(fragment in line for fragment in message), line
    assert not out.exists()  # nothing written


def test_a_checkpoint_the_safe_loader_refuses_is_explained_without_weights_only_false(tmp_path, capsys):
    checkpoint = _checkpoint(random_reference_state_dict(**SMALL_LAYOUT))
    checkpoint["args"] = argparse.Namespace(lr=5e-4)  # what many training scripts save beside the weights
    torch.save(checkpoint, tmp_path / "ref.pth")
    assert main([str(tmp_path / "ref.pth"), str(tmp_path / "out")]) == 2
    line = _one_line_error(capsys)
    assert "weights_only=True" in line and "argparse.Namespace" in line and "'model' entry" in line
    assert "weights_only=False" not in line


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ('["a", "b", "c"]', ("id2label", "3 class names", "5 classes")),
        ('["a", "b", "c", "d", "e", "f"]', ("id2label", "6 class names", "5 classes")),
        ('{"0": "a", "1": "b", "2": "c", "3": "d", "5": "e"}', ("--id2label", "[0, 1, 2, 3, 5]")),
        ('["a", "b", "a", "d", "e"]', ("--id2label", "distinct")),
        ('["a", "b", 3, "d", "e"]', ("--id2label", "distinct")),
        ('{"cat": 0}', ("--id2label", "list of class names")),
        ('["a", "b",', ("--id2label", "labels.json", "not valid JSON")),
        (None, ("--id2label", "labels.json", "cannot read")),
    ],
)
def test_label_files_that_do_not_fit_the_head_are_refused(small_checkpoint, tmp_path, capsys, labels, message):
    # 3 names for a 5-class head must not be dropped silently with exit code 0.
    labels_file = tmp_path / "labels.json"
    if labels is not None:
        labels_file.write_text(labels)
    out = tmp_path / "out"
    code = main([str(small_checkpoint), str(out), "--merge_layers", "2", "4", "--id2label", str(labels_file)])
    assert code == 2
    line = _one_line_error(capsys)
    assert all(fragment in line for fragment in message), line
    assert not out.exists()


def test_an_output_dir_that_is_a_file_and_bad_settings_are_refused(small_checkpoint, tmp_path, capsys):
    mine = tmp_path / "notes.txt"
    mine.write_text("my own file")
    assert main([str(small_checkpoint), str(mine), "--merge_layers", "2", "4"]) == 2
    line = _one_line_error(capsys)
    assert "output_dir" in line and "notes.txt" in line and "is a file" in line
    assert mine.read_text() == "my own file"
    assert main([str(small_checkpoint), str(tmp_path / "out"), "--merge_layers", "2", "20"]) == 2
    line = _one_line_error(capsys)
    assert "merge_layers=[2, 20]" in line and "20" in line


@pytest.mark.slow
def test_the_command_prints_no_traceback(small_checkpoint, tmp_path):
    _truncate(small_checkpoint, keep=0.9)
    result = subprocess.run(
        [sys.executable, "-m", "modeling_dems.convert", str(small_checkpoint), str(tmp_path / "out")],
        cwd=Path(__file__).parents[2], capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("python -m modeling_dems.convert: error: "), result.stderr
    assert "ref.pth" in lines[0] and "truncated" in lines[0]

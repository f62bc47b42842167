"""Reference checkpoints: layout, conversion, logits parity with an independent reference forward, and errors."""

import re
from pathlib import Path

import pytest
import torch
from reference_dems import random_reference_state_dict, reference_logits, reference_state_dict_shapes

from modeling_dems import DemsForImageClassification
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
    with pytest.raises(
        ReferenceCheckpointError, match=r"lacks weights the model needs: .*encoder.layers.3.mlp.fc2.bias"
    ):
        load_reference_checkpoint(_checkpoint(state_dict), merge_layers=[2, 4])


def test_extra_key_is_named():
    state_dict = random_reference_state_dict(**SMALL_LAYOUT)
    state_dict["dist_token"] = torch.zeros(1, 1, 32)
    with pytest.raises(ReferenceCheckpointError, match=r"no place for: \['dist_token'\]"):
        load_reference_checkpoint(_checkpoint(state_dict), merge_layers=[2, 4])


def test_dropped_keys_are_checked_not_ignored():
    state_dict = random_reference_state_dict(**SMALL_LAYOUT)
    state_dict["norm_merge2.weight"] = state_dict["norm_merge2.weight"] + 1
    with pytest.raises(ReferenceCheckpointError, match=r"norm_merge2.weight should be the same tensor as mlp2.norm"):
        load_reference_checkpoint(state_dict, merge_layers=[2, 4])
    state_dict = random_reference_state_dict(**SMALL_LAYOUT)
    state_dict["pos_embed_4"] = torch.zeros_like(state_dict["pos_embed_4"])
    with pytest.raises(ReferenceCheckpointError, match=r"pos_embed_4 .* not the fixed sin-cos embedding of a 4x4 grid"):
        load_reference_checkpoint(state_dict, merge_layers=[2, 4])


def test_wrong_shapes_and_labels_are_explained():
    state_dict = random_reference_state_dict(**SMALL_LAYOUT)
    with pytest.raises(ReferenceCheckpointError, match=r"num_labels=7 but the checkpoint's head has 5 classes"):
        load_reference_checkpoint(state_dict, num_labels=7, merge_layers=[2, 4])
    with pytest.raises(ReferenceCheckpointError, match=r"preset='base-32' is not a DEMS preset"):
        load_reference_checkpoint(state_dict, preset="base-32")
    with pytest.raises(ReferenceCheckpointError, match=r"not a reference DEMS checkpoint"):
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
    with pytest.raises(SystemExit):
        main(args)
    assert "not empty; pass --overwrite" in capsys.readouterr().err
    assert (out / "model.safetensors").stat().st_mtime_ns == before
    assert main(args + ["--overwrite"]) == 0

    state_dict["extra.weight"] = torch.zeros(1)
    torch.save(_checkpoint(state_dict), tmp_path / "bad.pth")
    assert main([str(tmp_path / "bad.pth"), str(tmp_path / "bad_out"), "--merge_layers", "2", "4"]) == 2
    assert "no place for: ['extra.weight']" in capsys.readouterr().err


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
    proc = subprocess.run(command, cwd=Path(__file__).parents[1], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for name in ("modeling_dems.py", "configuration_dems.py", "image_processing_dems.py"):
        assert (out / name).is_file(), name
    check_loads_without_the_project(DemsForImageClassification.from_pretrained(out), out, tmp_path)

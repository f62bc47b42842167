"""Shared pieces of the sharing tests: what a folder holds, and loading it as a Hub user without this project
would (push_isolated_load.py in a fresh `python -I`, offline) with the results checked against the local model."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from modeling_dems import DemsImageProcessor


def exported_files(folder: Path) -> list[str]:
    """Every file under `folder`, as a path relative to it."""
    return sorted(p.relative_to(folder).as_posix() for p in Path(folder).rglob("*") if p.is_file())


def check_loads_without_the_project(model, folder: Path, tmp_path: Path) -> None:
    """AutoModelForImageClassification, AutoModel, AutoImageProcessor and pipeline with trust_remote_code=True, in an
    interpreter that cannot import the project and is offline, give `model`'s outputs to 1e-6."""
    config = model.config
    generator = torch.Generator().manual_seed(1)
    pixels = torch.randn(2, config.num_channels, config.image_size, config.image_size, generator=generator)
    np.save(tmp_path / "pixels.npy", pixels.numpy())
    image = Image.fromarray(np.random.RandomState(0).randint(0, 256, (20, 24, 3), dtype=np.uint8))
    image.save(tmp_path / "image.png")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "HF_", "HUGGING"))}
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf_home"))
    run_dir = tmp_path / "elsewhere"
    run_dir.mkdir()
    out = tmp_path / "loaded.json"
    helper = Path(__file__).with_name("push_isolated_load.py")
    argv = [sys.executable, "-I", str(helper), str(folder), str(tmp_path / "pixels.npy"), str(tmp_path / "image.png")]
    proc = subprocess.run([*argv, str(out)], cwd=run_dir, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    loaded = json.loads(out.read_text())

    # Everything came from the folder's code, none from the project.
    assert loaded["project_modules"] == []
    for key in ("config_class", "processor_class", "model_class", "encoder_class"):
        assert loaded[key].startswith("transformers_modules."), loaded[key]
    assert loaded["model_class"].endswith("modeling_dems.DemsForImageClassification")
    assert loaded["encoder_class"].endswith("modeling_dems.DemsModel")

    model.eval()
    with torch.no_grad():
        expected = model(pixel_values=pixels).logits
        expected_pooled = model.dems(pixel_values=pixels).pooler_output
        processed = DemsImageProcessor.from_pretrained(folder)(images=image, return_tensors="pt")["pixel_values"]
        expected_image = model(pixel_values=processed).logits
    torch.testing.assert_close(torch.tensor(loaded["logits"]), expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(torch.tensor(loaded["pooled"]), expected_pooled, rtol=0, atol=1e-6)
    torch.testing.assert_close(torch.tensor(loaded["processed"]), processed, rtol=0, atol=1e-6)
    torch.testing.assert_close(torch.tensor(loaded["image_logits"]), expected_image, rtol=0, atol=1e-6)

    probabilities = expected_image.softmax(-1)[0]
    pipeline_scores = {p["label"]: p["score"] for p in loaded["pipeline"]}
    assert set(pipeline_scores) == set(config.id2label.values())
    for index, name in config.id2label.items():
        assert pipeline_scores[name] == pytest.approx(probabilities[index].item(), abs=1e-5)

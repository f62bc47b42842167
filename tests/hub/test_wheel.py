"""A regular, non-editable install works: the wheel built from the checkout, installed into a fresh virtual
environment that cannot see the checkout, imports every module of the library and evaluates a tiny model with the
top-k metric (whose `evaluate` script is package data, not a module)."""

import json
import os
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from tiny_configs import tiny_config_fields


REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("configuration_dems", "modeling_dems", "dems_training")
METRIC_SCRIPT = "dems_training/metrics/top_k_accuracy/top_k_accuracy.py"
# Builds the wheel and installs it in a new environment.
pytestmark = pytest.mark.slow
# What a fresh clone holds (plus anything untracked): no virtual environment, build output or run folders.
NOT_SOURCE = (".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", ".ruff_cache",
              "outputs", "runs")

# Run by the fresh environment's interpreter, in isolated mode (-I: neither the working directory nor PYTHONPATH
# on sys.path), from a folder outside the checkout.
USE_THE_INSTALL = r"""
import importlib, json, pkgutil, sys
import torch
from transformers import EvalPrediction

modules = {}
for name in sys.argv[1].split(","):
    package = importlib.import_module(name)
    modules[name] = package.__file__
    for info in pkgutil.walk_packages(package.__path__, name + "."):
        modules[info.name] = importlib.import_module(info.name).__file__

from dems_training.metrics import TOP_K_ACCURACY_PATH, TopKAccuracy
from modeling_dems import DemsConfig, DemsForImageClassification

torch.manual_seed(0)
config = DemsConfig(**json.loads(sys.argv[2]))  # the tests' "tiny" config, 4 classes
model = DemsForImageClassification(config).eval()
pixels = torch.randn(8, 3, 16, 16)
labels = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
with torch.no_grad():
    logits = model(pixel_values=pixels).logits
ranked = TopKAccuracy.keep_top_k(logits, labels, k=2)
metrics = TopKAccuracy(top_k=(1, 2))(EvalPrediction(predictions=ranked.numpy(), label_ids=labels.numpy()))
print(json.dumps({"modules": modules, "metric_path": TOP_K_ACCURACY_PATH, "logits": logits.tolist(),
                  "labels": labels.tolist(), "metrics": metrics}))
"""


def run(command, **kwargs):
    proc = subprocess.run([str(c) for c in command], capture_output=True, text=True, timeout=300, **kwargs)
    assert proc.returncode == 0, (command, proc.stdout[-2000:], proc.stderr[-3000:])
    return proc


def test_wheel_installs_and_evaluates_without_the_checkout(tmp_path):
    source = tmp_path / "source"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(*NOT_SOURCE))
    wheels = tmp_path / "wheels"
    # setuptools from this environment builds it (no build isolation: nothing to download).
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", wheels, source])
    (wheel,) = wheels.glob("dems-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        assert METRIC_SCRIPT in archive.namelist()

    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", venv])
    python = venv / "bin" / "python"
    run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", wheel])
    # The dependencies (torch, transformers, ...) come from this environment through a path entry, as the
    # Makefile's torch-first install would provide them: nothing is downloaded. A path entry runs none of the .pth
    # files of that folder, so the checkout's editable-install hook stays off.
    (installed_site,) = (venv / "lib").glob("python*/site-packages")
    (installed_site / "dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "HF_", "HUGGING"))}
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf_home"), OMP_NUM_THREADS="1")
    config = json.dumps(tiny_config_fields("tiny", labels=4))
    proc = run([python, "-I", "-c", USE_THE_INSTALL, ",".join(PACKAGES), config], cwd=elsewhere, env=env)
    used = json.loads(proc.stdout.strip().splitlines()[-1])

    # Every module of the library came from the wheel's install, none from the checkout.
    assert {name.split(".")[0] for name in used["modules"]} == set(PACKAGES)
    assert "dems_training.hub.export" in used["modules"] and "modeling_dems.configuration_dems" in used["modules"]
    for name, path in used["modules"].items():
        assert Path(path).is_relative_to(installed_site), (name, path)
    assert Path(used["metric_path"]).is_relative_to(installed_site)

    # The metric's numbers, counted by hand from the logits.
    logits, labels = np.array(used["logits"]), np.array(used["labels"])
    order = np.argsort(-logits, axis=1)
    top1 = np.mean(order[:, 0] == labels)
    top2 = np.mean([label in row[:2] for row, label in zip(order, labels, strict=True)])
    assert used["metrics"] == {"top1_accuracy": top1, "top2_accuracy": top2}

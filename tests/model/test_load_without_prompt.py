"""Every documented way to load a saved model loads without asking "Do you wish to run the custom code?" and without
waiting for an answer: each runs in a fresh interpreter whose standard input stays open, as in a script started from
a terminal or a notebook's kernel, where transformers' prompt waits 15 seconds before going on."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tiny_configs import make_tiny_config

from modeling_dems import DemsForImageClassification, DemsImageProcessor


HELPER = Path(__file__).with_name("load_quietly.py")
# A load here takes well under a second; the prompt's wait is 15 seconds. The margin is for a busy machine.
SLOWEST_LOAD_SECONDS = 8.0
PROMPT_TEXTS = ("Do you wish to run the custom code", "trust_remote_code=True", "[y/N]")
EXPECTED_CLASS = {
    "AutoConfig": "DemsConfig",
    "AutoImageProcessor": "DemsImageProcessor",
    "AutoModel": "DemsModel",
    "AutoModelForImageClassification": "DemsForImageClassification",
    "pipeline": "ImageClassificationPipeline",
}


@pytest.fixture(scope="module")
def saved_folder(tmp_path_factory) -> Path:
    """A classifier and its processor saved as train.py saves them (save_pretrained: weights, code, auto_map)."""
    folder = tmp_path_factory.mktemp("saved")
    torch.manual_seed(0)
    config = make_tiny_config("four_regions")
    DemsForImageClassification(config).save_pretrained(folder)
    DemsImageProcessor.from_model_config(config).save_pretrained(folder)
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("way", list(EXPECTED_CLASS))
@pytest.mark.parametrize("mode", ["local", "remote"])
def test_loads_without_a_prompt_or_a_stall(saved_folder, tmp_path, mode, way):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "HF_", "HUGGING"))}
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf_home"), OMP_NUM_THREADS="1")
    stdout, stderr = tmp_path / "stdout", tmp_path / "stderr"
    with open(stdout, "w") as out, open(stderr, "w") as err:
        # stdin is a pipe that this test never writes to nor closes until the load is over: a prompt would wait.
        proc = subprocess.Popen(
            [sys.executable, "-I", str(HELPER), mode, way, str(saved_folder)],
            stdin=subprocess.PIPE, stdout=out, stderr=err, cwd=tmp_path, env=env,
        )  # fmt: skip
        try:
            returncode = proc.wait(timeout=300)
        finally:
            proc.stdin.close()
            proc.kill()
    printed, logged = stdout.read_text(), stderr.read_text()
    for text in PROMPT_TEXTS:
        assert text not in printed + logged, f"prompted:\n{printed}\n{logged[-3000:]}"
    assert returncode == 0, logged[-3000:]
    result = json.loads(printed.strip().splitlines()[-1])
    assert result["class"] == EXPECTED_CLASS[way]
    assert result["seconds"] < SLOWEST_LOAD_SECONDS, f"the load took {result['seconds']:.1f} s"

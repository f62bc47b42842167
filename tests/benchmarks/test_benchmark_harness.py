"""benchmarks/harness.py: the settings both benchmark scripts build from their flags, the model and batch they give,
the clock passed to the timer, and the one-line exit-2 report of a flag that cannot work, as both scripts print it."""

import argparse
import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from fragments import raises_naming

from benchmarks.harness import BenchmarkSettings, make_batch, make_config, timed
from dems_training import UserInputError


REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"batch_size": 0}, "--batch_size=0 must be at least 1."),
        ({"num_labels": 0}, "--num_labels=0 must be at least 1."),
        ({"iters": 0}, "--iters=0 must be at least 1."),
        ({"warmup": -1}, "--warmup=-1 must be at least 0."),
        ({"threads": 0}, "--threads=0 must be at least 1."),
        ({"dtype": "fp8"}, "--dtype='fp8' must be one of ['bf16', 'fp16', 'fp32']."),
        ({"clock": "gpu"}, "--clock='gpu' must be one of ('wall', 'cpu')."),
        ({"clock": "cpu", "threads": 2}, "--clock cpu measures one CPU thread: pass --threads 1 and --device cpu"),
        ({"clock": "cpu", "threads": 1, "device": "cuda"}, "pass --threads 1 and --device cpu"),
        ({"device": "gpu"}, "--device='gpu' is not a torch device, e.g. cpu, cuda, cuda:1."),
        ({"config_overrides": ("hidden=3",)}, "--override: 'hidden' is not a DemsConfig field."),
    ],
)
def test_settings_that_cannot_work_are_refused_naming_the_flag(fields, message):
    with pytest.raises(UserInputError) as error:
        BenchmarkSettings(**fields)
    assert message in str(error.value)


def test_a_cuda_device_without_cuda_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with raises_naming(UserInputError, "--device='cuda:1'", "CUDA"):
        BenchmarkSettings(device="cuda:1")


def test_settings_come_from_the_flags_a_script_has_and_cannot_be_changed():
    args = argparse.Namespace(
        preset="tiny-32", num_labels=7, batch_size=4, override=["image_size=16"], threads=1, top=5, json=None
    )
    settings = BenchmarkSettings.from_arguments(args, warmup=0)
    assert (settings.num_labels, settings.batch_size, settings.threads, settings.warmup) == (7, 4, 1, 0)
    assert settings.config_overrides == ("image_size=16",)
    # flags this script does not have keep their defaults: fp32 on CPU, uncompiled, no checkpointing, wall clock
    assert (settings.device, settings.dtype, settings.compile, settings.gradient_checkpointing) == (
        "cpu", "fp32", False, False,
    )  # fmt: skip
    assert (settings.clock, settings.iters) == ("wall", 10)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.device = "cuda"


def test_config_and_batch_follow_the_preset_the_overrides_and_the_seed():
    settings = BenchmarkSettings(
        num_labels=7, batch_size=3, config_overrides=("num_hidden_layers=2", "merge_layers=[1,2]"), seed=4
    )
    config = make_config("small-32", settings)
    # small-32: width 384, 6 heads, 32x32 images of 2x2 patches; the overrides change depth and merges only
    assert (config.hidden_size, config.num_attention_heads, config.image_size, config.patch_size) == (384, 6, 32, 2)
    assert (config.num_hidden_layers, config.merge_layers, config.num_labels) == (2, [1, 2], 7)
    pixel_values, labels = make_batch("small-32", settings)
    assert pixel_values.shape == (3, 3, 32, 32) and labels.shape == (3,)
    assert labels.min() >= 0 and labels.max() < 7
    generator = torch.Generator().manual_seed(4)
    assert torch.equal(pixel_values, torch.randn(3, 3, 32, 32, generator=generator))
    assert torch.equal(labels, torch.randint(0, 7, (3,), generator=generator))


@pytest.mark.parametrize(
    "override, message",
    [
        ("image_size=30", "image_size=30 must be a multiple of 8 * patch_size = 16"),
        ("hidden_act=3", "Field 'hidden_act' expected str, got int (value: 3)"),
    ],
)
def test_a_config_the_overrides_make_impossible_is_a_user_error(override, message):
    settings = BenchmarkSettings(config_overrides=(override,))
    with pytest.raises(UserInputError) as error:
        make_config("tiny-32", settings)
    assert str(error.value).startswith(f"--override ['{override}'] on tiny-32: ")
    assert message in str(error.value)


def test_the_clock_passed_in_is_the_clock_used():
    # A sleep takes wall time and (almost) no CPU time.
    wall, _ = timed(lambda: time.sleep(0.2), torch.device("cpu"), "wall")
    cpu, _ = timed(lambda: time.sleep(0.2), torch.device("cpu"), "cpu")
    assert wall >= 0.2
    assert cpu < 0.1


@pytest.mark.slow
@pytest.mark.parametrize("script", ["throughput.py", "op_times.py"])
def test_each_script_runs_from_anywhere_and_reports_a_bad_flag_in_one_line(script, tmp_path):
    """`python benchmarks/<script>` as RESULTS.md runs it, from another folder: it finds the harness and the model
    without help, and a bad `--override` is one line on stderr and exit code 2."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("PYTHONPATH", None)
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / script), "--override", "hidden=3"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.splitlines() == [f"{script}: error: --override: 'hidden' is not a DemsConfig field."]

"""benchmarks/gpu_check.py: its dry run (every stage on the CPU with a tiny model) leaves every stage's JSON whole and
sane; SIGTERM keeps the stages that finished and marks the one it cut; flags that cannot work are refused in one line
before anything runs; and the pieces the GPU run relies on without the dry run reaching them (the order of the
throughput cases, the time box, the peak table, the deadline, the epoch plan) do what they say."""

import dataclasses
import json
import math
import os
import signal
import struct
import subprocess
import sys
import time
from itertools import product
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks import gpu_check
from benchmarks.gpu_check import ARCHITECTURES, MODES, STAGES


REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "gpu_check.py"
TRAIN_IMAGES, TEST_IMAGES = 40, 20  # fewer than the dry run's caps (64 and 32): all of them are used


def idx_bytes(array: np.ndarray) -> bytes:
    """IDX as dems_training/idx.py reads it: 0, 0, type 0x08 (unsigned bytes), ndim, big-endian sizes, the bytes."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", n) for n in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_release(folder: Path) -> Path:
    """A tiny Fashion-MNIST-shaped release (28x28 grey, 10 classes), so the test needs no system package."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for stem, count in (("train", TRAIN_IMAGES), ("t10k", TEST_IMAGES)):
        labels = np.arange(count) % 10
        images = rng.integers(0, 40, (count, 28, 28)) + 20 * labels[:, None, None]
        (folder / f"{stem}-images-idx3-ubyte").write_bytes(idx_bytes(images))
        (folder / f"{stem}-labels-idx1-ubyte").write_bytes(idx_bytes(labels))
    return folder


def environment(root: Path) -> dict:
    """No network, no GPU, one thread (the dry run's models are tiny; a second thread only fights other jobs for the
    cores), caches of its own."""
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1",
               HF_HOME=str(root / "hf_home"), PYTHONUNBUFFERED="1")
    env.pop("WORLD_SIZE", None)
    return env


def dry_run_command(output_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, str(SCRIPT), "--dry_run", "--output_dir", str(output_dir), *extra]


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("gpu_check")
    data_dir = write_release(root / "fashion-mnist")
    output_dir = root / "out"
    command = dry_run_command(output_dir, "--data_dir", str(data_dir), "--work_dir", str(root / "work"))
    started = time.monotonic()
    result = subprocess.run(command, cwd=REPO, env=environment(root), capture_output=True, text=True, timeout=600)
    seconds = time.monotonic() - started
    print(f"gpu_check.py --dry_run: {seconds:.0f} s")
    return result, output_dir, root


def stage(output_dir: Path, name: str) -> dict:
    return json.loads((output_dir / f"{name}.json").read_text())


@pytest.mark.slow
def test_dry_run_ends_with_every_stage_ok_and_summarised(dry_run):
    result, output_dir, root = dry_run
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    summary = (output_dir / "summary.md").read_text()
    for name in STAGES:
        data = stage(output_dir, name)
        assert data["stage"] == name and data["status"] == "ok", data.get("error")
        assert data["dry_run"] is True and data["device"] == "cpu"
        assert 0 <= data["seconds"] <= data["budget_s"]
        assert f"## {name}\n" in summary
        assert (output_dir / f"{name}.md").read_text() in summary
    assert not list(output_dir.glob("*.tmp"))  # every file was renamed into place whole
    # The training runs wrote into --work_dir, which is kept when given; nothing of theirs lands in the results.
    assert (root / "work" / "launch-torchrun" / "checkpoint-2").is_dir()
    assert sorted(p.suffix for p in output_dir.iterdir()) == [".json"] * len(STAGES) + [".md"] * (len(STAGES) + 1)


@pytest.mark.slow  # the dry run is a subprocess of a minute
def test_machine_stage_records_the_software_and_no_gpu(dry_run):
    results = stage(dry_run[1], "machine")["results"]
    assert results["gpu"] is None and results["peak_tflops"] is None
    assert results["packages"]["torch"] == torch.__version__
    assert results["python"].count(".") == 2 and results["cpu_count"] >= 1 and results["usable_cpus"] >= 1


@pytest.mark.slow  # the dry run is a subprocess of a minute
def test_throughput_stage_times_every_model_in_every_mode(dry_run):
    results = stage(dry_run[1], "throughput")["results"]
    cases = results["cases"]
    assert [(c["architecture"], c["mode"]) for c in cases].count(("dems", "fp32")) == 1
    assert {(c["architecture"], c["mode"]) for c in cases} == set(product(ARCHITECTURES, MODES))
    assert results["compile_backend"] == "eager"
    flops = {}
    for case in cases:
        assert case["status"] == "ok" and case["seconds"] > 0
        assert case["compile"] == (case["mode"] == "bf16+compile") and case["dtype"] == MODES[case["mode"]][0]
        for name in ("train", "inference"):
            figures = case[name]
            assert figures["images_per_s"] == pytest.approx(case["batch_size"] / figures["median_s"])
            assert figures["flops"] > 0 and figures["mfu"] is None  # no datasheet peak for a CPU
        assert 2.5 < case["train"]["flops"] / case["inference"]["flops"] <= 3.0
        assert case["memory_bytes"]["peak"] > case["memory_bytes"]["resident"] > 0
        flops.setdefault(case["architecture"], set()).add(case["train"]["flops"])
    # One count per model whatever the mode; the reference re-statement is the same network as DEMS.
    assert all(len(counts) == 1 for counts in flops.values())
    assert flops["reference"] == flops["dems"] != flops["vit"]


@pytest.mark.slow  # the dry run is a subprocess of a minute
def test_precision_stage_compares_attention_and_precision(dry_run):
    results = stage(dry_run[1], "precision")["results"]
    assert results["eager_vs_sdpa_fp32_max_abs_diff"] < 1e-4  # the two agree to 1e-5 in fp32 (README)
    for key in ("eager_vs_sdpa_bf16_max_abs_diff", "eager_bf16_vs_fp32_max_abs_diff", "sdpa_bf16_vs_fp32_max_abs_diff"):
        assert 0 <= results[key] < 0.05 * max(results["logits_max_abs"], 1)
    assert results["losses_finite"] and results["loss_rel_diff"] < 0.01
    assert math.log(10) * 0.8 < results["loss_fp32"] < math.log(10) * 1.2  # untrained: about ln(classes)
    assert results["loss_after_one_step_fp32"] != results["loss_fp32"]  # the step changed the weights


@pytest.mark.slow  # the dry run is a subprocess of a minute
def test_launchers_stage_trains_loads_and_predicts_under_both_launchers(dry_run):
    results = stage(dry_run[1], "launchers")["results"]
    assert set(results) == {"torchrun", "accelerate"}
    for launch in results.values():
        assert launch["status"] == "ok" and launch["returncode"] == 0
        assert launch["world_size"] == 1 and launch["device"].startswith("cpu")
        assert len(launch["losses"]) == 2 and launch["loss_finite"]
        assert launch["checkpoint"] == "checkpoint-2" and launch["checkpoint_predicts"] is True
        assert "--bf16 true" in launch["command"]
    assert "torch.distributed.run --nproc_per_node 1" in results["torchrun"]["command"]
    assert "accelerate.commands.launch --num_processes 1" in results["accelerate"]["command"]


@pytest.mark.slow  # the dry run is a subprocess of a minute
def test_input_pipeline_stage_judges_both_pipelines(dry_run):
    results = stage(dry_run[1], "input_pipeline")["results"]
    assert results["image_size"] == 256 and results["workers"] == 0  # train.py's default on the CPU
    assert results["gpu_train_images_per_s"] > 0 and results["on_device_seconds_per_image"] > 0
    gpu = results["gpu_images_per_s"]
    # Under --augment_on_device the device also augments: it takes in fewer images per second.
    assert gpu["augment_on_device"] < gpu["cpu_augmentation"] == results["gpu_train_images_per_s"]
    for name in ("cpu_augmentation", "augment_on_device"):
        verdict = results["verdict"][name]
        assert verdict["loader_over_gpu"] == pytest.approx(results["loader"][name]["images_per_s"] / gpu[name])
        assert verdict["starved"] == (verdict["loader_over_gpu"] < 1)


@pytest.mark.slow  # the dry run is a subprocess of a minute
def test_fashion_mnist_stage_trains_on_the_idx_release_and_reports_test_top1(dry_run):
    results = stage(dry_run[1], "fashion_mnist")["results"]
    assert results["train_images"] == TRAIN_IMAGES and results["test_images"] == TEST_IMAGES
    assert results["full_test_set"] is False  # the 10,000 test images only in the real run
    assert results["epochs_planned"] == 1 and results["epochs_done"] == pytest.approx(1.0)
    assert results["stopped_at_deadline"] is False and results["images_seen"] == TRAIN_IMAGES
    assert results["steps"] == math.ceil(TRAIN_IMAGES / results["global_batch_size"])
    assert results["images_per_s"] > 0 and results["step_images_per_s"] > 0
    assert 0 <= results["test_top1"] <= results["test_top5"] <= 100
    assert results["paper_top1"] == 95.59
    assert results["gap_to_paper_points"] == pytest.approx(95.59 - results["test_top1"])
    assert "--dataset fashion_mnist --data_dir" in results["train_py"]


@pytest.mark.slow
def test_sigterm_keeps_the_finished_stages_and_marks_the_cut_one(tmp_path):
    output_dir, log = tmp_path / "out", tmp_path / "log.txt"
    command = dry_run_command(output_dir, "--stages", "machine", "throughput", "launchers")
    with open(log, "w") as output:
        process = subprocess.Popen(command, cwd=REPO, env=environment(tmp_path), stdout=output, stderr=output)
    try:
        deadline, throughput = time.monotonic() + 300, output_dir / "throughput.json"
        while not (throughput.is_file() and json.loads(throughput.read_text())["results"].get("cases")):
            assert process.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "no throughput case within 300 s"
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=120) == 143, log.read_text()[-3000:]
    finally:
        process.kill()
        process.wait()
    records = [stage(output_dir, name) for name in ("machine", "throughput", "launchers")
               if (output_dir / f"{name}.json").is_file()]
    statuses = [record["status"] for record in records]
    # The signal came while throughput ran (or, had it just finished, while launchers started): everything before
    # the cut stage is whole, the cut one says so and keeps what it had.
    assert statuses[0] == "ok" and statuses.count("interrupted") == 1 and statuses[-1] == "interrupted"
    assert all(status == "ok" for status in statuses[:-1])
    assert stage(output_dir, "throughput")["results"]["cases"][0]["status"] == "ok"
    assert "signal 15" in records[-1]["error"]
    assert "## throughput" in (output_dir / "summary.md").read_text()


@pytest.mark.parametrize(
    "argv, message",
    [
        ([], "torch sees no CUDA device: the check measures a GPU. Pass --dry_run"),
        (["--dry_run", "--budget", "throughput"], "--budget 'throughput': write STAGE=SECONDS"),
        (["--dry_run", "--budget", "gpu=3"], "'gpu' is not a stage; the stages are machine, throughput"),
        (["--dry_run", "--budget", "throughput=-1"], "--budget 'throughput=-1': the seconds must be a positive"),
        (["--dry_run", "--budget", "throughput=soon"], "--budget 'throughput=soon': the seconds must be a positive"),
        (["--dry_run", "--data_dir", "/nonexistent/fmnist"], "--data_dir='/nonexistent/fmnist' is not a folder"),
    ],
)
def test_flags_that_cannot_work_are_refused_in_one_line(argv, message, capsys):
    assert not torch.cuda.is_available()  # the first case needs a machine without a GPU, as CI is
    assert gpu_check.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("gpu_check.py: error: ") and message in err and err.count("\n") == 1


def test_a_release_without_its_files_and_a_file_as_output_dir_are_refused(tmp_path, capsys):
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"")
    assert gpu_check.main(["--dry_run", "--data_dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "has no train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte (plain or .gz)" in err
    release = write_release(tmp_path / "release")
    as_file = str(release / "t10k-images-idx3-ubyte")
    assert gpu_check.main(["--dry_run", "--data_dir", str(release), "--output_dir", as_file]) == 2
    assert "is a file; it must be a folder" in capsys.readouterr().err
    # Without the stage, no release is needed.
    assert gpu_check.main(["--dry_run", "--stages", "machine", "--data_dir", "/nonexistent",
                           "--output_dir", str(tmp_path / "out")]) == 0
    assert stage(tmp_path / "out", "machine")["status"] == "ok"


def test_throughput_cases_come_once_each_the_most_wanted_first():
    presets, batches = ("tiny-32", "small-32"), (256, 1024)
    cases = gpu_check.throughput_cases(presets, batches)
    keys = [(c.preset, c.architecture, c.mode, c.batch_size) for c in cases]
    assert sorted(keys) == sorted(product(presets, ARCHITECTURES, MODES, batches))
    assert {k[2] for k in keys[:12]} == {"bf16", "fp32"} and {k[3] for k in keys[:12]} == {256}
    assert keys[12:14] == [("tiny-32", "dems", "bf16+compile", 256), ("tiny-32", "vit", "bf16+compile", 256)]
    last_eager = max(i for i, c in enumerate(cases) if not c.compiled)
    first_compiled_reference = min(i for i, c in enumerate(cases) if c.compiled and c.architecture == "reference")
    assert last_eager < first_compiled_reference


def test_a_case_starts_only_if_the_box_has_room_for_it():
    guesses = {"eager": 10.0, "compiled": 60.0}
    eager = gpu_check.Case("tiny-32", "dems", "bf16", 1024)
    compiled = gpu_check.Case("tiny-32", "dems", "bf16+compile", 1024)
    assert not gpu_check.case_fits(compiled, [], 59, guesses) and gpu_check.case_fits(compiled, [], 60, guesses)
    done = [{"status": "ok", "compile": False, "seconds": 2.0, "batch_size": 256},
            {"status": "ok", "compile": True, "seconds": 30.0, "batch_size": 256},
            {"status": "skipped", "compile": False, "batch_size": 256}]
    # Eager time grows with the batch (2 s at 256: 8 s at 1024); compiling time does not.
    assert gpu_check.case_fits(eager, done, 8.0, guesses) and not gpu_check.case_fits(eager, done, 7.9, guesses)
    assert gpu_check.case_fits(compiled, done, 30.0, guesses) and not gpu_check.case_fits(compiled, done, 29, guesses)


def test_a_full_box_skips_the_throughput_cases_and_says_so(tmp_path):
    profile = dataclasses.replace(gpu_check.DRY_RUN_PROFILE, case_guess_s={"eager": 1e9, "compiled": 1e9})
    check = gpu_check.Check(profile=profile, dry_run=True, output_dir=tmp_path, work_dir=tmp_path, data_dir="",
                            budgets=dict(profile.budgets_s))
    record = gpu_check.StageRecord("throughput", check)
    gpu_check.stage_throughput(record, check)
    cases = record.results["cases"]
    assert len(cases) == len(ARCHITECTURES) * len(MODES)
    assert all(c["status"] == "skipped" and c["reason"] == "time box" for c in cases)
    assert gpu_check.stage_status("throughput", record.results) == "time_box"
    assert json.loads((tmp_path / "throughput.json").read_text())["results"]["cases"] == cases


@pytest.mark.parametrize(
    "name, entry, bf16",
    [
        ("NVIDIA H100 80GB HBM3", "H100", 989.4),
        ("NVIDIA H100 PCIe", "H100 PCIe", 756.0),
        ("NVIDIA H100 NVL", "H100 NVL", 835.0),
        ("NVIDIA H200", "H200", 989.4),
        ("NVIDIA H200 NVL", "H200 NVL", 835.0),
        ("NVIDIA A100-SXM4-80GB", "A100", 312.0),
        ("NVIDIA A100 80GB PCIe", "A100", 312.0),
        ("NVIDIA GeForce RTX 4090", None, None),
        (None, None, None),
    ],
)
def test_peak_flops_come_from_the_datasheet_table_or_stay_unknown(name, entry, bf16):
    found, peaks = gpu_check.peak_for(name)
    assert found == entry
    assert (peaks or {}).get("bf16") == bf16


def test_the_deadline_callback_stops_training_once_the_deadline_has_passed():
    from transformers import TrainerControl, TrainerState

    for offset, stops in ((-1.0, True), (60.0, False)):
        callback = gpu_check.deadline_callback(time.monotonic() + offset)
        control = TrainerControl()
        callback.on_train_begin(None, TrainerState(), control)
        callback.on_step_end(None, TrainerState(), control)
        assert control.should_training_stop is stops and callback.stopped is stops


def test_the_epochs_fit_the_time_left_at_the_discounted_rate():
    # 10,000 images/s x 0.7 x 100 s = 700,000 images: 11 epochs of 60,000.
    assert gpu_check.planned_epochs(10_000, 100, 60_000, None) == 11
    assert gpu_check.planned_epochs(10_000, 100, 60_000, 3) == 3
    assert gpu_check.planned_epochs(10, 1, 60_000, None) == 1  # at least one
    assert gpu_check.planned_epochs(10_000, -5, 60_000, None) == 1

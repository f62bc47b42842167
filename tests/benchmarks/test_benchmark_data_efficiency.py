"""The data-efficiency study script: its plan (budgets in images seen, the ablation arm at the ends), its tables
from records with known values, and a whole `--quick` study on digits that resumes without rerunning anything."""

import json
import os

import pytest
from PIL import Image
from train_helpers import offline_env
from transformers import pipeline

import modeling_dems  # noqa: F401  (registers DEMS with the Auto classes, for pipeline)
from benchmarks import data_efficiency
from benchmarks.data_efficiency import StudySettings, plan_runs, results_table
from dems_training import UserInputError


def test_plan_counts_budget_in_images_and_ablates_at_both_ends():
    settings = StudySettings(samples_per_class=[60, 150, 600], images_seen=[90_000, 120_000, 180_000], seeds=[0, 1],
                             warmup_fraction=0.05)
    runs = plan_runs(settings, num_classes=10)
    names = [run.name for run in runs]
    assert len(runs) == 2 * (3 * 2 + 2)  # dems and vit at 3 sizes, dems-constant at 60 and 600, two seeds
    assert "dems-constant-k150-s0" not in names and {"dems-constant-k60-s1", "dems-constant-k600-s1"} <= set(names)
    epochs = {run.samples_per_class: run.epochs for run in runs}
    assert epochs == {60: 150, 150: 80, 600: 30}  # 90,000 / 600, 120,000 / 1,500, 180,000 / 6,000 images
    warmup = {run.samples_per_class: run.warmup_epochs for run in runs}
    assert warmup == {60: 8, 150: 4, 600: 2}  # 5% of the epochs, rounded: 7.5, 4, 1.5
    assert names[:5] == ["dems-k60-s0", "vit-k60-s0", "dems-constant-k60-s0", "dems-k150-s0", "vit-k150-s0"]


def test_settings_that_cannot_work_are_refused():
    with pytest.raises(UserInputError, match="--images_seen has 2 values"):
        data_efficiency.check_settings(StudySettings(samples_per_class=[1, 2, 3], images_seen=[5, 6]))
    with pytest.raises(UserInputError, match=r"--arms: \['resnet'\]"):
        data_efficiency.check_settings(StudySettings(arms=["dems", "resnet"]))


def _record(arm, size, seed, top1):
    return {"arm": arm, "train_size": size, "train_fraction": size / 60_000, "seed": seed, "top1": top1}


def test_table_shows_mean_lowest_highest_and_count():
    records = [_record("dems", 600, 0, 0.70), _record("dems", 600, 1, 0.74), _record("vit", 600, 0, 0.60),
               _record("vit", 600, 1, 0.66), _record("dems", 6000, 0, 0.85)]
    table = results_table(records).splitlines()
    assert table[0] == "| arm | 600 (1%) | 6,000 (10%) |"
    assert table[2] == "| DEMS-ViT | 72.00 (70.00-74.00, n=2) | 85.00 (85.00-85.00, n=1) |"
    assert table[3] == "| ViT (DeiT-style) | 63.00 (60.00-66.00, n=2) |  |"
    gaps = data_efficiency.gap_table(records).splitlines()
    assert gaps[2] == "| 600 | +10.00, +8.00 | +9.00 |"


# The quick study's ViT (digits preset: 16x16, patch 2, width 64, 4 blocks, MLP ratio 2), counted by hand:
# embeddings 3*2*2*64 + 64 + 64 + 65*64; per block 2*2*64 + 3*64*64 + (64*64 + 64) + (64*128 + 128) + (128*64 + 64);
# final LayerNorm 2*64; head 64*10 + 10.
QUICK_VIT_PARAMETERS = (
    (3 * 2 * 2 * 64 + 64) + 64 + 65 * 64
    + 4 * (2 * 2 * 64 + 3 * 64 * 64 + (64 * 64 + 64) + (64 * 128 + 128) + (128 * 64 + 64))
    + 2 * 64 + (64 * 10 + 10)
)


def test_quick_study_runs_aggregates_keeps_the_best_and_resumes(tmp_path, monkeypatch, capsys):
    for name, value in offline_env(tmp_path).items():
        monkeypatch.setenv(name, value)
    results_dir, outputs_dir = tmp_path / "results", tmp_path / "outputs"
    argv = ["--quick", "--results_dir", str(results_dir), "--outputs_dir", str(outputs_dir), "--keep_best"]
    assert data_efficiency.main(argv) == 0

    records = {r["name"]: r for r in data_efficiency.read_records(str(results_dir))}
    assert sorted(records) == sorted(f"{arm}-k{k}-s0" for arm in ("dems", "vit", "dems-constant") for k in (5, 20))
    for record in records.values():
        assert record["train_size"] == 10 * record["samples_per_class"]
        assert record["images_seen"] == record["train_size"] * record["epochs"]
        assert record["epochs"] == round(800 / record["train_size"])
        assert 0.0 <= record["top1_half"] <= 1.0 and 0.0 <= record["top1"] <= record["top5"] <= 1.0
        assert record["eval_images"] == 360  # digits' whole held-out split
        assert record["wall_clock_s"] > 0 and record["gmacs_per_image"] > 0
        assert "--train_samples_per_class" in record["command"]
    assert records["vit-k5-s0"]["num_parameters"] == QUICK_VIT_PARAMETERS
    assert records["dems-k5-s0"]["num_parameters"] != QUICK_VIT_PARAMETERS
    assert "--augmentation_decay" in records["dems-constant-k5-s0"]["command"]

    table = (results_dir / "results.md").read_text()
    assert "| DEMS-ViT |" in table and "| ViT (DeiT-style) |" in table and "no augmentation decay" in table
    assert (results_dir / "top1_vs_size.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    best = json.loads((results_dir / "best_dems" / "config.json").read_text())
    assert best["model_type"] == "dems"
    top_dems = max((r for r in records.values() if r["arm"] == "dems"), key=lambda r: r["top1"])
    kept = json.loads((results_dir / "best_dems" / "all_results.json").read_text())
    assert kept["eval_top1_accuracy"] == top_dems["top1"]
    classifier = pipeline("image-classification", model=str(results_dir / "best_dems"))
    assert len(classifier(Image.new("L", (8, 8), 128), top_k=2)) == 2

    before = {p: os.path.getmtime(p) for p in (results_dir / "runs").iterdir()}
    capsys.readouterr()
    assert data_efficiency.main(argv) == 0
    assert "0 run(s) to do" in capsys.readouterr().out
    assert {p: os.path.getmtime(p) for p in (results_dir / "runs").iterdir()} == before

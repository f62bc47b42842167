"""The data-efficiency study (benchmarks/data_efficiency.py) and its report (benchmarks/study_report.py): the plan
(learning-rate grid, plateau check, comparison), the rate each arm trains with, the settings refused, the tables
from records with known values, and a whole small study on digits that resumes without rerunning anything."""

import json
import os

import pytest
from train_helpers import offline_env

from benchmarks import data_efficiency, study_report
from benchmarks.data_efficiency import RunSpec, StudySettings
from dems_training import UserInputError


SMALL = {"samples_per_class": [60, 300, 600], "epochs": [400, 120, 80], "grid_samples_per_class": 300,
         "plateau_samples_per_class": [60], "seeds": [0, 1, 2], "few_seeds": [0, 1]}  # fmt: skip


def record(run: RunSpec, val: float, test: float, commit: str = "c0ffee") -> dict:
    """A record as run_one writes it, with the fields the report reads."""
    train_images = run.samples_per_class * 10
    return {
        "name": run.name, "arm": run.arm, "dataset": "fashion_mnist", "samples_per_class": run.samples_per_class,
        "train_images": train_images, "seed": run.seed, "commit": commit, "params": 1000, "gmacs_per_image": 0.01,
        "peak_lr": run.learning_rate, "epochs": run.epochs, "images_seen": train_images * run.epochs,
        "val_top1": val, "test_top1": test, "images_per_second": 50.0, "wall_clock_s_last_process": 60.0,
        "curve": [{"images_seen": train_images * run.epochs, "val_top1": val}],
    }  # fmt: skip


def test_the_grid_trains_each_model_arm_at_one_size_and_every_rate():
    settings = StudySettings(**SMALL)
    runs = data_efficiency.grid_runs(settings)
    # dems-constant trains at dems's rate: no grid of its own
    assert {run.arm for run in runs} == {"dems", "vit", "vit-wide"}
    assert {(run.samples_per_class, run.seed, run.epochs) for run in runs} == {(300, 0, 120)}
    assert sorted(run.learning_rate for run in runs if run.arm == "dems") == [5e-4, 1e-3, 2e-3]
    assert runs[0].name == "dems-k300-s0-e120-lr0.0005"


def test_each_arm_takes_the_rate_with_the_best_validation_and_a_tie_goes_to_the_smaller():
    settings = StudySettings(**SMALL)
    grid = data_efficiency.grid_runs(settings)
    validation = {("dems", 5e-4): 0.70, ("dems", 1e-3): 0.74, ("dems", 2e-3): 0.72,
                  ("vit", 5e-4): 0.66, ("vit", 1e-3): 0.66, ("vit", 2e-3): 0.60,
                  ("vit-wide", 5e-4): 0.50, ("vit-wide", 1e-3): 0.55, ("vit-wide", 2e-3): 0.65}  # fmt: skip
    records = {run.name: record(run, validation[(run.arm, run.learning_rate)], 0.0) for run in grid}
    assert data_efficiency.chosen_learning_rates(settings, dict(list(records.items())[:-1])) is None  # unfinished
    rates = data_efficiency.chosen_learning_rates(settings, records)
    assert rates == {"dems": 1e-3, "vit": 5e-4, "vit-wide": 2e-3, "dems-constant": 1e-3}


def test_the_comparison_checks_the_plateau_first_then_runs_seed_by_seed():
    settings = StudySettings(**SMALL)
    rates = {"dems": 1e-3, "vit": 5e-4, "vit-wide": 2e-3, "dems-constant": 1e-3}
    runs = data_efficiency.comparison_runs(settings, rates)
    names = [run.name for run in runs]
    assert len(names) == len(set(names))
    # the plateau check: seed 0 of dems and vit at 60 per class, at the budget and at twice it
    assert [(r.arm, r.epochs) for r in runs[:4]] == [("dems", 400), ("dems", 800), ("vit", 400), ("vit", 800)]
    comparison = runs[4:]
    assert {r.seed for r in comparison if r.arm in ("vit-wide", "dems-constant")} == {0, 1}  # --few_seeds
    assert {r.seed for r in comparison if r.arm == "vit"} == {0, 1, 2}
    assert {r.samples_per_class for r in runs if r.arm == "dems-constant"} == {60, 600}  # smallest and largest
    assert all(r.learning_rate == rates[r.arm] for r in runs)
    assert [r.seed for r in comparison] == sorted(r.seed for r in comparison)  # whole comparisons first


def test_a_run_trains_with_the_study_s_flags():
    settings = StudySettings(**SMALL, data_dir="/data/fmnist")
    arguments = data_efficiency.train_arguments(settings, RunSpec("vit-wide", 60, 1, 400, 2e-3), "out/x")
    text = " ".join(arguments)
    for flag in ("--train_samples_per_class 60", "--validation_samples_per_class 500", "--seed 1",
                 "--seeded_augmentation true", "--learning_rate 0.002", "--num_train_epochs 400",
                 "--data_dir /data/fmnist", "--architecture vit", "--use_cpu true"):  # fmt: skip
        assert flag in text, flag
    overrides = arguments[arguments.index("--config_overrides") + 1]
    assert "hidden_size=72" in overrides and "merge_layers=[3,5]" in overrides


@pytest.mark.parametrize(
    ("changes", "fragments"),
    [
        ({"epochs": [10, 20]}, ("--epochs", "[10, 20]")),
        ({"arms": ["dems", "resnet"]}, ("--arms", "resnet")),
        ({"grid_samples_per_class": 7}, ("--grid_samples_per_class", "[7]")),
        ({"plateau_samples_per_class": [60, 9]}, ("--plateau_samples_per_class", "9")),
        ({"grid_learning_rates": [0.0]}, ("--grid_learning_rates", "0.0")),
        ({"warmup_fraction": 1.0}, ("--warmup_fraction", "1.0")),
    ],
)
def test_settings_that_cannot_work_are_refused(changes, fragments):
    with pytest.raises(UserInputError) as error:
        data_efficiency.check_settings(StudySettings(**{**SMALL, **changes}))
    assert all(fragment in str(error.value) for fragment in fragments)


def test_the_report_tables_hold_the_records_values(tmp_path):
    settings = StudySettings(**SMALL, arms=["dems", "vit"], results_dir=str(tmp_path))
    grid = data_efficiency.grid_runs(settings)
    records = [record(run, 0.70 if run.learning_rate == 1e-3 else 0.60, 0.50) for run in grid]
    rates = data_efficiency.chosen_learning_rates(settings, {r["name"]: r for r in records})
    assert rates == {"dems": 1e-3, "vit": 1e-3}
    tests = {("dems", 60, 0): 0.71, ("dems", 60, 1): 0.73, ("vit", 60, 0): 0.66, ("vit", 60, 1): 0.70}
    for (arm, k, seed), top1 in tests.items():
        run = RunSpec(arm, k, seed, 400, 1e-3)
        records.append(record(run, 0.65, top1))
    records.append(record(RunSpec("dems", 60, 0, 800, 1e-3), 0.652, 0.72))  # the plateau check's 2x run
    study = study_report.StudyRecords(records, settings)
    # the grid's runs at 300 per class are the comparison's seed 0 there
    assert study_report.results_table(study)[:3] == [
        "| arm | 600 | 3,000 |", "|---|---|---|", "| DEMS-ViT | 72.00 ± 1.41 (n=2) | 50.00 ± 0.00 (n=1) |"
    ]
    assert study_report.paired_differences(study, "dems", "vit")[2] == (
        "| 600 | +5.00 (seed 0), +3.00 (seed 1) | +4.00 | 2 of 2 |"
    )
    assert study_report.plateau_table(study)[2] == "| DEMS-ViT | 600 | 400 | 65.00 | 65.20 | +0.20 | yes |"
    path = study_report.write_report(records, settings)
    assert "## Plateau check" in open(path, encoding="utf-8").read()
    for picture in ("learning_curves.png", "top1_vs_size.png"):
        assert (tmp_path / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_records_of_two_commits_are_refused_unless_allowed():
    records = [record(RunSpec("dems", 60, 0, 400, 1e-3), 0.7, 0.7, commit="aaa"),
               record(RunSpec("vit", 60, 0, 400, 1e-3), 0.7, 0.7, commit="bbb")]  # fmt: skip
    with pytest.raises(UserInputError) as error:
        study_report.check_one_commit(records, allow_mixed_commits=False)
    assert "--allow_mixed_commits" in str(error.value) and "aaa" in str(error.value)
    assert study_report.check_one_commit(records, allow_mixed_commits=True) == "aaa, bbb"


@pytest.mark.slow
def test_a_small_study_on_digits_runs_reports_and_resumes(tmp_path, monkeypatch, capsys):
    for name, value in offline_env(tmp_path).items():
        monkeypatch.setenv(name, value)
    results_dir, outputs_dir = tmp_path / "results", tmp_path / "outputs"
    argv = ["--quick", "--results_dir", str(results_dir), "--outputs_dir", str(outputs_dir), "--allow_dirty",
            "--arms", "dems", "vit", "--samples_per_class", "5", "--epochs", "2", "--grid_samples_per_class", "5",
            "--grid_learning_rates", "0.001", "--plateau_samples_per_class", "5"]  # fmt: skip
    assert data_efficiency.main(argv) == 0

    records = {r["name"]: r for r in data_efficiency.read_records(str(results_dir))}
    # the grid's runs are the plateau check's and the comparison's seed-0 runs: only the 2x runs are added
    assert sorted(records) == sorted(f"{arm}-k5-s0-e{e}-lr0.001" for arm in ("dems", "vit") for e in (2, 4))
    for r in records.values():
        assert r["train_images"] == 50 and r["images_seen"] == 50 * r["epochs"]
        assert r["validation_images"] == 100 and r["test_images"] == 360  # digits' held-out split, once
        assert 0.0 <= r["test_top1"] <= 1.0 and 0.0 <= r["val_top1"] <= 1.0 and r["curve"]
        assert "--seeded_augmentation true" in r["command"] and r["commit"]
    assert records["vit-k5-s0-e2-lr0.001"]["params"] != records["dems-k5-s0-e2-lr0.001"]["params"]
    report = (results_dir / "results.md").read_text(encoding="utf-8")
    assert "| DEMS-ViT |" in report and "## Plateau check" in report
    assert json.loads((outputs_dir / "digits" / "dems-k5-s0-e2-lr0.001" / "config.json").read_text())["model_type"] \
        == "dems"

    before = {p: os.path.getmtime(p) for p in (results_dir / "runs").iterdir()}
    capsys.readouterr()
    assert data_efficiency.main(argv) == 0
    assert "run(s) to do" not in capsys.readouterr().out
    assert {p: os.path.getmtime(p) for p in (results_dir / "runs").iterdir()} == before

"""The data-efficiency study: its plan (the learning-rate grid and its rule, the plateau check, seeds and the ablation
at the ends), its refusals (settings, uncommitted code, records of mixed commits), its report from records with
known values, and a small study on digits end to end: records with every key, a rerun of a record's command that
gives its test top-1 again, and a second start that trains nothing."""

import datetime
import json
import os
import shlex
import subprocess
import sys

import pytest
from train_helpers import offline_env

from benchmarks import data_efficiency, study_report
from benchmarks.data_efficiency import (
    ARMS,
    RunSpec,
    StudySettings,
    chosen_learning_rates,
    comparison_runs,
    grid_runs,
    train_arguments,
)
from dems_training import UserInputError


SMALL = StudySettings(samples_per_class=[60, 120, 600], epochs=[400, 250, 80], seeds=[0, 1, 2], few_seeds=[0, 1],
                      grid_samples_per_class=120, grid_learning_rates=[5e-4, 1e-3, 2e-3],
                      plateau_samples_per_class=[60, 120])


def record(run: RunSpec, val_top1: float = 0.5, test_top1: float = 0.5, commit: str = "abc") -> dict:
    return {"name": run.name, "arm": run.arm, "samples_per_class": run.samples_per_class,
            "train_images": 10 * run.samples_per_class, "seed": run.seed, "epochs": run.epochs,
            "peak_lr": run.learning_rate, "val_top1": val_top1, "test_top1": test_top1, "commit": commit,
            "dataset": "fashion_mnist", "params": 1000, "gmacs_per_image": 0.01, "images_per_second": 100.0,
            "curve": [{"images_seen": 10, "val_top1": val_top1}]}


def test_the_grid_trains_each_model_arm_at_every_rate_at_one_size_seed_0():
    runs = grid_runs(SMALL)
    assert [(r.arm, r.learning_rate) for r in runs] == [
        (arm, rate) for arm in ("dems", "vit", "vit-wide") for rate in (5e-4, 1e-3, 2e-3)]
    assert {(r.samples_per_class, r.seed, r.epochs) for r in runs} == {(120, 0, 250)}


def test_the_rate_with_the_best_final_validation_wins_ties_go_to_the_smaller():
    grid = grid_runs(SMALL)
    validation = {("dems", 5e-4): 0.70, ("dems", 1e-3): 0.74, ("dems", 2e-3): 0.72,
                  ("vit", 5e-4): 0.60, ("vit", 1e-3): 0.65, ("vit", 2e-3): 0.65,
                  ("vit-wide", 5e-4): 0.66, ("vit-wide", 1e-3): 0.61, ("vit-wide", 2e-3): 0.62}
    records = {r.name: record(r, validation[(r.arm, r.learning_rate)]) for r in grid}
    rates = chosen_learning_rates(SMALL, records)
    assert rates == {"dems": 1e-3, "vit": 1e-3, "vit-wide": 5e-4, "dems-constant": 1e-3}
    del records[grid[0].name]
    assert chosen_learning_rates(SMALL, records) is None  # not before the whole grid has run


def test_a_grid_budget_of_its_own_keeps_the_grid_when_its_size_s_budget_doubles(tmp_path):
    doubled = StudySettings(**{**SMALL.__dict__, "epochs": [800, 500, 80], "grid_epochs": 250,
                               "results_dir": str(tmp_path)})
    assert {r.name for r in grid_runs(doubled)} == {r.name for r in grid_runs(SMALL)}  # e250: the grid as it ran
    rates = {"dems": 1e-3, "vit": 1e-3, "vit-wide": 1e-3, "dems-constant": 1e-3}
    assert ("dems", 120, 0, 500) in {(r.arm, r.samples_per_class, r.seed, r.epochs)
                                     for r in comparison_runs(doubled, rates)}  # the comparison at the new budget
    records = [record(r, 0.70 + (0.01 if r.learning_rate == 1e-3 else 0.0)) for r in grid_runs(SMALL)]
    text = open(study_report.write_report(records, doubled)).read()
    assert "| DEMS-ViT | 70.00 | 71.00 | 70.00 | 0.001 |" in text


def test_the_plateau_table_keeps_a_failed_check_beside_the_doubled_budget_s(tmp_path):
    doubled = StudySettings(**{**SMALL.__dict__, "epochs": [800, 250, 80], "results_dir": str(tmp_path)})
    records = [record(r, 0.70 + (0.01 if r.learning_rate == 1e-3 else 0.0)) for r in grid_runs(SMALL)]
    records += [record(RunSpec("dems", 60, 0, 400, 1e-3), val_top1=0.7542),  # 400 -> 800: +2.32, failed
                record(RunSpec("dems", 60, 0, 800, 1e-3), val_top1=0.7774),
                record(RunSpec("vit", 60, 0, 800, 1e-3), val_top1=0.77)]  # its 1,600 has not run
    lines = open(study_report.write_report(records, doubled)).read().splitlines()
    assert ("| DEMS-ViT | 600 | 400 | 75.42 | 77.74 | +2.32 | **no** (an earlier budget, doubled since) "
            "| 50.00 -> 50.00 |") in lines
    assert "| DEMS-ViT | 600 | 800 | 77.74 | (no 2x record yet) | | | 50.00 |" in lines
    assert "| ViT, same width and depth | 600 | 800 | 77.00 | (no 2x record yet) | | | 50.00 |" in lines
    # the grid's run at the chosen rate
    assert "| DEMS-ViT | 1,200 | 250 | 71.00 | (no 2x record yet) | | | 50.00 |" in lines


def test_the_comparison_checks_the_plateau_first_then_goes_seed_by_seed():
    rates = {"dems": 1e-3, "vit": 2e-3, "vit-wide": 5e-4, "dems-constant": 1e-3}
    runs = comparison_runs(SMALL, rates)
    assert [(r.arm, r.samples_per_class, r.epochs) for r in runs[:8]] == [
        ("dems", 60, 400), ("dems", 60, 800), ("vit", 60, 400), ("vit", 60, 800),
        ("dems", 120, 250), ("dems", 120, 500), ("vit", 120, 250), ("vit", 120, 500)]
    assert all(r.learning_rate == rates[r.arm] for r in runs)
    assert len({r.name for r in runs}) == len(runs)  # the plateau's 1x runs are not planned twice
    main = [r for r in runs if r.epochs == dict(zip([60, 120, 600], [400, 250, 80], strict=True))[r.samples_per_class]]
    count = {arm: sum(r.arm == arm for r in main) for arm in ARMS}
    assert count == {"dems": 9, "vit": 9, "vit-wide": 6, "dems-constant": 4}  # 3 sizes x 3 seeds, 3 x 2, 2 x 2
    assert {r.samples_per_class for r in main if r.arm == "dems-constant"} == {60, 600}
    seeds = [r.seed for r in runs[8:]]
    assert seeds == sorted(seeds)


def test_an_arm_whose_plateau_showed_at_a_smaller_budget_gets_no_2x_run_of_the_doubled_one(tmp_path):
    # The study's 600 images: DEMS passed 1,600 -> 3,200 (79.32 -> 79.68, +0.36); the ViT failed (79.42 -> 80.82,
    # +1.40), so the budget doubled to 3,200 for both, and only the ViT needs 6,400.
    doubled = StudySettings(**{**SMALL.__dict__, "epochs": [3200, 250, 80], "results_dir": str(tmp_path)})
    rates = {"dems": 2e-3, "vit": 1e-3, "vit-wide": 5e-4, "dems-constant": 2e-3}
    checks = [record(RunSpec("dems", 60, 0, 1600, 2e-3), val_top1=0.7932, test_top1=0.7884),
              record(RunSpec("dems", 60, 0, 3200, 2e-3), val_top1=0.7968, test_top1=0.7877),
              record(RunSpec("vit", 60, 0, 1600, 1e-3), val_top1=0.7942),
              record(RunSpec("vit", 60, 0, 3200, 1e-3), val_top1=0.8082, test_top1=0.7949)]
    records = {r["name"]: r for r in checks}
    assert data_efficiency.plateau_shown_at(doubled, records, RunSpec("dems", 60, 0, 3200, 2e-3)) == 1600
    assert data_efficiency.plateau_shown_at(doubled, records, RunSpec("vit", 60, 0, 3200, 1e-3)) is None
    assert data_efficiency.plateau_shown_at(doubled, records, RunSpec("dems", 60, 0, 3200, 1e-3)) is None  # rate
    planned = [(r.arm, r.epochs) for r in comparison_runs(doubled, rates, records) if r.samples_per_class == 60
               and r.seed == 0 and r.arm in ("dems", "vit")]
    assert planned == [("dems", 3200), ("vit", 3200), ("vit", 6400)]
    assert ("dems", 6400) in [(r.arm, r.epochs) for r in comparison_runs(doubled, rates)]  # no records: both
    grid = [record(r, 0.70 + (0.01 if r.learning_rate == rates[r.arm] else 0.0))
            for r in grid_runs(StudySettings(**{**SMALL.__dict__, "grid_learning_rates": [5e-4, 1e-3, 2e-3]}))]
    lines = open(study_report.write_report(grid + checks, doubled)).read().splitlines()
    assert ("| DEMS-ViT | 600 | 1600 | 79.32 | 79.68 | +0.36 | yes (an earlier budget, doubled since) "
            "| 78.84 -> 78.77 |") in lines
    assert "| DEMS-ViT | 600 | 3200 | 79.68 | not run: shown at 1600 -> 3200 | | yes | 78.77 |" in lines
    assert "| ViT, same width and depth | 600 | 3200 | 80.82 | (no 2x record yet) | | | 79.49 |" in lines


def test_only_trains_the_named_runs_in_the_order_given_and_refuses_a_name_outside_the_plan():
    plan = [RunSpec("dems", 60, 0, 400, 1e-3), RunSpec("vit", 60, 0, 400, 1e-3), RunSpec("vit", 60, 0, 800, 1e-3)]
    done = {plan[1].name: record(plan[1])}
    assert data_efficiency.runs_to_do(SMALL, plan, done) == [plan[0], plan[2]]
    only = StudySettings(**{**SMALL.__dict__, "only": [plan[2].name, plan[1].name, plan[0].name]})
    assert data_efficiency.runs_to_do(only, plan, done) == [plan[2], plan[0]]  # the given order; plan[1] is done
    typo = StudySettings(**{**SMALL.__dict__, "only": ["vit-k60-s0-e800-lr0.01"]})
    with pytest.raises(UserInputError, match=r"--only=vit-k60-s0-e800-lr0.01: not a run of the plan now in force; "
                                             r"its runs: dems-k60-s0-e400-lr0.001, "):
        data_efficiency.runs_to_do(typo, plan, done)


def test_a_run_is_resumable_seeded_validated_and_the_vit_wide_is_wider():
    run = RunSpec("vit-wide", 60, 2, 400, 1e-3)
    arguments = train_arguments(SMALL, run, "outputs/x")
    text = " ".join(arguments)
    for expected in ("--seed 2", "--train_samples_per_class 60", "--validation_samples_per_class 500",
                     "--validation_seed 1234", "--seeded_augmentation true", "--num_train_epochs 400",
                     "--learning_rate 0.001", "--lr_scheduler_type cosine_with_min_lr", "--warmup_steps 0.05",
                     "--save_steps 0.1", "--eval_steps 0.1", "--architecture vit", "hidden_size=72"):
        assert expected in text
    assert "hidden_size=72" not in " ".join(train_arguments(SMALL, RunSpec("vit", 60, 2, 400, 1e-3), "o"))


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"epochs": [1, 2]}, "--epochs=[1, 2]"),
        ({"arms": ["dems", "resnet"]}, "['resnet']"),
        ({"grid_samples_per_class": 7}, "--grid_samples_per_class=[7]"),
        ({"plateau_samples_per_class": [5]}, "--plateau_samples_per_class=[5]"),
        ({"grid_learning_rates": [0.0]}, "--grid_learning_rates=[0.0]"),
        ({"evaluations": 0}, "--evaluations=0"),
        ({"grid_epochs": 0}, "--grid_epochs=0"),
        ({"finish_by": "noon"}, "--finish_by='noon' must be a date and time in ISO 8601"),
        ({"finish_by": "2020-01-01T12:00"}, "--finish_by='2020-01-01T12:00' has passed"),
    ],
)
def test_settings_that_cannot_work_are_refused(change, fragment):
    settings = StudySettings(**{**SMALL.__dict__, **change})
    with pytest.raises(UserInputError) as error:
        data_efficiency.check_settings(settings)
    assert fragment in str(error.value)


def test_uncommitted_training_code_is_refused_or_marked(monkeypatch):
    answers = {"log": "0123abcd", "status": " M dems_training/recipe.py"}
    monkeypatch.setattr(data_efficiency, "git", lambda command, *rest: answers[command])
    with pytest.raises(UserInputError) as error:
        data_efficiency.code_commit(allow_dirty=False)
    assert "dems_training/recipe.py" in str(error.value) and "--allow_dirty" in str(error.value)
    assert data_efficiency.code_commit(allow_dirty=True) == "0123abcd+dirty"
    answers["status"] = ""
    assert data_efficiency.code_commit(allow_dirty=False) == "0123abcd"


def git_repository(path) -> str:
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    for key, value in (("user.email", "study@example.org"), ("user.name", "study")):
        subprocess.run(["git", "-C", str(path), "config", key, value], check=True)
    return str(path)


def commit_file(repo: str, name: str, text: str) -> str:
    os.makedirs(os.path.dirname(os.path.join(repo, name)), exist_ok=True)
    with open(os.path.join(repo, name), "w") as f:
        f.write(text)
    subprocess.run(["git", "-C", repo, "add", name], check=True)
    subprocess.run(["git", "-C", repo, "commit", "-q", "-m", name], check=True)
    return data_efficiency.git("rev-parse", "HEAD")


def test_commits_of_the_same_training_code_count_as_one_others_are_refused(tmp_path, monkeypatch):
    repo = git_repository(tmp_path / "repo")
    monkeypatch.setattr(data_efficiency, "REPO", repo)
    first = commit_file(repo, "dems_training/recipe.py", "lr = 1e-3")
    runner_only = commit_file(repo, "benchmarks/data_efficiency.py", "grid_epochs = 250")  # the runner changed
    trainer_too = commit_file(repo, "dems_training/recipe.py", "lr = 2e-3")
    runs = grid_runs(SMALL)
    settings = StudySettings(**{**SMALL.__dict__, "results_dir": str(tmp_path)})
    same = [record(runs[0], commit=first), record(runs[1], commit=runner_only)]
    text = open(study_report.write_report(same, settings)).read()
    assert "(the same model and training code)" in text
    with pytest.raises(UserInputError) as error:
        study_report.write_report([*same, record(runs[2], commit=trainer_too)], settings)
    assert "2 different versions of the training code" in str(error.value)
    assert not data_efficiency.same_training_code(first, first + "+dirty")


def test_records_of_mixed_commits_are_refused(tmp_path):
    runs = grid_runs(SMALL)
    records = [record(runs[0], commit="aaaa"), record(runs[1], commit="aaaa"), record(runs[2], commit="bbbb")]
    settings = StudySettings(**{**SMALL.__dict__, "results_dir": str(tmp_path)})
    with pytest.raises(UserInputError) as error:
        study_report.write_report(records, settings)
    assert "aaaa: 2" in str(error.value) and "bbbb: 1" in str(error.value)
    assert "--allow_mixed_commits" in str(error.value)
    assert not (tmp_path / "results.md").exists()
    assert study_report.write_report(records, settings, allow_mixed_commits=True) == str(tmp_path / "results.md")


def test_report_pairs_seeds_counts_wins_and_checks_the_plateau(tmp_path):
    settings = StudySettings(**{**SMALL.__dict__, "results_dir": str(tmp_path)})
    validation = {"dems": 0.80, "vit": 0.70, "vit-wide": 0.72}
    records = [record(r, validation[r.arm] + (0.01 if r.learning_rate == 1e-3 else 0.0)) for r in grid_runs(SMALL)]
    test = {("dems", 0): 0.80, ("dems", 1): 0.76, ("dems", 2): 0.78, ("vit", 0): 0.75, ("vit", 1): 0.77,
            ("vit", 2): 0.70}
    records += [record(RunSpec(arm, 60, seed, 400, 1e-3), test_top1=top1) for (arm, seed), top1 in test.items()]
    records += [record(RunSpec("dems", 60, 0, 800, 1e-3), val_top1=0.503),  # 1x has 0.50: +0.30 points
                record(RunSpec("vit", 60, 0, 800, 1e-3), val_top1=0.49)]  # -1.00 point: no plateau
    text = open(study_report.write_report(records, settings)).read()
    assert "| 600 | +5.00 (seed 0), -1.00 (seed 1), +8.00 (seed 2) | +4.00 | 2 of 3 |" in text
    assert "| DEMS-ViT | 78.00 ± 2.00 (n=3) |" in text  # 80, 76, 78: sd 2
    assert "| DEMS-ViT | 600 | 400 | 50.00 | 50.30 | +0.30 | yes | 80.00 -> 50.00 |" in text
    assert "| ViT, same width and depth | 600 | 400 | 50.00 | 49.00 | -1.00 | **no** | 75.00 -> 50.00 |" in text
    assert "| DEMS-ViT | 80.00 | 81.00 | 80.00 | 0.001 |" in text
    assert "| ViT, same width and depth | 70.00 | 71.00 | 70.00 | 0.001 |" in text  # inside the grid: no mark
    for picture in ("learning_curves.png", "top1_vs_size.png"):
        assert (tmp_path / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_size_dropped_from_the_plan_keeps_its_records_at_the_chosen_rates_in_a_table_of_its_own(tmp_path):
    rates_won = {"dems": 1e-3, "vit": 1e-3, "vit-wide": 1e-3}
    grid = [record(r, 0.70 + (0.01 if r.learning_rate == rates_won[r.arm] else 0.0)) for r in grid_runs(SMALL)]
    at_600 = [record(RunSpec("vit", 600, 0, 160, 1e-3), val_top1=0.8714, test_top1=0.8572),
              record(RunSpec("dems", 600, 0, 80, 1e-3), val_top1=0.8492, test_top1=0.8391),
              record(RunSpec("vit", 600, 0, 80, 2e-3), val_top1=0.60)]  # another rate: left out
    heading = "## Sizes dropped from the plan: their records at the chosen rates (no plateau shown)"
    full = StudySettings(**{**SMALL.__dict__, "results_dir": str(tmp_path / "full")})
    assert heading not in open(study_report.write_report(grid + at_600, full)).read()  # 600 still planned
    dropped = StudySettings(**{**SMALL.__dict__, "samples_per_class": [60, 120], "epochs": [400, 250],
                               "results_dir": str(tmp_path / "dropped")})
    text = open(study_report.write_report(grid + at_600, dropped)).read()
    table = text[text.index(heading):].splitlines()
    assert table[4:] == ["| DEMS-ViT | 6,000 | 80 | 0 | 84.92 | 83.91 |",
                         "| ViT, same width and depth | 6,000 | 160 | 0 | 87.14 | 85.72 |"]
    assert "6,000" not in text[:text.index(heading)]  # out of the comparison's tables


def test_a_rate_chosen_at_the_grid_s_edge_is_marked_as_such(tmp_path):
    settings = StudySettings(**{**SMALL.__dict__, "results_dir": str(tmp_path)})
    validation = {5e-4: 0.75, 1e-3: 0.74, 2e-3: 0.70}  # every arm's best is the smallest rate
    records = [record(r, validation[r.learning_rate]) for r in grid_runs(SMALL)]
    text = open(study_report.write_report(records, settings)).read()
    edge = "0.0005 (the grid's edge: a wider grid might choose otherwise)"
    assert f"| DEMS-ViT | 75.00 | 74.00 | 70.00 | {edge} |" in text


REQUIRED_KEYS = {"arm", "train_images", "seed", "commit", "command", "params", "gmacs_per_image", "peak_lr",
                 "images_seen", "test_top1", "curve", "images_per_second", "torch", "transformers", "date"}


@pytest.mark.slow
def test_a_small_study_records_every_key_and_a_record_reruns_to_its_test_top1(tmp_path, monkeypatch, capsys):
    for name, value in offline_env(tmp_path).items():
        monkeypatch.setenv(name, value)
    results_dir, outputs_dir = tmp_path / "results", tmp_path / "outputs"
    argv = ["--quick", "--arms", "dems", "vit", "--grid_learning_rates", "1e-3", "--plateau_samples_per_class",
            "--samples_per_class", "5", "--epochs", "6", "--grid_samples_per_class", "5", "--results_dir",
            str(results_dir), "--outputs_dir", str(outputs_dir), "--allow_dirty"]
    assert data_efficiency.main(argv) == 0
    records = {r["name"]: r for r in data_efficiency.read_records(str(results_dir))}
    assert sorted(records) == ["dems-k5-s0-e6-lr0.001", "vit-k5-s0-e6-lr0.001"]
    for one in records.values():
        assert REQUIRED_KEYS <= set(one)
        assert one["train_images"] == 50 and one["images_seen"] == 300 and one["validation_images"] == 100
        assert one["test_images"] == 360 and 0 <= one["test_top1"] <= 1
        # 24 steps (4 batches of 16 a 50-image epoch), an evaluation every ceil(24 / 10) = 3 steps
        assert [point["images_seen"] for point in one["curve"]] == [round(300 * step / 24) for step in range(3, 25, 3)]
        assert one["commit"].endswith("+dirty") or len(one["commit"]) == 40
    assert records["vit-k5-s0-e6-lr0.001"]["params"] != records["dems-k5-s0-e6-lr0.001"]["params"]
    assert (results_dir / "results.md").is_file() and (results_dir / "logs" / "vit-k5-s0-e6-lr0.001.log").is_file()

    # The record's command, run again into a new folder, gives its test top-1 again.
    one = records["dems-k5-s0-e6-lr0.001"]
    words = shlex.split(one["command"])
    assert words[:3] == ["OMP_NUM_THREADS=1", "python", "train.py"]
    arguments = words[3:]
    arguments[arguments.index("--output_dir") + 1] = str(tmp_path / "rerun")
    subprocess.run([sys.executable, "train.py", *arguments], cwd=data_efficiency.REPO, check=True,
                   capture_output=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    rerun = json.loads((tmp_path / "rerun" / "all_results.json").read_text())
    assert rerun["test_top1_accuracy"] == one["test_top1"]

    capsys.readouterr()
    before = {path: os.path.getmtime(path) for path in (results_dir / "runs").iterdir()}
    assert data_efficiency.main(argv) == 0
    assert "run(s) to do" not in capsys.readouterr().out
    assert {path: os.path.getmtime(path) for path in (results_dir / "runs").iterdir()} == before


def test_a_finished_record_is_committed_with_its_log(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    monkeypatch.setattr(data_efficiency, "REPO", git_repository(repo))
    (repo / "runs").mkdir()
    (repo / "runs" / "a.json").write_text("{}")
    (repo / "a.log").write_text("log")
    (repo / "unrelated.txt").write_text("not mine")
    data_efficiency.commit_record([str(repo / "runs" / "a.json"), str(repo / "a.log")], "study: a")
    files = data_efficiency.git("show", "--name-only", "--format=%s", "HEAD").split()
    assert files == ["study:", "a", "a.log", "runs/a.json"]
    assert "?? unrelated.txt" in data_efficiency.git("status", "--porcelain")


def test_with_a_finish_time_only_runs_expected_to_end_before_it_start(tmp_path, monkeypatch):
    monkeypatch.setattr(data_efficiency, "REPO", str(tmp_path))
    long, short, unknown = (RunSpec("dems", 60, 0, 1600, 2e-3), RunSpec("vit", 60, 0, 100, 1e-3),
                            RunSpec("vit-wide", 60, 0, 100, 5e-4))
    # DEMS at 200 images/s (the median of 100, 200, 300): 600 images x 1600 epochs = 4,800 s; the ViT 600 x 100 at
    # 600 images/s = 100 s; the wide ViT has no record, so no estimate, and starts.
    records = {f"r{i}": {"arm": arm, "images_per_second": speed, "threads": 1}
               for i, (arm, speed) in enumerate([("dems", 100.0), ("dems", 300.0), ("dems", 200.0), ("vit", 600.0)])}
    finish_by = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)).isoformat()
    settings = StudySettings(**{**SMALL.__dict__, "finish_by": finish_by, "jobs": 1})
    started = []
    left = data_efficiency.run_until(settings, [long, short, unknown], records, {"classes": 10}, started.append)
    assert started == [short, unknown]
    assert left == [long]
    started.clear()
    only = StudySettings(**{**settings.__dict__, "only": [long.name]})  # --only: whatever --finish_by says
    assert data_efficiency.run_until(only, [long], records, {"classes": 10}, started.append) == []
    assert started == [long]
    started.clear()
    settings = StudySettings(**{**SMALL.__dict__, "jobs": 2})
    assert data_efficiency.run_until(settings, [long, short], records, {"classes": 10}, started.append) == []
    assert sorted(run.name for run in started) == sorted([long.name, short.name])


def test_the_estimate_counts_what_a_checkpoint_holds_and_leaves_a_margin(tmp_path):
    import torch
    from safetensors.torch import save_file
    from transformers import TrainerState

    run = RunSpec("dems", 60, 0, 1600, 2e-3)
    assert data_efficiency.seconds_needed(run, {"dems": 240.0}, classes=10) == 4000.0  # 960,000 images at 240/s
    assert data_efficiency.seconds_needed(run, {"dems": 240.0}, classes=10, done=0.25) == 3000.0
    assert data_efficiency.seconds_needed(run, {"vit": 240.0}, classes=10) is None
    ablation = RunSpec("dems-constant", 60, 0, 1600, 2e-3)  # the same model as DEMS's: DEMS's speed
    assert data_efficiency.seconds_needed(ablation, {"dems": 240.0}, classes=10) == 4000.0
    checkpoint = tmp_path / "run" / "checkpoint-30"
    checkpoint.mkdir(parents=True)
    save_file({"weight": torch.zeros(2)}, str(checkpoint / "model.safetensors"))
    TrainerState(global_step=30, max_steps=120).save_to_json(str(checkpoint / "trainer_state.json"))
    assert data_efficiency.progress(str(tmp_path / "run")) == 0.25
    assert data_efficiency.progress(str(tmp_path / "none")) == 0.0
    # 1,000 s of work needs 1,150 s with the margin: it fits in 1,150 s, not in 1,149
    assert data_efficiency.next_run([run], {run.name: 1000.0}, seconds_left=1150.0) == run
    assert data_efficiency.next_run([run], {run.name: 1000.0}, seconds_left=1149.0) is None

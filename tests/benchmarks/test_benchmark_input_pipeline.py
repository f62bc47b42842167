"""Smoke test of benchmarks/input_pipeline.py: it runs end to end on a few images, times the baseline and the new
code side by side and writes a JSON report whose figures fit together. How fast anything runs is the benchmark's
business, not a test's."""

import json

import pytest
import torch
from fragments import raises_naming

from benchmarks import input_pipeline
from dems_training import UserInputError


@pytest.fixture(scope="module")
def bench():
    threads = torch.get_num_threads()
    yield input_pipeline
    torch.set_num_threads(threads)  # the runs use one thread; the rest of the session gets its own back


TINY = ["--repeats", "2", "--distinct_images", "2", "--batch_size", "4", "--collate_batches", "2", "--device_batches",
        "1", "--loader_batches", "1", "--workers", "0"]


def test_runs_both_sizes_and_writes_consistent_figures(bench, tmp_path, capsys):
    path = tmp_path / "report.json"
    report = bench.run([*TINY, "--iters", "4", "2", "--json", str(path)])
    assert json.loads(path.read_text()) == json.loads(json.dumps(report))
    assert report["environment"]["clock"] == "cpu" and report["environment"]["threads"] == 1
    for size, source in (("32", "32x32 PNG"), ("256", "300x400 JPEG")):
        result = report["results"][size]
        assert result["source"] == source
        for name in ("baseline", "new"):
            stages = result[name]["pretrain"]
            assert set(stages) == {"crop + resize", "colour ops", "flip + tensor + normalise", "load"}
            for stage in ("crop + resize", "colour ops", "flip + tensor + normalise"):
                assert len(stages[stage]["runs"]) == 2 and stages[stage]["seconds"] > 0
            assert result[name]["held_out_whole"]["whole"]["seconds"] > 0 and result[name]["collate"]["seconds"] > 0
        assert set(result["loader"]) == {"baseline", "new", "on-device CPU share"}
        assert all(v["0"]["images_per_s"] > 0 for v in result["loader"].values())
        share = bench.on_device_cpu_share(result)
        assert share > result["decode"]["decode"]["seconds"]
        assert result["on_device"]["batched"]["device"] == "cpu"
    table = capsys.readouterr().out
    assert "pretrain: whole transform" in table and "x decode" in table and "loader, baseline" in table


def test_new_code_alone_and_bad_arguments(bench, tmp_path):
    report = bench.run([*TINY, "--iters", "4", "--sizes", "32", "--skip_baseline", "--skip_loader"])
    result = report["results"]["32"]
    assert "baseline" not in result and "loader" not in result
    rows = {what: (before, after) for what, before, after in bench.rows_of(result)}
    assert rows["pretrain: whole transform"][0] is None and rows["pretrain: whole transform"][1] > 0
    with raises_naming(UserInputError, "--iters", "3 values", "--sizes [32, 256]"):
        bench.run(["--sizes", "32", "256", "--iters", "1", "2", "3"])
    with raises_naming(UserInputError, "--threads=2"):
        bench.run(["--threads", "2"])  # the CPU clock counts one thread
    with raises_naming(UserInputError, "--repeats=0"):
        bench.run(["--repeats", "0"])
    assert bench.main(["--repeats", "0"]) == 2  # the command: one line, exit code 2

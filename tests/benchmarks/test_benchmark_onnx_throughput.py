"""Smoke test of benchmarks/onnx_throughput.py: it exports, checks and times both runtimes in one run, prints the
Markdown table and writes a consistent JSON report. How fast either runtime is, is the benchmark's business."""

import json

import pytest
import torch

from benchmarks import onnx_throughput
from dems_training import UserInputError


@pytest.fixture
def restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)  # the run below sets one thread; the rest of the session gets its own back


@pytest.mark.slow
@pytest.mark.usefixtures("restore_threads")
def test_times_pytorch_and_onnx_runtime_side_by_side(tmp_path, capsys):
    path = tmp_path / "onnx.json"
    argv = ["--batch_sizes", "1", "2", "--warmup", "0", "--iters", "2", "--threads", "1", "--json", str(path)]
    assert onnx_throughput.main(argv) == 0
    report = json.loads(path.read_text())
    assert report["preset"] == "tiny-32" and report["threads"] == 1 and report["iters"] == 2
    assert set(report["onnx_check_max_abs_difference"]) == {"1", "8"}
    assert max(report["onnx_check_max_abs_difference"].values()) <= 1e-4
    assert [row["batch_size"] for row in report["results"]] == [1, 2]
    for row in report["results"]:
        for side in ("pytorch", "onnxruntime"):
            figures = row[side]
            assert len(figures["seconds"]) == 2 and figures["median_seconds"] > 0
            assert figures["images_per_second"] == pytest.approx(row["batch_size"] / figures["median_seconds"])
        assert row["speedup"] == pytest.approx(row["pytorch"]["median_seconds"] / row["onnxruntime"]["median_seconds"])
    table = capsys.readouterr().out
    assert "| batch | PyTorch ms | PyTorch images/s | ONNX Runtime ms |" in table
    assert table.count("\n| 1 | ") == 1 and table.count("\n| 2 | ") == 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--preset", "huge-32"], "--preset 'huge-32' is not one of"),
        (["--batch_sizes", "1", "0"], "--batch_sizes 1 0: each must be at least 1"),
        (["--iters", "0"], "--iters 0: each must be at least 1"),
    ],
)
def test_bad_flags_are_refused_before_any_work(argv, message):
    with pytest.raises(UserInputError, match=message):
        onnx_throughput.check_args(onnx_throughput.parse_args(argv))

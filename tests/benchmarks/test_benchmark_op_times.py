"""benchmarks/op_times.py: its FLOP formula against hand-computed products and against torch's own counter, and
the consistency of its breakdown. How fast anything runs is not tested."""

import json

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks import op_times as op_times_module
from benchmarks.harness import BenchmarkSettings, Runner


@pytest.fixture(scope="module")
def op_times():
    threads = torch.get_num_threads()
    yield op_times_module
    torch.set_num_threads(threads)


def test_matrix_product_flops_by_hand(op_times):
    # (3 x 4) @ (4 x 5): 60 multiply-adds
    assert op_times.matrix_product_flops("mm", [(3, 4), (4, 5)]) == 120
    # addmm's bias is its first operand and is not counted
    assert op_times.matrix_product_flops("addmm", [(5,), (3, 4), (4, 5)]) == 120
    # 7 products of (2 x 6) @ (6 x 3): 7 * 36 multiply-adds
    assert op_times.matrix_product_flops("bmm", [(7, 2, 6), (7, 6, 3)]) == 504
    assert op_times.matrix_product_flops("baddbmm", [(7, 2, 3), (7, 2, 6), (7, 6, 3)]) == 504
    # matmul broadcasts batch dimensions: (2, 1, 3, 4) @ (5, 4, 6) is 2 * 5 products of (3 x 4) @ (4 x 6)
    assert op_times.matrix_product_flops("matmul", [(2, 1, 3, 4), (5, 4, 6)]) == 2 * 10 * 72
    # linear: (2, 3, 4) @ (5, 4).T, bias not counted
    assert op_times.matrix_product_flops("linear", [(2, 3, 4), (5, 4), (5,)]) == 2 * 6 * 20
    assert op_times.matrix_product_flops("gelu", [(3, 4)]) == 0


def test_kinds(op_times):
    assert op_times.kind_of("addmm") == "matrix products"
    assert op_times.kind_of("_scaled_dot_product_flash_attention_for_cpu_backward") == "attention kernels"
    assert op_times.kind_of("gelu_backward") == "GELU"
    assert op_times.kind_of("native_layer_norm_backward") == "LayerNorm"
    assert op_times.kind_of("add") == "other"


def small_model_args(tmp_path, *extra):
    return [
        "--batch_size", "2", "--threads", "1", "--warmup", "1", "--iters", "1", "--matmul_size", "128",
        "--override", "num_hidden_layers=2", "merge_layers=[1,2]", "mlp_ratios=[2,2,2]",
        "--json", str(tmp_path / "op_times.json"), *extra,
    ]  # fmt: skip


def test_training_step_products_match_torch_flop_counter(op_times, tmp_path, capsys):
    """With eager attention every FLOP of the step is in mm/addmm/bmm, so the script's shape formula, summed over
    the step, must equal what torch.utils.flop_counter counts for those operators on the same step."""
    summary = op_times.run(small_model_args(tmp_path, "--attn_implementation", "eager"))
    assert "matrix products" in capsys.readouterr().out

    args = op_times.parse_args(small_model_args(tmp_path, "--attn_implementation", "eager"))
    runner = Runner(args.preset, args.attn_implementation, BenchmarkSettings.from_arguments(args))  # run's model
    with FlopCounterMode(display=False) as counter:
        runner.train_step()
    counted = sum(
        flops
        for op, flops in counter.get_flop_counts()["Global"].items()
        if op.__name__ in op_times.MATRIX_PRODUCTS
    )
    assert counted > 0
    assert summary["matrix_product_flops"] == counted


def test_breakdown_is_consistent(op_times, tmp_path):
    summary = op_times.run(small_model_args(tmp_path, "--mode", "inference"))
    written = json.loads((tmp_path / "op_times.json").read_text())
    assert written["rows"] == summary["rows"]
    # every row is in exactly one kind, and the kinds add up to the time spent inside operators
    assert sum(summary["by_kind"].values()) == pytest.approx(summary["timed_seconds"])
    assert sum(row["seconds"] for row in summary["rows"]) == pytest.approx(summary["timed_seconds"])
    assert summary["timed_seconds"] <= summary["iteration_seconds"]
    kinds = set(summary["by_kind"])
    assert {"matrix products", "attention kernels", "GELU", "LayerNorm"} <= kinds
    products = [row for row in summary["rows"] if row["op"] in op_times.MATRIX_PRODUCTS]
    assert products and all(row["gflop_per_s"] > 0 and row["roofline_ratio"] > 0 for row in products)


def test_the_command_reports_a_bad_flag_in_one_line_with_exit_code_2(op_times, capsys):
    assert op_times.main(["--iters", "0"]) == 2
    assert capsys.readouterr().err == "op_times.py: error: --iters=0 must be at least 1.\n"

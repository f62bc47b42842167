"""Smoke test of benchmarks/throughput.py: it runs end to end on a small batch and writes a JSON report whose figures
are consistent. Speed itself is the benchmark's business, not a test's: nothing here depends on how fast it runs."""

import json

import pytest
import torch
from fragments import raises_naming

from benchmarks import throughput as throughput_module
from dems_training import UserInputError


@pytest.fixture(scope="module")
def throughput():
    threads = torch.get_num_threads()
    yield throughput_module
    torch.set_num_threads(threads)  # the runs below use one thread; the rest of the session gets its own back


def run(throughput, tmp_path, *extra, batch_size: int = 2) -> dict:
    # One untimed and one timed iteration: the figures' consistency is tested here, not their stability. One thread:
    # two OpenMP threads on a machine shared with other test runs can take many times longer.
    path = tmp_path / "out.json"
    argv = ["--batch_size", str(batch_size), "--warmup", "0", "--iters", "1", "--matmul_size", "128", "--device", "cpu"]
    argv += ["--threads", "1"]
    throughput.run([*argv, "--json", str(path), *extra])
    return json.loads(path.read_text())


@pytest.mark.slow  # the full tiny-32 model, timed
def test_reports_reference_flops_for_both_attention_implementations(throughput, tmp_path, capsys):
    report = run(
        throughput,
        tmp_path,
        "--presets",
        "tiny-32",
        "--attn_implementation",
        "sdpa",
        "eager",
        "--skip_memory",
        "--clock",
        "cpu",
        batch_size=1,
    )
    results = report["results"]
    assert [r["attn_implementation"] for r in results] == ["sdpa", "eager"]
    for result in results:
        assert result["preset"] == "tiny-32" and result["batch_size"] == 1 and result["dtype"] == "fp32"
        assert "memory_bytes" not in result
        # docs/architecture.md, reference figures: tiny at 32/2 costs 2.03 GMACs per image. SDPA must be credited
        # with the attention products too (the flop counter has no formula for the CPU flash kernel).
        assert round(result["inference"]["flops"] / 2 / 1e9, 2) == 2.03
        # Backward is about twice the forward; the first convolutions need no input gradient, so slightly less.
        ratio = result["train"]["flops"] / result["inference"]["flops"]
        assert 2.9 < ratio <= 3.0
        for name in ("train", "inference"):
            figures = result[name]
            assert len(figures["times_s"]) == len(figures["foreign_load"]) == 1
            assert all(0 <= load <= 1.05 for load in figures["foreign_load"])  # a CPU share (10 ms ticks)
            assert figures["median_s"] > 0
            assert figures["images_per_s"] == pytest.approx(1 / figures["median_s"])
            assert figures["flops_per_s"] == pytest.approx(figures["flops"] / figures["median_s"])
            assert figures["roofline_ratio"] == pytest.approx(figures["flops_per_s"] / result["matmul_flops_per_s"])
    environment = report["environment"]
    assert environment["torch"] and environment["threads"] == 1 and environment["matmul_size"] == 128
    assert environment["clock"] == "cpu"
    table = capsys.readouterr().out
    assert "tiny-32" in table and "roofline matmul" in table


@pytest.mark.slow  # the full tiny-32 model, timed
def test_memory_and_gradient_checkpointing(throughput, tmp_path):
    width = 64
    small = ["--override", "num_hidden_layers=4", "merge_layers=[2,3]", f"hidden_size={width}", "num_attention_heads=2"]
    small.append("--skip_inference")
    plain = run(throughput, tmp_path, *small)["results"][0]
    # Nothing is ever quiet enough for a negative bound: the run falls back to the disturbed iterations, and says so.
    fallback = run(throughput, tmp_path, *small, "--max_foreign_load", "-1", "--max_attempts", "2", "--skip_memory")
    figures = fallback["results"][0]["train"]
    assert len(figures["times_s"]) == 2 and figures["discarded_times_s"] == []
    checkpointed = run(throughput, tmp_path, *small, "--gradient_checkpointing")["results"][0]
    assert checkpointed["gradient_checkpointing"] and not plain["gradient_checkpointing"]
    assert plain["config_overrides"] == small[1:-1]
    assert "inference" not in plain
    parameters = 4 * 12 * width**2 + 2 * 3 * width**2  # the blocks' and mergers' weights, roughly
    for result in (plain, checkpointed):
        memory = result["memory_bytes"]
        # fp32 weights and AdamW's two moments, each as large: more than three times the weights' bytes.
        assert memory["resident"] > 3 * 4 * parameters
        assert 0 < memory["saved"] <= memory["peak_above_resident"]
        assert memory["peak"] == memory["resident"] + memory["peak_above_resident"]
        assert memory["saved_per_image"] == memory["saved"] / 2
    # Same model, same work credited; the checkpointed forward keeps only the blocks' inputs.
    assert checkpointed["train"]["flops"] == plain["train"]["flops"]
    assert checkpointed["memory_bytes"]["saved"] < plain["memory_bytes"]["saved"] / 2


def test_bad_arguments_are_rejected(throughput, tmp_path):
    with raises_naming(UserInputError, "--override='num_hidden_layers'", "key=value"):
        run(throughput, tmp_path, "--override", "num_hidden_layers")
    with raises_naming(UserInputError, "--threads 1"):  # CPU time of two threads would count OpenMP's spinning
        run(throughput, tmp_path, "--clock", "cpu", "--threads", "2")


def test_the_command_reports_a_bad_flag_in_one_line_with_exit_code_2(throughput, capsys):
    assert throughput.main(["--override", "hidden=3"]) == 2
    assert capsys.readouterr().err == "throughput.py: error: --override: 'hidden' is not a DemsConfig field.\n"

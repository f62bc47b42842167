"""Where a DEMS-ViT training step (or inference forward) spends its time, operator by operator.

Every aten operator that runs (forward, autograd's backward and the optimizer alike) is timed with a wall clock
around its call, by a `TorchDispatchMode`. On CPU each operator returns only when its kernel is done, so the time is
the kernel's. What lies between operators (Python, autograd's engine, freeing memory, and this mode's own overhead)
is the iteration's wall time minus the operators' sum, reported as such. Matrix products get
their FLOPs from their shapes and so a GFLOP/s figure that can be read against the roofline matmul sampled in the
same process (`harness.Roofline`, as in `throughput.py`).

This is a diagnostic beside `throughput.py`, whose figures are the benchmark's. Unlike `torch.profiler` it gives
each matrix product's achieved FLOP/s next to the roofline, which is where the step's inefficiency shows.

CPU only: CUDA kernels are asynchronous, and timing them around the call would measure the launch.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode


if not __package__:  # run as `python benchmarks/op_times.py`: the repository root holds `benchmarks` and the model
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.harness import BenchmarkSettings, Roofline, Runner, apply_process_settings  # noqa: E402
from configuration_dems import DEMS_PRESETS  # noqa: E402
from dems_training import run_command  # noqa: E402


# Under torch.inference_mode the mode sees `linear` and `matmul` whole; with autograd it sees what they become.
MATRIX_PRODUCTS = ("mm", "addmm", "bmm", "baddbmm", "matmul", "linear")


def kind_of(op_name: str) -> str:
    """The group an operator's time is summed into."""
    if op_name in MATRIX_PRODUCTS:
        return "matrix products"
    if "scaled_dot_product" in op_name:
        return "attention kernels"
    if op_name.startswith("gelu"):
        return "GELU"
    if op_name.startswith(("native_layer_norm", "layer_norm")):
        return "LayerNorm"
    return "other"


def matrix_product_flops(op_name: str, shapes: list[tuple[int, ...]]) -> int:
    """FLOPs (2 per multiply-add) of a matrix product from its operands' shapes; 0 for any other operator.

    `mm`, `bmm`, `matmul` take `a` (..., m, k) and `b` (..., k, n), batch dimensions broadcast; `addmm(bias, a, b)`
    and `baddbmm(c, a, b)` take them second and third, and the addition is not counted (as in
    `torch.utils.flop_counter`); `linear(x, weight[, bias])` multiplies x (..., k) by weight (n, k) transposed.
    """
    if op_name not in MATRIX_PRODUCTS:
        return 0
    if op_name == "linear":
        x, weight = shapes[0], shapes[1]
        return 2 * math.prod(x[:-1]) * x[-1] * weight[0]
    a, b = (shapes[-2], shapes[-1]) if op_name in ("addmm", "baddbmm") else (shapes[0], shapes[1])
    m = a[-2] if len(a) > 1 else 1  # a 1-D operand of matmul is a single row / column
    n = b[-1] if len(b) > 1 else 1
    batch = math.prod(torch.broadcast_shapes(a[:-2], b[:-2]))
    return 2 * batch * m * a[-1] * n


class OperatorTimer(TorchDispatchMode):
    """Sums wall time, calls and FLOPs per (operator, operand shapes)."""

    def __init__(self):
        super().__init__()
        self.seconds: dict[tuple[str, str], float] = defaultdict(float)
        self.calls: dict[tuple[str, str], int] = defaultdict(int)
        self.flops: dict[tuple[str, str], int] = defaultdict(int)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        start = time.perf_counter()
        out = func(*args, **(kwargs or {}))
        seconds = time.perf_counter() - start
        name = func.overloadpacket.__name__
        shapes = [tuple(a.shape) for a in args if isinstance(a, torch.Tensor)]
        key = (name, str(shapes))
        self.seconds[key] += seconds
        self.calls[key] += 1
        self.flops[key] += matrix_product_flops(name, shapes)
        return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="tiny-32", choices=sorted(DEMS_PRESETS))
    parser.add_argument("--num_labels", type=int, default=10)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--attn_implementation", default="sdpa", choices=["sdpa", "eager"])
    parser.add_argument("--mode", default="train", choices=["train", "inference"], help="what is timed")
    parser.add_argument("--override", nargs="*", default=[], metavar="KEY=VALUE", help="as in throughput.py")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads; default: torch's")
    parser.add_argument("--keep_freed_memory", action="store_true", help="as in throughput.py")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--iters", type=int, default=2, help="timed iterations; times are their mean")
    parser.add_argument("--matmul_size", type=int, default=4096, help="side of the roofline matmul (default 4096)")
    parser.add_argument("--top", type=int, default=20, help="operator/shape rows to print (default 20)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="write the breakdown here")
    return parser.parse_args(argv)


def summarize(timer: OperatorTimer, iters: int, wall_seconds: float, roofline_flops_per_s: float) -> dict:
    """Per-iteration times by kind and by (operator, shapes), with each product's share of the roofline."""
    by_kind: dict[str, float] = defaultdict(float)
    for (name, _), seconds in timer.seconds.items():
        by_kind[kind_of(name)] += seconds / iters
    rows = []
    for key, seconds in sorted(timer.seconds.items(), key=lambda item: -item[1]):
        flops = timer.flops[key]
        rows.append(
            {
                "op": key[0],
                "shapes": key[1],
                "calls": timer.calls[key] // iters,
                "seconds": seconds / iters,
                "gflop_per_s": flops / seconds / 1e9 if flops else None,
                "roofline_ratio": flops / seconds / roofline_flops_per_s if flops else None,
            }
        )
    return {
        "iteration_seconds": wall_seconds / iters,
        "timed_seconds": sum(by_kind.values()),
        "roofline_gflop_per_s": roofline_flops_per_s / 1e9,
        "by_kind": dict(sorted(by_kind.items(), key=lambda item: -item[1])),
        "matrix_product_flops": sum(timer.flops.values()) // iters,
        "rows": rows,
    }


def format_summary(summary: dict, top: int) -> str:
    total = summary["iteration_seconds"]
    lines = [
        f"per iteration: {total * 1e3:.1f} ms wall, {summary['timed_seconds'] * 1e3:.1f} ms inside operators; "
        f"roofline matmul {summary['roofline_gflop_per_s']:.1f} GFLOP/s",
        "",
        f"{'kind':20s} {'ms':>9s} {'share':>7s}",
    ]
    for kind, seconds in summary["by_kind"].items():
        lines.append(f"{kind:20s} {seconds * 1e3:9.1f} {100 * seconds / total:6.1f}%")
    lines += ["", f"{'ms':>9s} {'calls':>5s} {'GFLOP/s':>8s} {'ratio':>6s}  operator and operand shapes"]
    for row in summary["rows"][:top]:
        rate = f"{'-':>8s} {'-':>6s}"
        if row["gflop_per_s"]:
            rate = f"{row['gflop_per_s']:8.1f} {row['roofline_ratio']:6.3f}"
        lines.append(f"{row['seconds'] * 1e3:9.1f} {row['calls']:5d} {rate}  {row['op']} {row['shapes'][:80]}")
    return "\n".join(lines)


def run(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    settings = BenchmarkSettings.from_arguments(args)
    apply_process_settings(settings)
    # throughput.py's model, batch and AdamW step, as op_times measures them: fp32 on CPU, uncompiled, without
    # checkpointing (the settings' defaults)
    runner = Runner(args.preset, args.attn_implementation, settings)
    iteration: Callable[[], None] = runner.train_step if args.mode == "train" else runner.infer
    roofline = Roofline(settings.matmul_size, runner.device, settings.torch_dtype)
    for _ in range(settings.warmup):
        iteration()
    timer = OperatorTimer()
    roofline.sample()
    start = time.perf_counter()
    with timer:
        for _ in range(settings.iters):
            iteration()
    wall_seconds = time.perf_counter() - start
    roofline.sample()
    summary = summarize(timer, settings.iters, wall_seconds, statistics.median(roofline.all_samples))
    # The flags, and the fixed settings they run under (recorded as they always were).
    fixed = {name: getattr(settings, name) for name in ("device", "dtype", "gradient_checkpointing", "compile")}
    summary["arguments"] = {k: str(v) for k, v in {**vars(args), **fixed}.items()}
    print(format_summary(summary, args.top))
    if args.json is not None:
        args.json.write_text(json.dumps(summary, indent=2))
    return summary


def main(argv: list[str] | None = None) -> int:
    """The command: `run`, with a flag that cannot work reported in one line and exit code 2."""
    return run_command(run, "op_times.py", argv)


if __name__ == "__main__":
    sys.exit(main())

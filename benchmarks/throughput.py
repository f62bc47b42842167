"""Throughput benchmark of DEMS-ViT: training-step and inference speed, FLOP/s against the hardware's matmul roofline,
and memory.

For every combination of preset x attention implementation it builds a `DemsForImageClassification` and measures,
after warm-up:

* the median wall time of a full training step (zero_grad, forward with labels, backward, AdamW step) and of an
  inference forward (eval mode, `torch.inference_mode`), and the images per second of each;
* the FLOPs of the step and of the forward, counted with `torch.utils.flop_counter.FlopCounterMode`;
* achieved FLOP/s and the "roofline ratio": achieved FLOP/s over the FLOP/s of a large square matrix product of the
  same dtype, measured in the same process, interleaved with the model's timings so that both see the same load;
* memory: the step's peak, the bytes the forward saves for the backward (per image) and the peak above the
  step's starting point (per image).

Run `python benchmarks/throughput.py --help`; benchmarks/RESULTS.md holds figures and the commands that made them.

FLOPs are the model's, not the kernels': they are counted once per preset and batch size on an uncompiled copy that
uses eager attention and no gradient checkpointing. So every variant of one preset is credited with the same work,
attention included (the counter has no formula for the CPU flash-attention kernel and would credit SDPA with no
attention FLOPs on CPU), and recomputation (flash attention's backward, gradient checkpointing) is not counted as
useful work. The optimizer's element-wise update is not counted (the counter counts matrix products and
convolutions only); its time is in the step.

Memory on CUDA is `torch.cuda` allocator statistics. On CPU there is no allocator statistic, so the benchmark runs
one extra step under `torch.profiler` with `profile_memory=True` and replays the allocation and free events it
records in time order: the running sum is the memory torch's CPU allocator hands out, exactly, without the noise of
the process's RSS (which glibc's reuse of freed blocks makes useless for a peak).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import statistics
import sys
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode


if not __package__:  # run as `python benchmarks/throughput.py`: the repository root holds `benchmarks` and the model
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.harness import (  # noqa: E402
    DTYPES,
    BenchmarkSettings,
    Roofline,
    Runner,
    apply_process_settings,
    autocast,
    build_model,
    is_quiet,
    make_batch,
    timed,
)
from configuration_dems import DEMS_PRESETS  # noqa: E402
from dems_training import run_command  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--presets", nargs="+", default=["tiny-32"], choices=sorted(DEMS_PRESETS), help="presets to run, in order"
    )
    parser.add_argument("--num_labels", type=int, default=10, help="classes of the classifier head (default 10)")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu, cuda, cuda:1")
    parser.add_argument(
        "--dtype",
        default="fp32",
        choices=sorted(DTYPES),
        help="fp32, or bf16/fp16 autocast (weights and optimizer stay fp32, as in mixed-precision training);\n"
        "the roofline matmul uses the same dtype",
    )
    parser.add_argument(
        "--attn_implementation", nargs="+", default=["sdpa"], choices=["sdpa", "eager"], help="one or several"
    )
    parser.add_argument(
        "--override",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="change config fields of every preset, VALUE as JSON, e.g. num_hidden_layers=2 mlp_ratios=[2,2,2]",
    )
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--compile_mode", default=None, help="torch.compile mode, e.g. max-autotune (default: none)")
    parser.add_argument("--gradient_checkpointing", action="store_true", help="model.activation_checkpointing_enable()")
    parser.add_argument("--warmup", type=int, default=3, help="untimed iterations before timing (default 3)")
    parser.add_argument("--iters", type=int, default=10, help="timed iterations; the median is reported (default 10)")
    parser.add_argument(
        "--matmul_size", type=int, default=4096, help="side of the square roofline matmul (default 4096)"
    )
    parser.add_argument(
        "--max_foreign_load",
        type=float,
        default=None,
        help="on a shared machine: discard and repeat iterations (and matmul samples) during which other processes\n"
        "used more than this fraction of the CPUs (e.g. 0.05); see ForeignLoad",
    )
    parser.add_argument("--max_attempts", type=int, default=5, help="with --max_foreign_load: at most this x iters")
    parser.add_argument(
        "--clock",
        default="wall",
        choices=["wall", "cpu"],
        help="wall time (default), or the process's CPU time: with --threads 1 on a shared CPU it leaves out the\n"
        "time slices the scheduler gave to other jobs (requires --threads 1 and a CPU device)",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU); default: torch's")
    parser.add_argument(
        "--keep_freed_memory",
        action="store_true",
        help="glibc: keep freed blocks in the process instead of returning them to the kernel, as train.py's\n"
        "--keep_freed_memory does (dems_training/cpu_memory.py)",
    )
    parser.add_argument("--skip_inference", action="store_true", help="time the training step only")
    parser.add_argument("--skip_memory", action="store_true", help="skip the memory measurement")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="write the results here (default: print only)")
    return parser.parse_args(argv)


def count_flops(preset: str, settings: BenchmarkSettings, batch) -> tuple[int, int]:
    """(training-step FLOPs, inference-forward FLOPs) of the model itself; see the module docstring."""
    torch.manual_seed(settings.seed)
    model = build_model(preset, settings, "eager")
    return model_flops(model, batch, settings.torch_device, settings.torch_dtype)


def model_flops(model: torch.nn.Module, batch, device: torch.device, dtype: torch.dtype) -> tuple[int, int]:
    """(training-step FLOPs, inference-forward FLOPs) of `model` on `batch`, counted as `count_flops` counts them;
    `model` should compute its attention with explicit products (see the module docstring)."""
    pixel_values, labels = batch
    model.train()
    with FlopCounterMode(display=False) as counter, autocast(device, dtype):
        model(pixel_values, labels=labels).loss.backward()
    train_flops = counter.get_total_flops()
    model.eval()
    with FlopCounterMode(display=False) as counter, torch.inference_mode(), autocast(device, dtype):
        model(pixel_values)
    return train_flops, counter.get_total_flops()


def bench_one(
    preset: str,
    attn_implementation: str,
    settings: BenchmarkSettings,
    batch,
    flops,
    roofline: Roofline,
    runner: Runner | None = None,
) -> dict:
    """The timings, FLOP/s and memory of one variant: the preset's DEMS model, or what `runner` holds."""
    if runner is None:
        runner = Runner(preset, attn_implementation, settings, batch)
    roofline.clear()
    result = {
        "preset": preset,
        "attn_implementation": attn_implementation,
        "compile": settings.compile,
        "compile_mode": settings.compile_mode,
        "config_overrides": list(settings.config_overrides),
        "gradient_checkpointing": settings.gradient_checkpointing,
        "dtype": settings.dtype,
        "batch_size": settings.batch_size,
        "device": str(runner.device),
    }
    for name, fn, step_flops in (
        ("train", runner.train_step, flops[0]),
        ("inference", runner.infer, flops[1]),
    ):
        if name == "inference" and settings.skip_inference:
            continue
        for _ in range(settings.warmup):
            fn()
        seconds, loads, discarded, discarded_loads = [], [], [], []
        # With --max_foreign_load, an iteration that a neighbour disturbed is discarded and run again, up to
        # --max_attempts times iters in all; without it every iteration counts.
        attempts = settings.max_attempts if settings.max_foreign_load is not None else 1
        for _ in range(settings.iters * attempts):
            elapsed, load = timed(fn, runner.device, settings.clock)
            quiet = is_quiet(load, settings.max_foreign_load)
            (seconds if quiet else discarded).append(elapsed)
            (loads if quiet else discarded_loads).append(load)
            roofline.sample()
            if len(seconds) == settings.iters:
                break
        if not seconds:
            print(f"{preset} {attn_implementation} {name}: no quiet iteration; reporting the disturbed ones")
            seconds, loads, discarded, discarded_loads = discarded, discarded_loads, [], []
        median = statistics.median(seconds)
        result[name] = {
            "median_s": median,
            "min_s": min(seconds),
            "max_s": max(seconds),
            "times_s": seconds,
            "foreign_load": loads,
            "discarded_times_s": discarded,
            "discarded_foreign_load": discarded_loads,
            "images_per_s": settings.batch_size / median,
            "flops": step_flops,
            "flops_per_s": step_flops / median,
        }
    result["matmul_flops_per_s"] = roofline.flops_per_second
    result["matmul_samples"] = len(roofline.samples) or len(roofline.all_samples)
    for name in ("train", "inference"):
        if name in result:
            result[name]["roofline_ratio"] = result[name]["flops_per_s"] / roofline.flops_per_second
    if not settings.skip_memory:
        memory = runner.measure_memory()
        memory["saved_per_image"] = memory["saved"] / settings.batch_size
        memory["peak_above_resident_per_image"] = memory["peak_above_resident"] / settings.batch_size
        result["memory_bytes"] = memory
    return result


def environment(settings: BenchmarkSettings) -> dict:
    device = settings.torch_device
    info = {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "matmul_size": settings.matmul_size,
        "clock": settings.clock,
        "keep_freed_memory": settings.keep_freed_memory,
        # Settings that change CPU speed without changing the code: allocator, OpenMP.
        "env": {
            k: v
            for k, v in os.environ.items()
            if k.startswith(("MALLOC_", "GLIBC_TUNABLES", "OMP_", "KMP_", "GOMP_", "LD_PRELOAD", "THP_"))
        },
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    return info


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


def format_table(results: list[dict]) -> str:
    header = (
        f"{'preset':<10} {'attn':<5} {'comp':<4} {'gc':<3} {'dtype':<5} {'batch':>5} | "
        f"{'train ms':>9} {'img/s':>7} {'GFLOP':>7} {'GFLOP/s':>8} {'ratio':>5} | "
        f"{'infer ms':>9} {'img/s':>7} {'GFLOP/s':>8} {'ratio':>5} | {'peak MB':>8} {'saved KB/img':>12} {'load':>5}"
    )
    lines = [header, "-" * len(header)]
    for r in results:
        train, inference, memory = r["train"], r.get("inference"), r.get("memory_bytes")
        line = (
            f"{r['preset']:<10} {r['attn_implementation']:<5} {'yes' if r['compile'] else 'no':<4} "
            f"{'yes' if r['gradient_checkpointing'] else 'no':<3} {r['dtype']:<5} {r['batch_size']:>5} | "
            f"{train['median_s'] * 1e3:>9.1f} {train['images_per_s']:>7.1f} {train['flops'] / 1e9:>7.1f} "
            f"{train['flops_per_s'] / 1e9:>8.1f} {train['roofline_ratio']:>5.3f} | "
        )
        if inference:
            line += (
                f"{inference['median_s'] * 1e3:>9.1f} {inference['images_per_s']:>7.1f} "
                f"{inference['flops_per_s'] / 1e9:>8.1f} {inference['roofline_ratio']:>5.3f} | "
            )
        else:
            line += f"{'-':>9} {'-':>7} {'-':>8} {'-':>5} | "
        if memory:
            line += f"{memory['peak'] / 2**20:>8.1f} {memory['saved_per_image'] / 2**10:>12.1f}"
        else:
            line += f"{'-':>8} {'-':>12}"
        loads = [v for v in train["foreign_load"] if v is not None]
        line += f" {statistics.median(loads):>5.2f}" if loads else f" {'-':>5}"
        lines.append(line)
    matmul = ", ".join(f"{r['matmul_flops_per_s'] / 1e9:.1f}" for r in results)
    lines.append(f"roofline matmul GFLOP/s (median per row): {matmul}")
    lines.append(
        "ratio: achieved / roofline FLOP/s; load: median CPU share other processes took during the train steps"
    )
    return "\n".join(lines)


def run(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    settings = BenchmarkSettings.from_arguments(args)
    apply_process_settings(settings)
    device = settings.torch_device
    if device.type == "cuda":
        # What one would train with: TF32 off keeps fp32 products fp32, so the fp32 roofline and the model agree.
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    roofline = Roofline(
        settings.matmul_size, device, settings.torch_dtype, settings.max_foreign_load, settings.clock
    )
    results = []
    for preset in args.presets:
        batch = make_batch(preset, settings)
        flops = count_flops(preset, settings, batch)
        for attn_implementation in args.attn_implementation:
            results.append(bench_one(preset, attn_implementation, settings, batch, flops, roofline))
            print(format_table(results[-1:]).splitlines()[2], flush=True)
    report = {"environment": environment(settings), "results": results}
    print()
    print(format_table(results))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")
    return report


def main(argv: list[str] | None = None) -> int:
    """The command: `run`, with a flag that cannot work reported in one line and exit code 2."""
    return run_command(run, "throughput.py", argv)


if __name__ == "__main__":
    sys.exit(main())

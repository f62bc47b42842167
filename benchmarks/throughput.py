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
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode


# The project root, so that the script runs from a plain checkout (`python benchmarks/throughput.py`).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from configuration_dems import DEMS_PRESETS, DemsConfig  # noqa: E402
from dems_training.cpu_memory import keep_freed_memory  # noqa: E402
from modeling_dems.modeling_dems import DemsForImageClassification  # noqa: E402


DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


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


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast(device: torch.device, dtype: torch.dtype):
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


class ForeignLoad:
    """How busy other processes kept the CPUs while a measurement ran: the CPU time the whole machine spent busy
    (/proc/stat, hypervisor steal included) minus this process's own (all its threads), as a fraction of the
    machine's capacity over the measurement's wall time. 0 is an undisturbed measurement; on a shared 2-core machine
    a neighbour's test run shows up as 0.3-0.5. None where /proc/stat is missing (not Linux)."""

    def __init__(self):
        self.available = Path("/proc/stat").exists()
        self.cpus = os.cpu_count() or 1
        self.tick = os.sysconf("SC_CLK_TCK") if self.available else 100

    def snapshot(self) -> tuple[float, float, float]:
        busy = 0.0
        if self.available:
            # cpu  user nice system idle iowait irq softirq steal guest guest_nice (guest is inside user)
            fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
            busy = (sum(fields) - fields[3] - fields[4]) / self.tick
        return time.perf_counter(), busy, time.process_time()

    def fraction(self, start: tuple[float, float, float], end: tuple[float, float, float]) -> float | None:
        if not self.available:
            return None
        wall = end[0] - start[0]
        foreign = (end[1] - start[1]) - (end[2] - start[2])
        # Tick granularity (10 ms) can make short measurements read slightly negative.
        return max(0.0, foreign) / (wall * self.cpus) if wall > 0 else 0.0


FOREIGN_LOAD = ForeignLoad()


# "wall" (default) or "cpu": this process's CPU time (time.process_time). With --threads 1 on a CPU shared with
# other jobs, CPU time leaves out the slices in which the scheduler ran someone else; with more threads it would
# count OpenMP's spin-waiting as work, so main() allows it with one thread only.
CLOCK = "wall"


def timed(fn: Callable[[], object], device: torch.device) -> tuple[float, float | None]:
    """(seconds of `fn` on CLOCK, foreign load while it ran)."""
    synchronize(device)
    start = FOREIGN_LOAD.snapshot()
    fn()
    synchronize(device)
    end = FOREIGN_LOAD.snapshot()
    seconds = end[2] - start[2] if CLOCK == "cpu" else end[0] - start[0]
    return seconds, FOREIGN_LOAD.fraction(start, end)


def is_quiet(load: float | None, max_load: float | None) -> bool:
    return max_load is None or load is None or load <= max_load


class Roofline:
    """FLOP/s of an `n x n @ n x n` product in the benchmark's dtype. Sampled between the model's timed iterations
    so that a neighbour's load slows both alike; the ratio uses the median of the samples (those taken under at most
    `max_load` foreign load when that is set)."""

    def __init__(self, n: int, device: torch.device, dtype: torch.dtype, max_load: float | None = None):
        generator = torch.Generator(device=device).manual_seed(0)
        self.a = torch.randn(n, n, device=device, dtype=dtype, generator=generator)
        self.b = torch.randn(n, n, device=device, dtype=dtype, generator=generator)
        self.out = torch.empty(n, n, device=device, dtype=dtype)
        self.flops = 2 * n**3
        self.device = device
        self.max_load = max_load
        self.samples: list[float] = []
        self.all_samples: list[float] = []
        for _ in range(2):  # warm-up: first-touch of the pages, library initialisation, GPU clocks
            self.sample()
        self.clear()

    def clear(self) -> None:
        self.samples.clear()
        self.all_samples.clear()

    def sample(self) -> None:
        seconds, load = timed(lambda: torch.mm(self.a, self.b, out=self.out), self.device)
        self.all_samples.append(self.flops / seconds)
        if is_quiet(load, self.max_load):
            self.samples.append(self.flops / seconds)

    @property
    def flops_per_second(self) -> float:
        # No quiet sample at all: fall back to every sample rather than fail (the report shows the loads).
        return statistics.median(self.samples or self.all_samples)


def make_config(preset: str, args: argparse.Namespace) -> DemsConfig:
    overrides = {}
    for item in args.override:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--override {item!r}: expected KEY=VALUE")
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value  # a bare string, e.g. hidden_act=gelu
    return DemsConfig.from_preset(preset, num_labels=args.num_labels, **overrides)


def build_model(preset: str, args: argparse.Namespace, attn_implementation: str, device: torch.device):
    # A fresh config per model: _from_config writes the attention implementation into the config it is given.
    config = make_config(preset, args)
    return DemsForImageClassification._from_config(config, attn_implementation=attn_implementation).to(device)


def make_batch(preset: str, args: argparse.Namespace, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    config = make_config(preset, args)
    generator = torch.Generator().manual_seed(args.seed)
    size = (args.batch_size, config.num_channels, config.image_size, config.image_size)
    pixel_values = torch.randn(size, generator=generator).to(device)
    labels = torch.randint(0, args.num_labels, (args.batch_size,), generator=generator).to(device)
    return pixel_values, labels


def count_flops(preset: str, args: argparse.Namespace, device: torch.device, batch) -> tuple[int, int]:
    """(training-step FLOPs, inference-forward FLOPs) of the model itself; see the module docstring."""
    torch.manual_seed(args.seed)
    model = build_model(preset, args, "eager", device)
    pixel_values, labels = batch
    dtype = DTYPES[args.dtype]
    model.train()
    with FlopCounterMode(display=False) as counter, autocast(device, dtype):
        model(pixel_values, labels=labels).loss.backward()
    train_flops = counter.get_total_flops()
    model.eval()
    with FlopCounterMode(display=False) as counter, torch.inference_mode(), autocast(device, dtype):
        model(pixel_values)
    return train_flops, counter.get_total_flops()


def tensor_bytes(tensors) -> int:
    """Bytes of the distinct storages behind `tensors`."""
    storages = {}
    for tensor in tensors:
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
    return sum(storages.values())


class Runner:
    """One model variant on one batch: the timed training step and inference forward, and their memory."""

    FORWARD_MARKER = "dems_benchmark_forward"

    def __init__(self, preset: str, attn_implementation: str, args: argparse.Namespace, device: torch.device, batch):
        torch.manual_seed(args.seed)
        self.model = build_model(preset, args, attn_implementation, device)
        if args.gradient_checkpointing:
            self.model.activation_checkpointing_enable()
        # Fused AdamW (one kernel for all parameters, on CPU as on CUDA) is what transformers' Trainer uses by default
        # on recent torch; its cost is part of the step.
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-4, fused=True)
        self.forward = torch.compile(self.model, mode=args.compile_mode) if args.compile else self.model
        self.pixel_values, self.labels = batch
        self.device = device
        self.dtype = DTYPES[args.dtype]

    def train_step(self, after_forward: Callable[[], None] | None = None) -> None:
        self.model.train()
        with torch.profiler.record_function(self.FORWARD_MARKER), autocast(self.device, self.dtype):
            loss = self.forward(self.pixel_values, labels=self.labels).loss
        if after_forward is not None:
            after_forward()
        loss.backward()
        self.optimizer.step()
        # Gradients are freed here, not at the start of the next step, so that between steps only the weights and
        # the optimizer state are held: the state from which `measure_memory` starts.
        self.optimizer.zero_grad(set_to_none=True)

    def infer(self) -> None:
        self.model.eval()
        with torch.inference_mode(), autocast(self.device, self.dtype):
            self.forward(self.pixel_values)

    def resident_bytes(self) -> int:
        """Weights, buffers and optimizer state: what is held between steps."""
        tensors = list(self.model.parameters()) + list(self.model.buffers())
        tensors += [v for state in self.optimizer.state.values() for v in state.values() if torch.is_tensor(v)]
        return tensor_bytes(tensors)

    def measure_memory(self) -> dict[str, int]:
        """Bytes of one training step: `resident` (weights, buffers, optimizer state, held between steps), `saved`
        (allocated by the forward and still held when the backward starts: the activations kept for the backward),
        `peak_above_resident` (the most allocated at once during the step beyond `resident`: saved activations,
        gradients, temporaries) and `peak` (their sum)."""
        resident = self.resident_bytes()
        if self.device.type == "cuda":
            synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            start = torch.cuda.memory_allocated(self.device)
            after_forward = {}
            self.train_step(lambda: after_forward.setdefault("bytes", torch.cuda.memory_allocated(self.device)))
            synchronize(self.device)
            above, saved = torch.cuda.max_memory_allocated(self.device) - start, after_forward["bytes"] - start
        else:
            above, saved = self._profiled_cpu_step()
        return {"resident": resident, "saved": saved, "peak_above_resident": above, "peak": resident + above}

    def _profiled_cpu_step(self) -> tuple[int, int]:
        """Replay the allocator's events of one step, recorded by the profiler, in time order: (peak of the running
        total, running total when the forward ends), both relative to the step's start."""
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            self.train_step()
        events = prof.profiler.kineto_results.events()
        forward_end = max(e.end_ns() for e in events if e.name() == self.FORWARD_MARKER)
        allocations = sorted((e.start_ns(), e.nbytes()) for e in events if e.name() == "[memory]")
        running = peak = saved = 0
        for start, nbytes in allocations:
            running += nbytes
            peak = max(peak, running)
            if start <= forward_end:
                saved = running
        return peak, saved


def bench_one(preset: str, attn_implementation: str, args, device, batch, flops, roofline: Roofline) -> dict:
    runner = Runner(preset, attn_implementation, args, device, batch)
    roofline.clear()
    result = {
        "preset": preset,
        "attn_implementation": attn_implementation,
        "compile": args.compile,
        "compile_mode": args.compile_mode,
        "config_overrides": args.override,
        "gradient_checkpointing": args.gradient_checkpointing,
        "dtype": args.dtype,
        "batch_size": args.batch_size,
        "device": str(device),
    }
    for name, fn, step_flops in (
        ("train", runner.train_step, flops[0]),
        ("inference", runner.infer, flops[1]),
    ):
        if name == "inference" and args.skip_inference:
            continue
        for _ in range(args.warmup):
            fn()
        seconds, loads, discarded, discarded_loads = [], [], [], []
        # With --max_foreign_load, an iteration that a neighbour disturbed is discarded and run again, up to
        # --max_attempts times iters in all; without it every iteration counts.
        for _ in range(args.iters * (args.max_attempts if args.max_foreign_load is not None else 1)):
            elapsed, load = timed(fn, device)
            quiet = is_quiet(load, args.max_foreign_load)
            (seconds if quiet else discarded).append(elapsed)
            (loads if quiet else discarded_loads).append(load)
            roofline.sample()
            if len(seconds) == args.iters:
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
            "images_per_s": args.batch_size / median,
            "flops": step_flops,
            "flops_per_s": step_flops / median,
        }
    result["matmul_flops_per_s"] = roofline.flops_per_second
    result["matmul_samples"] = len(roofline.samples) or len(roofline.all_samples)
    for name in ("train", "inference"):
        if name in result:
            result[name]["roofline_ratio"] = result[name]["flops_per_s"] / roofline.flops_per_second
    if not args.skip_memory:
        memory = runner.measure_memory()
        memory["saved_per_image"] = memory["saved"] / args.batch_size
        memory["peak_above_resident_per_image"] = memory["peak_above_resident"] / args.batch_size
        result["memory_bytes"] = memory
    return result


def environment(device: torch.device, args: argparse.Namespace) -> dict:
    info = {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "matmul_size": args.matmul_size,
        "clock": args.clock,
        "keep_freed_memory": args.keep_freed_memory,
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


def apply_process_settings(args: argparse.Namespace) -> None:
    """The process-wide settings both benchmark scripts take: `--threads` and `--keep_freed_memory`."""
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.keep_freed_memory and not keep_freed_memory():
        raise SystemExit("--keep_freed_memory: this C library is not glibc; the setting does not exist here")


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    apply_process_settings(args)
    global CLOCK
    if args.clock == "cpu" and (args.threads != 1 or not args.device.startswith("cpu")):
        raise SystemExit("--clock cpu measures one CPU thread: pass --threads 1 and --device cpu")
    CLOCK = args.clock
    device = torch.device(args.device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    if device.type == "cuda":
        # What one would train with: TF32 off keeps fp32 products fp32, so the fp32 roofline and the model agree.
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    roofline = Roofline(args.matmul_size, device, DTYPES[args.dtype], args.max_foreign_load)
    results = []
    for preset in args.presets:
        batch = make_batch(preset, args, device)
        flops = count_flops(preset, args, device, batch)
        for attn_implementation in args.attn_implementation:
            results.append(bench_one(preset, attn_implementation, args, device, batch, flops, roofline))
            print(format_table(results[-1:]).splitlines()[2], flush=True)
    report = {"environment": environment(device, args), "results": results}
    print()
    print(format_table(results))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")
    return report


if __name__ == "__main__":
    main()

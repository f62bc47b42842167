"""What the benchmark scripts share: their settings, the model, batch and training step they measure (`Runner`), the
clocks and the foreign-load reading they time with, and the roofline matmul they compare against. `throughput.py` and
`op_times.py` are command lines over it; a flag that cannot work raises `UserInputError`, which they report as every
command of the project does (`dems_training.run_command`: one line, exit code 2)."""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path

import torch
from huggingface_hub.errors import StrictDataclassError

from configuration_dems import DemsConfig
from dems_training import UserInputError
from dems_training.config_overrides import parse_config_overrides
from dems_training.cpu_memory import keep_freed_memory
from modeling_dems.modeling_dems import DemsForImageClassification


DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}

# "wall": wall time. "cpu": this process's CPU time (time.process_time). With one thread on a CPU shared with other
# jobs, CPU time leaves out the slices in which the scheduler ran someone else; with more threads it would count
# OpenMP's spin-waiting as work, so the settings allow it with one thread only.
CLOCKS = ("wall", "cpu")


@dataclass(frozen=True)
class BenchmarkSettings:
    """The model, batch, step and process a benchmark measures, and how it times them. Each field is the flag of its
    name (`config_overrides` is `--override`); the defaults are a CPU run in fp32, uncompiled, without gradient
    checkpointing, which is all `op_times.py` measures."""

    num_labels: int = 10
    batch_size: int = 32
    config_overrides: tuple[str, ...] = ()  # KEY=VALUE words as given, applied to every preset
    device: str = "cpu"
    dtype: str = "fp32"
    compile: bool = False
    compile_mode: str | None = None
    # torch.compile's backend; no flag of its own: gpu_check.py's dry run uses "eager" (dynamo's tracing, no code
    # generation), which takes seconds where inductor spends minutes building CPU kernels on a small machine.
    compile_backend: str = "inductor"
    gradient_checkpointing: bool = False
    seed: int = 0
    threads: int | None = None
    keep_freed_memory: bool = False
    clock: str = "wall"
    warmup: int = 3
    iters: int = 10
    matmul_size: int = 4096
    max_foreign_load: float | None = None
    max_attempts: int = 5
    skip_inference: bool = False
    skip_memory: bool = False

    def __post_init__(self):
        for flag, value, lowest in (
            ("--num_labels", self.num_labels, 1),
            ("--batch_size", self.batch_size, 1),
            ("--iters", self.iters, 1),
            ("--warmup", self.warmup, 0),
            ("--matmul_size", self.matmul_size, 1),
            ("--max_attempts", self.max_attempts, 1),
        ):
            if value < lowest:
                raise UserInputError(f"{flag}={value} must be at least {lowest}.")
        if self.threads is not None and self.threads < 1:
            raise UserInputError(f"--threads={self.threads} must be at least 1.")
        if self.dtype not in DTYPES:
            raise UserInputError(f"--dtype={self.dtype!r} must be one of {sorted(DTYPES)}.")
        if self.clock not in CLOCKS:
            raise UserInputError(f"--clock={self.clock!r} must be one of {CLOCKS}.")
        if self.clock == "cpu" and (self.threads != 1 or not self.device.startswith("cpu")):
            raise UserInputError("--clock cpu measures one CPU thread: pass --threads 1 and --device cpu")
        try:
            device = torch.device(self.device)
        except RuntimeError:
            raise UserInputError(f"--device={self.device!r} is not a torch device, e.g. cpu, cuda, cuda:1.") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise UserInputError(f"--device={self.device!r}: torch sees no CUDA device here.")
        parse_config_overrides(self.config_overrides, flag="--override")  # a bad one is refused before any build

    @classmethod
    def from_arguments(cls, args: argparse.Namespace, **fixed) -> BenchmarkSettings:
        """The settings of a benchmark's parsed flags: every field whose flag the script has, `fixed` for the rest."""
        given = {f.name: getattr(args, f.name) for f in fields(cls) if hasattr(args, f.name)}
        given["config_overrides"] = tuple(args.override)
        return cls(**{**given, **fixed})

    @property
    def config_fields(self) -> dict:
        return parse_config_overrides(self.config_overrides, flag="--override")

    @property
    def torch_device(self) -> torch.device:
        device = torch.device(self.device)
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        return device

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]


def apply_process_settings(settings: BenchmarkSettings) -> None:
    """The process-wide settings: `--threads` and `--keep_freed_memory`."""
    if settings.threads:
        torch.set_num_threads(settings.threads)
    if settings.keep_freed_memory and not keep_freed_memory():
        raise UserInputError("--keep_freed_memory: this C library is not glibc; the setting does not exist here")


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


def timed(fn: Callable[[], object], device: torch.device, clock: str = "wall") -> tuple[float, float | None]:
    """(seconds of `fn` on `clock`, one of CLOCKS; foreign load while it ran)."""
    synchronize(device)
    start = FOREIGN_LOAD.snapshot()
    fn()
    synchronize(device)
    end = FOREIGN_LOAD.snapshot()
    seconds = end[2] - start[2] if clock == "cpu" else end[0] - start[0]
    return seconds, FOREIGN_LOAD.fraction(start, end)


def is_quiet(load: float | None, max_load: float | None) -> bool:
    return max_load is None or load is None or load <= max_load


class Roofline:
    """FLOP/s of an `n x n @ n x n` product in the benchmark's dtype, timed on `clock`. Sampled between the model's
    timed iterations so that a neighbour's load slows both alike; the ratio uses the median of the samples (those
    taken under at most `max_load` foreign load when that is set)."""

    def __init__(
        self, n: int, device: torch.device, dtype: torch.dtype, max_load: float | None = None, clock: str = "wall"
    ):
        generator = torch.Generator(device=device).manual_seed(0)
        self.a = torch.randn(n, n, device=device, dtype=dtype, generator=generator)
        self.b = torch.randn(n, n, device=device, dtype=dtype, generator=generator)
        self.out = torch.empty(n, n, device=device, dtype=dtype)
        self.flops = 2 * n**3
        self.device = device
        self.max_load = max_load
        self.clock = clock
        self.samples: list[float] = []
        self.all_samples: list[float] = []
        for _ in range(2):  # warm-up: first-touch of the pages, library initialisation, GPU clocks
            self.sample()
        self.clear()

    def clear(self) -> None:
        self.samples.clear()
        self.all_samples.clear()

    def sample(self) -> None:
        seconds, load = timed(lambda: torch.mm(self.a, self.b, out=self.out), self.device, self.clock)
        self.all_samples.append(self.flops / seconds)
        if is_quiet(load, self.max_load):
            self.samples.append(self.flops / seconds)

    @property
    def flops_per_second(self) -> float:
        # No quiet sample at all: fall back to every sample rather than fail (the report shows the loads).
        return statistics.median(self.samples or self.all_samples)


def make_config(preset: str, settings: BenchmarkSettings) -> DemsConfig:
    overrides = settings.config_fields
    try:
        return DemsConfig.from_preset(preset, num_labels=settings.num_labels, **overrides)
    except (ValueError, TypeError, StrictDataclassError) as error:  # a value the config refuses, or of a wrong type
        raise UserInputError(f"--override {list(settings.config_overrides)} on {preset}: {error}") from None


def build_model(preset: str, settings: BenchmarkSettings, attn_implementation: str) -> DemsForImageClassification:
    # A fresh config per model: _from_config writes the attention implementation into the config it is given.
    config = make_config(preset, settings)
    model = DemsForImageClassification._from_config(config, attn_implementation=attn_implementation)
    return model.to(settings.torch_device)


def make_batch(preset: str, settings: BenchmarkSettings) -> tuple[torch.Tensor, torch.Tensor]:
    """Random images of the preset's size and random labels, the same for every run with the same seed."""
    config = make_config(preset, settings)
    generator = torch.Generator().manual_seed(settings.seed)
    size = (settings.batch_size, config.num_channels, config.image_size, config.image_size)
    pixel_values = torch.randn(size, generator=generator).to(settings.torch_device)
    labels = torch.randint(0, settings.num_labels, (settings.batch_size,), generator=generator)
    return pixel_values, labels.to(settings.torch_device)


def tensor_bytes(tensors) -> int:
    """Bytes of the distinct storages behind `tensors`."""
    storages = {}
    for tensor in tensors:
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
    return sum(storages.values())


class Runner:
    """One model variant on one batch (by default `make_batch`'s): the training step and inference forward to be
    timed, and their memory. `model` replaces the preset's DEMS model with another classifier called the same way
    (`model(pixel_values, labels=...)` returning `.loss`): gpu_check.py times its baselines with it."""

    FORWARD_MARKER = "dems_benchmark_forward"

    def __init__(
        self, preset: str, attn_implementation: str, settings: BenchmarkSettings, batch=None, model=None
    ):
        torch.manual_seed(settings.seed)
        if model is None:
            self.model = build_model(preset, settings, attn_implementation)
        else:
            self.model = model.to(settings.torch_device)
        if settings.gradient_checkpointing:
            self.model.activation_checkpointing_enable()
        # Fused AdamW (one kernel for all parameters, on CPU as on CUDA) is what transformers' Trainer uses by default
        # on recent torch; its cost is part of the step.
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-4, fused=True)
        self.forward = (
            torch.compile(self.model, mode=settings.compile_mode, backend=settings.compile_backend)
            if settings.compile
            else self.model
        )
        self.pixel_values, self.labels = make_batch(preset, settings) if batch is None else batch
        self.device = settings.torch_device
        self.dtype = settings.torch_dtype

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

#!/usr/bin/env python
"""GPU check: what only a GPU can show about this project, measured by one command in about 7 minutes.

Stages, in this order, each with its own time box (`--budget STAGE=SECONDS`). Each writes STAGE.json and STAGE.md
into --output_dir as it goes (summary.md gathers the .md files), so a run cut short keeps what finished; a stage
that fails is recorded and the next one runs.

  machine         GPU name, memory and datasheet peak FLOP/s; CUDA, NCCL, driver, torch, transformers, ... versions
  throughput      training step and inference of tiny-32 and small-32 at batch 256 and 1,024 (where memory allows)
                  in fp32, bf16 autocast and bf16 with torch.compile, for three models: DEMS, transformers' ViT matched
                  in width and depth (train.py --architecture vit), and the test suite's re-statement of the
                  reference forward pass (tests/model/reference_dems.py). Images/s and model FLOPs utilisation (MFU:
                  FLOPs counted as throughput.py counts them, over the GPU's datasheet peak for the dtype), memory.
                  The most wanted cases run first (see `throughput_cases`); those the box cannot fit are listed
                  as skipped
  precision       eager vs SDPA logits in bf16 (max difference, each against fp32 too); one step's loss in fp32 and
                  bf16
  launchers       train.py --bf16 for a few steps under `torchrun --nproc_per_node 1` (NCCL) and under
                  `accelerate launch`: it finishes, the losses are finite, the checkpoint loads and predicts
  input_pipeline  the 256 px train pipeline with train.py's default workers, with and without --augment_on_device,
                  against the GPU's tiny-256 bf16 training rate: starved or not
  fashion_mnist   DEMS-Ti (tiny-32 and the reference pretrain recipe, fewer epochs) on Fashion-MNIST read from its IDX
                  files (--data_dir), trained by train.py for a fixed wall-clock budget: the epochs are set from the
                  measured step rate so the whole schedule fits, and a callback stops the run at the deadline if
                  it would not. Images/s and top-1 on the 10,000 test images, next to the paper's 95.59%

    python benchmarks/gpu_check.py --data_dir /usr/share/datasets/fashion-mnist     # results in benchmarks/results/gpu
    python benchmarks/gpu_check.py --stages launchers --budget launchers=120          # one stage again
    python benchmarks/gpu_check.py --dry_run --data_dir tiny-release/ --output_dir /tmp/gpu-dry-run

--dry_run runs every stage on the CPU with a tiny model and a few steps (about a minute or two): the figures mean
nothing, the code paths are the GPU run's, and the test suite runs it. docs/gpu_check.md says how to run the check in
a short GPU slot and what to bring.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import gc
import importlib.metadata
import json
import math
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F


REPO = Path(__file__).resolve().parent.parent
if __name__ == "__main__":
    # The check needs no network, and a GPU machine may reach none: a Hub lookup would wait for its time-out. Set
    # before transformers and datasets are imported, which read these once.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
if not __package__:  # run as `python benchmarks/gpu_check.py`: the repository root holds `benchmarks` and the model
    sys.path.insert(0, str(REPO))

from benchmarks.harness import (  # noqa: E402
    BenchmarkSettings,
    Roofline,
    Runner,
    autocast,
    build_model,
    make_batch,
    make_config,
    timed,
)
from benchmarks.throughput import bench_one, cpu_model, model_flops  # noqa: E402
from dems_training import UserInputError, run_command  # noqa: E402


STAGES = ("machine", "throughput", "precision", "launchers", "input_pipeline", "fashion_mnist")
ARCHITECTURES = ("dems", "vit", "reference")
MODES = {"fp32": ("fp32", False), "bf16": ("bf16", False), "bf16+compile": ("bf16", True)}  # mode: (dtype, compiled)
TRAIN_SCRIPT = REPO / "train.py"
DEFAULT_OUTPUT_DIR = REPO / "benchmarks" / "results" / "gpu"
DEFAULT_DATA_DIR = "/usr/share/datasets/fashion-mnist"  # where `apt-get install dataset-fashion-mnist` puts it
PAPER_FASHION_MNIST_TOP1 = 95.59  # DEMS-Ti, 800 epochs (Tang, Liu and Shen 2025)
PAPER_EPOCHS = 800
FASHION_MNIST_TEST_IMAGES = 10_000

# Dense datasheet peaks in TFLOP/s (NVIDIA's figures without sparsity): bf16 on the tensor cores, fp32 without TF32,
# because the fp32 runs here keep TF32 off (as throughput.py does, and torch does for matrix products by default). The
# first name found in the device name wins, so the more specific ones come first ("NVIDIA H100 80GB HBM3" is the SXM
# part).
GPU_PEAK_TFLOPS = (
    ("H200 NVL", {"bf16": 835.0, "fp32": 60.0}),
    ("H200", {"bf16": 989.4, "fp32": 66.9}),
    ("H100 NVL", {"bf16": 835.0, "fp32": 60.0}),
    ("H100 PCIe", {"bf16": 756.0, "fp32": 51.2}),
    ("H100", {"bf16": 989.4, "fp32": 66.9}),
    ("A100", {"bf16": 312.0, "fp32": 19.5}),
)

# The dry run's model: one 16x16 region, two blocks with a merge before each (tests/tiny_configs.py's "tiny" shape).
TINY_OVERRIDES = (
    "image_size=16", "patch_size=2", "hidden_size=32", "num_hidden_layers=2", "num_attention_heads=2",
    "merge_layers=[1,2]", "num_merged_tokens=[8,4]",
)  # fmt: skip


@dataclass(frozen=True)
class Profile:
    """What the stages measure: the check itself on a GPU, or the dry run's tiny stand-ins on the CPU."""

    device: str
    presets: tuple[str, ...]
    batch_sizes: tuple[int, ...]
    config_overrides: tuple[str, ...]  # KEY=VALUE words applied to every preset (the benchmarks' --override)
    compile_backend: str
    warmup: int
    iters: int
    matmul_size: int
    # First guesses of a throughput case's seconds, before one of its kind has run (see `case_fits`).
    case_guess_s: dict[str, float]
    precision_batch: int
    launcher_steps: int
    launcher_args: tuple[str, ...]  # model and data flags of the launched train.py runs
    pipeline_batch: int
    pipeline_images: int  # distinct synthetic 256 px images, cycled
    loader_batches_per_worker: int
    fashion_mnist_batch: int  # global batch (the recipe's 256)
    fashion_mnist_args: tuple[str, ...]
    fashion_mnist_max_train: int | None
    fashion_mnist_max_eval: int | None
    fashion_mnist_max_epochs: int | None
    fashion_mnist_reserve_s: float  # kept from the box for the final evaluation and the run's outputs
    budgets_s: dict[str, float] = field(default_factory=dict)


GPU_PROFILE = Profile(
    device="cuda",
    presets=("tiny-32", "small-32"),
    batch_sizes=(256, 1024),
    config_overrides=(),
    compile_backend="inductor",
    warmup=2,
    iters=5,
    matmul_size=8192,
    case_guess_s={"eager": 10.0, "compiled": 60.0},
    precision_batch=64,
    launcher_steps=10,
    # The reference's tiny-32 and its pretrain learning rate at batch 256 (digits' recipe is for its 4-block model).
    launcher_args=("--model_preset", "tiny-32", "--global_batch_size", "256", "--learning_rate", "5e-4"),
    pipeline_batch=256,
    pipeline_images=64,
    loader_batches_per_worker=4,
    fashion_mnist_batch=256,
    fashion_mnist_args=(),
    fashion_mnist_max_train=None,
    fashion_mnist_max_eval=None,
    fashion_mnist_max_epochs=None,
    fashion_mnist_reserve_s=30.0,
    # 8 minutes if every box is filled; about 7 when each stage takes what it usually needs (throughput and
    # fashion_mnist fill theirs, the others finish early).
    budgets_s={"machine": 10, "throughput": 130, "precision": 20, "launchers": 80, "input_pipeline": 40,
               "fashion_mnist": 200},
)

_TINY_TRAIN_PY = ("--config_overrides", ",".join(TINY_OVERRIDES), "--use_cpu", "true")
DRY_RUN_PROFILE = Profile(
    device="cpu",
    presets=("tiny-32",),
    batch_sizes=(2,),
    config_overrides=TINY_OVERRIDES,
    # Dynamo's tracing without code generation: inductor takes minutes to build CPU kernels on a small machine.
    compile_backend="eager",
    warmup=1,
    iters=1,
    matmul_size=64,
    case_guess_s={"eager": 0.0, "compiled": 0.0},
    precision_batch=4,
    launcher_steps=2,
    launcher_args=(*_TINY_TRAIN_PY, "--max_train_samples", "64", "--max_eval_samples", "32", "--global_batch_size",
                   "16"),
    pipeline_batch=4,
    pipeline_images=8,
    loader_batches_per_worker=2,
    fashion_mnist_batch=16,
    fashion_mnist_args=_TINY_TRAIN_PY,
    fashion_mnist_max_train=64,
    fashion_mnist_max_eval=32,
    fashion_mnist_max_epochs=1,
    fashion_mnist_reserve_s=0.0,
    # Generous: the dry run checks the code paths, and a busy CI machine must not cut them.
    budgets_s=dict.fromkeys(STAGES, 600),
)


# --- arguments -------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Stages: " + ", ".join(STAGES) + ". Default budgets (s): "
        + ", ".join(f"{k}={v:g}" for k, v in GPU_PROFILE.budgets_s.items()),
    )
    parser.add_argument("--dry_run", action="store_true",
                        help="every stage on the CPU with a tiny model and a few steps: checks the script, not a GPU")
    parser.add_argument("--output_dir", type=Path, default=None,
                        help="where STAGE.json, STAGE.md and summary.md go (default benchmarks/results/gpu; with "
                        "--dry_run: outputs/gpu_check_dry_run)")
    parser.add_argument("--data_dir", default=DEFAULT_DATA_DIR,
                        help="Fashion-MNIST in its IDX files (train-images-idx3-ubyte.gz, ...), for the fashion_mnist "
                        f"stage (default {DEFAULT_DATA_DIR})")
    parser.add_argument("--stages", nargs="+", default=list(STAGES), choices=STAGES, metavar="STAGE",
                        help="the stages to run, in the script's order whatever the order given (default: all)")
    parser.add_argument("--budget", nargs="*", default=[], metavar="STAGE=SECONDS",
                        help="a stage's time box, e.g. throughput=300 fashion_mnist=600")
    parser.add_argument("--work_dir", type=Path, default=None,
                        help="where the training runs write their checkpoints (default: a temporary folder, removed "
                        "at the end)")
    return parser.parse_args(argv)


def parse_budgets(words: list[str], defaults: dict[str, float]) -> dict[str, float]:
    budgets = dict(defaults)
    for word in words:
        stage, sep, value = word.partition("=")
        if not sep:
            raise UserInputError(f"--budget {word!r}: write STAGE=SECONDS, e.g. throughput=300.")
        if stage not in STAGES:
            raise UserInputError(f"--budget {word!r}: {stage!r} is not a stage; the stages are {', '.join(STAGES)}.")
        try:
            seconds = float(value)
        except ValueError:
            seconds = float("nan")
        if not seconds > 0 or math.isinf(seconds):
            raise UserInputError(f"--budget {word!r}: the seconds must be a positive number.")
        budgets[stage] = seconds
    return budgets


def check_data_dir(data_dir: str) -> None:
    """The Fashion-MNIST release must be there before four minutes of other stages are spent."""
    from dems_training.data.idx import IDX_STEMS, find_idx_file

    if not os.path.isdir(data_dir):
        raise UserInputError(
            f"--data_dir={data_dir!r} is not a folder; the fashion_mnist stage reads Fashion-MNIST's IDX files from "
            "it (apt-get install dataset-fashion-mnist puts them in /usr/share/datasets/fashion-mnist). Leave the "
            "stage out with --stages if there is no copy."
        )
    missing = [stem for pair in IDX_STEMS.values() for stem in pair if find_idx_file(data_dir, stem) is None]
    if missing:
        raise UserInputError(f"--data_dir={data_dir!r} has no {', '.join(missing)} (plain or .gz): it must hold the "
                             "four IDX files of the release.")


def peak_for(gpu_name: str | None) -> tuple[str | None, dict | None]:
    """(the datasheet entry's name, its peak TFLOP/s by dtype) for a device name; (None, None) when it is not in
    GPU_PEAK_TFLOPS, and MFU is then left unknown rather than guessed."""
    for name, peaks in GPU_PEAK_TFLOPS:
        if gpu_name and name.lower() in gpu_name.lower():
            return name, peaks
    return None, None


@dataclass
class Check:
    """One run of the check: its profile, folders and the GPU's peak."""

    profile: Profile
    dry_run: bool
    output_dir: Path
    work_dir: Path | None
    data_dir: str
    budgets: dict[str, float]
    gpu_name: str | None = None
    peak_name: str | None = None
    peak_tflops: dict | None = None

    @property
    def device(self) -> torch.device:
        return torch.device(self.profile.device)

    def settings(self, **fields) -> BenchmarkSettings:
        """The harness's settings for this check's device, model overrides and timing."""
        profile = self.profile
        base = dict(device=profile.device, config_overrides=profile.config_overrides, warmup=profile.warmup,
                    iters=profile.iters, matmul_size=profile.matmul_size, compile_backend=profile.compile_backend)
        return BenchmarkSettings(**{**base, **fields})

    def mfu(self, flops_per_s: float, dtype: str) -> float | None:
        return None if self.peak_tflops is None else flops_per_s / (self.peak_tflops[dtype] * 1e12)


# --- stage records ---------------------------------------------------------------------------------------------


def write_atomically(path: Path, text: str) -> None:
    """Write, then rename: a run killed in the middle leaves the previous whole file, never a torn one."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


class StageRecord:
    """A stage's JSON (and Markdown) file, rewritten whenever the stage has something new: status, seconds against
    the budget, results so far."""

    def __init__(self, name: str, check: Check):
        self.name = name
        self.check = check
        self.budget_s = check.budgets[name]
        self.start = time.monotonic()
        self.data = {
            "stage": name,
            "status": "running",
            "dry_run": check.dry_run,
            "device": check.profile.device,
            "started_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "budget_s": self.budget_s,
            "seconds": 0.0,
            "results": {},
        }
        self.save()

    @property
    def results(self) -> dict:
        return self.data["results"]

    def time_left(self) -> float:
        return self.budget_s - (time.monotonic() - self.start)

    def deadline(self) -> float:
        """The end of the box, on time.monotonic()'s clock."""
        return self.start + self.budget_s

    def save(self) -> None:
        self.data["seconds"] = round(time.monotonic() - self.start, 2)
        output_dir = self.check.output_dir
        write_atomically(output_dir / f"{self.name}.json", json.dumps(self.data, indent=2, default=str) + "\n")
        write_atomically(output_dir / f"{self.name}.md", render_stage(self.data))

    def finish(self, status: str, error: BaseException | None = None) -> None:
        self.data["status"] = status
        if error is not None:
            self.data["error"] = f"{type(error).__name__}: {error}"
            self.data["traceback"] = traceback.format_exc()[-4000:]
        self.save()


class Interrupted(BaseException):
    """SIGTERM (e.g. from `timeout`): the stage in progress is recorded as interrupted before the process ends."""


def raise_interrupted(signum, frame):
    raise Interrupted(f"signal {signum}")


def free_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


# --- the models timed --------------------------------------------------------------------------------------------


def import_reference_restatement():
    """tests/model/reference_dems.py, which lives with the tests: its forward pass is timed as it stands."""
    folder = str(REPO / "tests" / "model")
    if folder not in sys.path:
        sys.path.append(folder)
    import reference_dems

    return reference_dems


class ReferenceRestatement(torch.nn.Module):
    """The test suite's independent re-statement of the reference forward pass as a classifier that the harness's
    Runner times like the others: random reference-layout weights as parameters, cross-entropy on labels. It keeps the
    reference release's own style (per-region merge loops, gather indices built in Python, plain softmax
    attention), so it stands for a straight port of the reference code, not for a second implementation of ours."""

    def __init__(self, config, seed: int = 0):
        super().__init__()
        reference = import_reference_restatement()
        ratios = set(config.mlp_ratios)
        if len(ratios) != 1:
            raise ValueError(f"mlp_ratios={config.mlp_ratios}: the reference has one MLP ratio for every block.")
        state = reference.random_reference_state_dict(
            seed, dim=config.hidden_size, patch=config.patch_size, image_size=config.image_size,
            channels=config.num_channels, depth=config.num_hidden_layers, classes=config.num_labels,
            merged=list(config.num_merged_tokens), mlp_ratio=ratios.pop(), qkv_bias=config.qkv_bias,
        )
        # The frozen position tables and the merge-norm aliases are not read: the forward pass builds the tables.
        used = {key: value for key, value in state.items() if not key.startswith(("pos_embed", "norm_merge"))}
        self.names = list(used)
        self.weights = torch.nn.ParameterList(torch.nn.Parameter(value.clone()) for value in used.values())
        self.shape = dict(image_size=config.image_size, patch=config.patch_size, heads=config.num_attention_heads,
                          depth=config.num_hidden_layers, merge_layers=tuple(config.merge_layers))
        # Without the no_grad that the parity tests wrap it in, so that it trains.
        self.forward_pass = reference.reference_logits.__wrapped__

    def forward(self, pixel_values, labels=None):
        from transformers.modeling_outputs import ImageClassifierOutput

        logits = self.forward_pass(dict(zip(self.names, self.weights, strict=True)), pixel_values, **self.shape)
        loss = None if labels is None else F.cross_entropy(logits.float(), labels)
        return ImageClassifierOutput(loss=loss, logits=logits)


def build_classifier(architecture: str, preset: str, settings: BenchmarkSettings, attn_implementation: str):
    """The preset's DEMS model, the ViT matched to it as train.py --architecture vit builds it, or the reference
    re-statement; the same seed for each."""
    torch.manual_seed(settings.seed)
    if architecture == "dems":
        return build_model(preset, settings, attn_implementation)
    config = make_config(preset, settings)
    if architecture == "vit":
        from transformers import ViTForImageClassification

        from dems_training.modeling import vit_config_matching

        vit_config = vit_config_matching(config)
        # As train.py labels it (modeling.label_fields). Left None, ViT's loss writes it into the config on the first
        # call, and torch.compile, which guards on it, compiles the model a second time inside the timed steps.
        vit_config.problem_type = "single_label_classification"
        model = ViTForImageClassification._from_config(vit_config, attn_implementation=attn_implementation)
    else:
        model = ReferenceRestatement(config, settings.seed)
    return model.to(settings.torch_device)


def attention_of(architecture: str) -> str:
    """What the timed models compute attention with: SDPA where the model has it, the re-statement's own products."""
    return "eager" if architecture == "reference" else "sdpa"


def flops_per_image(architecture: str, preset: str, check: Check, dtype: str) -> tuple[float, float]:
    """(training-step, inference) FLOPs per image, counted as throughput.py counts them (explicit attention
    products) on a batch of two."""
    settings = check.settings(batch_size=2, dtype=dtype)
    model = build_classifier(architecture, preset, settings, "eager")
    train, inference = model_flops(model, make_batch(preset, settings), settings.torch_device, settings.torch_dtype)
    del model
    return train / 2, inference / 2


def train_step_rate(check: Check, preset: str, batch_size: int, dtype: str = "bf16") -> float:
    """Images per second of DEMS's training step (SDPA, `dtype` autocast, AdamW), the harness's median."""
    settings = check.settings(batch_size=batch_size, dtype=dtype)
    runner = Runner(preset, "sdpa", settings)
    for _ in range(settings.warmup):
        runner.train_step()
    seconds = sorted(timed(runner.train_step, settings.torch_device)[0] for _ in range(settings.iters))
    del runner
    free_memory(settings.torch_device)
    return batch_size / seconds[len(seconds) // 2]


# --- stage: machine ------------------------------------------------------------------------------------------------


def package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def command_output(command: list[str], cwd: Path | None = None) -> str | None:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=20)
        if result.returncode == 0:
            return result.stdout.strip()
    return None


def nccl_version() -> str | None:
    with contextlib.suppress(Exception):  # a torch built without NCCL raises; the machine's other facts still count
        version = torch.cuda.nccl.version()
        # A tuple (major, minor, patch) on recent torch, one integer (2708 for 2.7.8) on older builds.
        return ".".join(str(part) for part in version) if isinstance(version, tuple) else str(version)
    return None


def stage_machine(record: StageRecord, check: Check) -> None:
    from dems_training.launch import usable_cpus

    results = record.results
    results.update({
        "gpu": check.gpu_name,
        "peak_tflops": check.peak_tflops,
        "peak_source": f"{check.peak_name} datasheet, dense" if check.peak_name else "unknown GPU: no MFU",
        "python": platform.python_version(),
        # A missing package fails only the stages that need it (datasets, evaluate: train.py, input pipeline).
        "packages": {name: package_version(name) for name in (
            "torch", "transformers", "accelerate", "datasets", "evaluate", "numpy", "pillow", "safetensors")},
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "usable_cpus": usable_cpus(),
        "commit": command_output(["git", "rev-parse", "HEAD"], cwd=REPO),
        "tf32": "off: fp32 is measured as full fp32",
    })
    if check.device.type == "cuda":
        properties = torch.cuda.get_device_properties(check.device)
        results.update({
            "gpu_memory_bytes": properties.total_memory,
            "compute_capability": f"{properties.major}.{properties.minor}",
            "multiprocessors": properties.multi_processor_count,
            "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version(),
            "nccl": nccl_version(),
            "driver": command_output(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"]),
            "bf16_supported": torch.cuda.is_bf16_supported(),
        })


# --- stage: throughput ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    preset: str
    architecture: str
    mode: str
    batch_size: int

    @property
    def dtype(self) -> str:
        return MODES[self.mode][0]

    @property
    def compiled(self) -> bool:
        return MODES[self.mode][1]


def throughput_cases(presets: tuple[str, ...], batch_sizes: tuple[int, ...]) -> list[Case]:
    """Every preset x model x mode x batch once, the most wanted first, so that a time box keeps the comparisons that
    matter: eager bf16 and fp32 of every model at the first batch, DEMS and ViT compiled on the first preset
    (compiling takes about a minute each), eager at the larger batches, the other compiled cases last (the reference's
    per-region loops make the largest graphs)."""
    first, later = batch_sizes[0], batch_sizes[1:]

    def eager(preset, batch):
        return [Case(preset, a, mode, batch) for mode in ("bf16", "fp32") for a in ARCHITECTURES]

    def compiled(preset, batch, architectures):
        return [Case(preset, a, "bf16+compile", batch) for a in architectures]

    tiers = [eager(preset, first) for preset in presets]
    tiers.append(compiled(presets[0], first, ("dems", "vit")))
    tiers += [eager(preset, batch) for batch in later for preset in presets]
    tiers += [compiled(preset, first, ("dems", "vit")) for preset in presets[1:]]
    tiers += [compiled(preset, first, ("reference",)) for preset in presets]
    tiers += [compiled(preset, batch, ARCHITECTURES) for batch in later for preset in presets]
    return [case for tier in tiers for case in tier]


def case_fits(case: Case, done: list[dict], time_left: float, guesses: dict[str, float]) -> bool:
    """Whether the box has room for `case`: as long as the slowest finished case of its kind (compiled or not), per
    image for eager ones (their time grows with the batch), compiling time for compiled ones (it does not)."""
    kind = "compiled" if case.compiled else "eager"
    same = [r for r in done if r["status"] == "ok" and r["compile"] == case.compiled]
    if not same:
        needed = guesses[kind]
    elif case.compiled:
        needed = max(r["seconds"] for r in same)
    else:
        needed = max(r["seconds"] / r["batch_size"] for r in same) * case.batch_size
    return time_left >= needed


def measure_case(case: Case, check: Check, rooflines: dict, flops: dict) -> dict:
    settings = check.settings(batch_size=case.batch_size, dtype=case.dtype, compile=case.compiled)
    if (case.preset, case.architecture) not in flops:
        flops[case.preset, case.architecture] = flops_per_image(case.architecture, case.preset, check, case.dtype)
    train_flops, inference_flops = (round(f * case.batch_size) for f in flops[case.preset, case.architecture])
    if case.dtype not in rooflines:
        rooflines[case.dtype] = Roofline(settings.matmul_size, settings.torch_device, settings.torch_dtype)
    if case.compiled:
        # A fresh cache per compiled model: after 8 recompilations of one forward, dynamo silently runs it eagerly.
        torch._dynamo.reset()
    attention = attention_of(case.architecture)
    batch = make_batch(case.preset, settings)
    model = build_classifier(case.architecture, case.preset, settings, attention)
    runner = Runner(case.preset, attention, settings, batch, model=model)
    result = bench_one(case.preset, attention, settings, batch, (train_flops, inference_flops),
                       rooflines[case.dtype], runner=runner)
    for name in ("train", "inference"):
        result[name]["mfu"] = check.mfu(result[name]["flops_per_s"], case.dtype)
    return result


def stage_throughput(record: StageRecord, check: Check) -> None:
    profile = check.profile
    if check.device.type == "cuda":
        # What one would train with: TF32 off keeps fp32 products fp32 (throughput.py does the same).
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    results = record.results
    results.update({"gpu": check.gpu_name, "peak_tflops": check.peak_tflops, "compile_backend": profile.compile_backend,
                    "warmup": profile.warmup, "iters": profile.iters, "cases": []})
    rooflines, flops = {}, {}
    for case in throughput_cases(profile.presets, profile.batch_sizes):
        entry = {"preset": case.preset, "architecture": case.architecture, "mode": case.mode,
                 "dtype": case.dtype, "compile": case.compiled, "batch_size": case.batch_size}
        started = time.monotonic()
        if not case_fits(case, results["cases"], record.time_left(), profile.case_guess_s):
            entry.update(status="skipped", reason="time box")
        else:
            try:
                entry.update(measure_case(case, check, rooflines, flops), status="ok")
            except torch.OutOfMemoryError as error:
                entry.update(status="out_of_memory", error=str(error).splitlines()[0])
            except Exception as error:  # a model that cannot run this mode; the other cases still can
                entry.update(status="failed", error=f"{type(error).__name__}: {error}"[:2000])
            free_memory(check.device)
        entry["seconds"] = round(time.monotonic() - started, 2)
        results["cases"].append(entry)
        record.save()
        print(f"throughput: {case.preset} {case.architecture} {case.mode} batch {case.batch_size}: {entry['status']}"
              f" ({entry['seconds']} s)", flush=True)
    record.data["status_detail"] = throughput_status(results["cases"])


def throughput_status(cases: list[dict]) -> str:
    counts = {}
    for case in cases:
        counts[case["status"]] = counts.get(case["status"], 0) + 1
    return ", ".join(f"{n} {status}" for status, n in counts.items())


# --- stage: precision ----------------------------------------------------------------------------------------------


def max_abs_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.float() - b.float()).abs().max().item()


def stage_precision(record: StageRecord, check: Check) -> None:
    preset = check.profile.presets[0]
    settings = check.settings(batch_size=check.profile.precision_batch)
    device = settings.torch_device
    models = {attention: build_classifier("dems", preset, settings, attention) for attention in ("eager", "sdpa")}
    models["sdpa"].load_state_dict(models["eager"].state_dict())
    pixel_values, labels = make_batch(preset, settings)
    logits = {}
    with torch.inference_mode():
        for attention, model in models.items():
            model.eval()
            logits[attention, "fp32"] = model(pixel_values).logits.float()
            with torch.autocast(device.type, dtype=torch.bfloat16):
                logits[attention, "bf16"] = model(pixel_values).logits.float()
    results = record.results
    results.update({
        "preset": preset,
        "batch_size": settings.batch_size,
        "logits_max_abs": logits["eager", "fp32"].abs().max().item(),
        "eager_vs_sdpa_bf16_max_abs_diff": max_abs_difference(logits["eager", "bf16"], logits["sdpa", "bf16"]),
        "eager_vs_sdpa_fp32_max_abs_diff": max_abs_difference(logits["eager", "fp32"], logits["sdpa", "fp32"]),
        "eager_bf16_vs_fp32_max_abs_diff": max_abs_difference(logits["eager", "bf16"], logits["eager", "fp32"]),
        "sdpa_bf16_vs_fp32_max_abs_diff": max_abs_difference(logits["sdpa", "bf16"], logits["sdpa", "fp32"]),
        "top1_agreement_eager_vs_sdpa_bf16": (
            logits["eager", "bf16"].argmax(-1) == logits["sdpa", "bf16"].argmax(-1)
        ).float().mean().item(),
    })
    # One training step (SDPA, AdamW, as the harness's Runner steps) from the same weights in each precision: the
    # step's loss, and the loss after it. The preset has no dropout, so both losses are deterministic.
    state = {k: v.clone() for k, v in models["sdpa"].state_dict().items()}
    del models
    for dtype in ("fp32", "bf16"):
        runner = Runner(preset, "sdpa", check.settings(batch_size=settings.batch_size, dtype=dtype),
                        (pixel_values, labels))
        runner.model.load_state_dict(state)

        def loss(runner=runner):
            runner.model.train()
            with torch.no_grad(), autocast(device, runner.dtype):
                return runner.model(pixel_values, labels=labels).loss.item()

        results[f"loss_{dtype}"] = loss()
        runner.train_step()
        results[f"loss_after_one_step_{dtype}"] = loss()
        del runner
    results["loss_abs_diff"] = abs(results["loss_fp32"] - results["loss_bf16"])
    results["loss_rel_diff"] = results["loss_abs_diff"] / abs(results["loss_fp32"])
    results["loss_after_one_step_abs_diff"] = abs(
        results["loss_after_one_step_fp32"] - results["loss_after_one_step_bf16"]
    )
    results["losses_finite"] = all(
        math.isfinite(results[key])
        for key in ("loss_fp32", "loss_bf16", "loss_after_one_step_fp32", "loss_after_one_step_bf16")
    )


# --- stage: launchers ----------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child_environment(check: Check) -> dict:
    """The launched runs' environment: no network (a GPU machine may reach none, and a Hub lookup would wait for a
    time-out), the checkout importable, NCCL's own log on, so that its use shows in the output."""
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    if check.device.type == "cuda":
        env["NCCL_DEBUG"] = "INFO"
    return env


def launchers() -> dict[str, list[str]]:
    """The two launchers, run with this interpreter so that they use its packages."""
    return {
        "torchrun": [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "1",
                     "--master_port", str(free_port())],
        "accelerate": [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1",
                       "--num_machines", "1", "--mixed_precision", "bf16", "--dynamo_backend", "no"],
    }


def logged_losses(output_dir: Path) -> list[float]:
    state = output_dir / "trainer_state.json"
    if not state.is_file():
        return []
    history = json.loads(state.read_text())["log_history"]
    return [entry["loss"] for entry in history if "loss" in entry]


def checkpoint_predicts(checkpoint: Path, device: torch.device) -> bool:
    """The checkpoint loads through the Auto classes and gives finite logits on random images of its size."""
    from transformers import AutoModelForImageClassification

    import modeling_dems  # noqa: F401  (registers DEMS with the Auto classes)

    model = AutoModelForImageClassification.from_pretrained(checkpoint).to(device).eval()
    config = model.config
    pixel_values = torch.randn(2, config.num_channels, config.image_size, config.image_size, device=device)
    with torch.inference_mode():
        return bool(torch.isfinite(model(pixel_values).logits).all())


def launch_train(name: str, launcher: list[str], check: Check, timeout: float) -> dict:
    profile = check.profile
    output_dir = check.work_dir / f"launch-{name}"
    steps = str(profile.launcher_steps)
    command = [*launcher, str(TRAIN_SCRIPT), "--dataset", "digits", "--output_dir", str(output_dir),
               "--overwrite_output_dir", "true", "--bf16", "true", "--max_steps", steps, "--save_strategy", "steps",
               "--save_steps", steps, "--logging_steps", "1", "--report_to", "none", "--disable_tqdm", "true",
               "--seed", "0", *profile.launcher_args]
    result = {"command": shlex.join(["python" if word == sys.executable else word for word in command]),
              "timeout_s": round(timeout, 1)}
    started = time.monotonic()
    try:
        process = subprocess.run(command, cwd=REPO, env=child_environment(check), capture_output=True, text=True,
                                 timeout=timeout)
    except subprocess.TimeoutExpired as error:
        output = (error.stdout or b"") + (error.stderr or b"")
        output = output.decode(errors="replace") if isinstance(output, bytes) else output
        result.update(status="timed_out", seconds=round(time.monotonic() - started, 1), log_tail=output[-3000:])
        return result
    log = process.stdout + process.stderr
    shape = re.search(r"Process rank \d+ of world size (\d+), device (\S+),", log)
    losses = logged_losses(output_dir)
    checkpoint = output_dir / f"checkpoint-{steps}"
    result.update({
        "returncode": process.returncode,
        "seconds": round(time.monotonic() - started, 1),
        "world_size": int(shape.group(1)) if shape else None,
        "device": shape.group(2) if shape else None,
        # NCCL logs only once a communicator exists; a count of 0 on a GPU says no collective ran, not that NCCL failed.
        "nccl_log_lines": log.count("NCCL INFO"),
        "losses": losses,
        "loss_finite": bool(losses) and all(math.isfinite(v) for v in losses),
        "checkpoint": checkpoint.name if checkpoint.is_dir() else None,
    })
    result["checkpoint_predicts"] = checkpoint.is_dir() and checkpoint_predicts(checkpoint, check.device)
    ok = process.returncode == 0 and result["loss_finite"] and result["checkpoint_predicts"]
    result["status"] = "ok" if ok else "failed"
    if not ok:
        result["log_tail"] = log[-3000:]
    return result


def stage_launchers(record: StageRecord, check: Check) -> None:
    commands = launchers()
    for position, (name, launcher) in enumerate(commands.items()):
        # The box is shared by the launches still to come: a hung one cannot take the others' time.
        timeout = record.time_left() / (len(commands) - position)
        if timeout <= 1:
            record.results[name] = {"status": "skipped", "reason": "time box"}
            continue
        record.results[name] = launch_train(name, launcher, check, timeout)
        record.save()


# --- stage: input pipeline -------------------------------------------------------------------------------------------


class Cycled(torch.utils.data.Dataset):
    """`length` items cycling through `dataset`: a long loader run over a few distinct images."""

    def __init__(self, dataset, length: int):
        self.dataset, self.length = dataset, length

    def __len__(self):
        return self.length

    def __getitem__(self, index):
        return self.dataset[index % len(self.dataset)]


def stage_input_pipeline(record: StageRecord, check: Check) -> None:
    import datasets

    from benchmarks import input_pipeline as bench
    from dems_training.augmentation.mixup import MixupCutmixCollator, default_collator
    from dems_training.augmentation.schedule import AugmentationSchedule
    from dems_training.augmentation.transforms import CpuAugmentation, RandomResizedCropFlip
    from dems_training.data.torch_data import TransformedImageDataset
    from dems_training.launch import usable_cpus
    from dems_training.recipe import data_loader_defaults

    profile, size, batch = check.profile, 256, check.profile.pipeline_batch
    results = record.results
    # train.py's own default for one process on this machine.
    workers = data_loader_defaults({}, check.device.type == "cuda", usable_cpus(), 1)["dataloader_num_workers"]
    results.update({"image_size": size, "source": bench.SIZES[size]["source"], "batch_size": batch,
                    "workers": workers})
    results["gpu_train_images_per_s"] = train_step_rate(check, "tiny-256", batch)  # bf16, what one would train with
    record.save()

    encoded = bench.encoded_images(size, profile.pipeline_images, seed=0)
    features = datasets.Features({"image": datasets.Image(), "label": datasets.Value("int64")})
    data = datasets.Dataset.from_dict(
        {"image": [{"bytes": b, "path": None} for b in encoded], "label": [i % 101 for i in range(len(encoded))]},
        features=features,
    )
    # Timed after every worker has delivered its prefetched batches (prefetch_factor 2): a steady state.
    untimed = 2 * workers + 1
    timed_batches = max(profile.loader_batches_per_worker * workers, 2)
    args = argparse.Namespace(batch_size=batch, seed=0, loader_batches=timed_batches, device=profile.device,
                              epoch=0, total_epochs=800, device_batches=3, repeats=1, clock="wall")
    length = batch * (untimed + timed_batches + 1)
    schedule = AugmentationSchedule(bench.P0, bench.P0, bench.P0)
    transform = CpuAugmentation(size, bench.MEAN, bench.STD, schedule=schedule)
    transform.set_epoch(0, 800)
    pipelines = {
        "cpu_augmentation": (TransformedImageDataset(data, "image", "label", transform),
                             MixupCutmixCollator(num_classes=101)),
        "augment_on_device": (TransformedImageDataset(data, "image", "label", RandomResizedCropFlip(size)),
                              default_collator),
    }
    results["loader"] = {}
    for name, (dataset, collator) in pipelines.items():
        if record.time_left() <= 0:
            results["loader"][name] = {"status": "skipped", "reason": "time box"}
            continue
        results["loader"][name] = bench.loader_images_per_second(Cycled(dataset, length), collator, workers, args,
                                                                 untimed_batches=untimed)
        record.save()
    # Under --augment_on_device the GPU also runs the colour operations, normalisation and mixing of every batch.
    on_device = bench.time_on_device(size, [bench.decode(b) for b in encoded], args)
    results["on_device_seconds_per_image"] = on_device["seconds"]
    gpu_rates = {"cpu_augmentation": results["gpu_train_images_per_s"],
                 "augment_on_device": 1 / (1 / results["gpu_train_images_per_s"] + on_device["seconds"])}
    results["gpu_images_per_s"] = gpu_rates
    results["verdict"] = {}
    for name, loader in results["loader"].items():
        if "images_per_s" in loader:
            ratio = loader["images_per_s"] / gpu_rates[name]
            results["verdict"][name] = {"loader_over_gpu": ratio, "starved": ratio < 1}


# --- stage: Fashion-MNIST --------------------------------------------------------------------------------------------


# The Trainer's share of the harness's bare step rate (data loading, drop path, logging, per-epoch work). Set low on
# purpose: a run that ends early wastes a little of the box, one that overruns is stopped mid-schedule.
TRAINER_EFFICIENCY = 0.7


def deadline_callback(deadline: float):
    """A TrainerCallback that stops training at `deadline` (time.monotonic()) and records when training ran."""
    from transformers import TrainerCallback

    class DeadlineCallback(TrainerCallback):
        def __init__(self):
            self.deadline, self.stopped = deadline, False
            self.began = self.ended = None
            self.epoch, self.steps = 0.0, 0

        def on_train_begin(self, args, state, control, **kwargs):
            self.began = time.monotonic()

        def on_step_end(self, args, state, control, **kwargs):
            if time.monotonic() >= self.deadline:
                control.should_training_stop = True
                self.stopped = True

        def on_train_end(self, args, state, control, **kwargs):
            self.ended, self.epoch, self.steps = time.monotonic(), state.epoch or 0.0, state.global_step

    return DeadlineCallback()


def planned_epochs(rate: float, seconds: float, train_images: int, max_epochs: int | None) -> int:
    """Whole epochs that fit in `seconds` at `rate` images/s of the bare step, discounted by TRAINER_EFFICIENCY."""
    epochs = max(1, math.floor(rate * TRAINER_EFFICIENCY * max(seconds, 0) / train_images))
    return epochs if max_epochs is None else min(epochs, max_epochs)


def stage_fashion_mnist(record: StageRecord, check: Check) -> None:
    import train  # the training script, run in this process so that a callback can stop it at the deadline
    from dems_training.data.loading import load_data
    from dems_training.outputs import SUMMARY_FILE

    profile, results = check.profile, record.results
    started = time.monotonic()
    data = load_data(dataset="fashion_mnist", data_dir=check.data_dir)  # fills the cache that train.py reads
    train_images = min(len(data.train), profile.fashion_mnist_max_train or len(data.train))
    results.update({"data_dir": check.data_dir, "data_load_s": round(time.monotonic() - started, 1),
                    "train_images": train_images, "global_batch_size": profile.fashion_mnist_batch})
    results["step_images_per_s"] = train_step_rate(check, "tiny-32", profile.fashion_mnist_batch)
    deadline = record.deadline() - profile.fashion_mnist_reserve_s
    epochs = planned_epochs(results["step_images_per_s"], deadline - time.monotonic(), train_images,
                            profile.fashion_mnist_max_epochs)
    # The recipe warms up for 10 of 800 epochs, which rounds to none in a short run; one epoch keeps AdamW from
    # starting at the peak learning rate.
    warmup = 1 if epochs > 1 else 0
    results.update({"epochs_planned": epochs, "warmup_epochs": warmup})
    record.save()

    output_dir = check.work_dir / "fashion_mnist"
    argv = ["--dataset", "fashion_mnist", "--data_dir", check.data_dir, "--output_dir", str(output_dir),
            "--overwrite_output_dir", "true", "--bf16", "true", "--num_train_epochs", str(epochs),
            "--warmup_epochs", str(warmup), "--global_batch_size", str(profile.fashion_mnist_batch),
            "--eval_strategy", "no", "--save_strategy", "no", "--report_to", "none", "--disable_tqdm", "true",
            "--seed", "0", *profile.fashion_mnist_args]
    for flag, limit in (("--max_train_samples", profile.fashion_mnist_max_train),
                        ("--max_eval_samples", profile.fashion_mnist_max_eval)):
        if limit is not None:
            argv += [flag, str(limit)]
    results["train_py"] = "python train.py " + shlex.join(argv)
    callback = deadline_callback(deadline)
    metrics = train.run(argv, extra_callbacks=[callback])
    summary = json.loads((output_dir / SUMMARY_FILE).read_text())
    seconds = (callback.ended or time.monotonic()) - (callback.began or started)
    images_seen = round(callback.epoch * train_images)
    top1 = 100 * metrics["eval_top1_accuracy"]
    results.update({
        "epochs_done": callback.epoch,
        "steps": callback.steps,
        "stopped_at_deadline": callback.stopped,
        "train_seconds": round(seconds, 1),
        "images_seen": images_seen,
        "images_per_s": images_seen / seconds if seconds > 0 else None,
        "trainer_train_samples_per_second": metrics.get("train_samples_per_second"),
        "test_images": summary["dataset"]["held_out_images"],
        "full_test_set": summary["dataset"]["held_out_images"] == FASHION_MNIST_TEST_IMAGES,
        "test_top1": top1,
        "test_top5": 100 * metrics["eval_top5_accuracy"],
        "paper_top1": PAPER_FASHION_MNIST_TOP1,
        "paper_epochs": PAPER_EPOCHS,
        "gap_to_paper_points": PAPER_FASHION_MNIST_TOP1 - top1,
    })


STAGE_FUNCTIONS: dict[str, Callable[[StageRecord, Check], None]] = {
    "machine": stage_machine,
    "throughput": stage_throughput,
    "precision": stage_precision,
    "launchers": stage_launchers,
    "input_pipeline": stage_input_pipeline,
    "fashion_mnist": stage_fashion_mnist,
}


# --- Markdown --------------------------------------------------------------------------------------------------------


def number(value, spec: str = ".3g", scale: float = 1.0, suffix: str = "") -> str:
    return "-" if value is None else f"{value * scale:{spec}}{suffix}"


def render_machine(results: dict) -> list[str]:
    rows = [(key, results.get(key)) for key in (
        "gpu", "gpu_memory_bytes", "compute_capability", "multiprocessors", "driver", "cuda", "cudnn", "nccl",
        "bf16_supported", "peak_tflops", "peak_source", "tf32", "python", "cpu", "cpu_count", "usable_cpus",
        "commit")]
    rows += [(f"package {name}", version) for name, version in results.get("packages", {}).items()]
    return ["| | |", "|---|---|"] + [f"| {key} | {value if value is not None else '-'} |" for key, value in rows]


def render_throughput(results: dict) -> list[str]:
    cases = results.get("cases", [])
    dems = {(c["preset"], c["mode"], c["batch_size"]): c for c in cases if c["architecture"] == "dems"}
    peak = results.get("peak_tflops")
    peak = f"the datasheet peak ({peak['bf16']:g} TFLOP/s bf16, {peak['fp32']:g} fp32)" if peak else "an unknown peak"
    lines = [
        f"Median of {results.get('iters')} timed iterations after {results.get('warmup')} warm-up ones. MFU: the "
        f"counted model FLOPs per second over {peak}. x DEMS: training images/s over DEMS's at the same preset, "
        "mode and batch. Peak GiB: the training step's allocator peak.",
        "",
        "| preset | model | mode | batch | train img/s | train MFU | x DEMS | inference img/s | inference MFU "
        "| peak GiB | status |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in cases:
        train, inference = c.get("train", {}), c.get("inference", {})
        reference = dems.get((c["preset"], c["mode"], c["batch_size"]), {}).get("train", {}).get("images_per_s")
        ratio = train["images_per_s"] / reference if train and reference else None
        peak = c.get("memory_bytes", {}).get("peak")
        status = c["status"] + (f" ({c['error'][:80]})" if "error" in c else "")
        lines.append(
            f"| {c['preset']} | {c['architecture']} | {c['mode']} | {c['batch_size']} | "
            f"{number(train.get('images_per_s'), ',.0f')} | {number(train.get('mfu'), '.1%')} | "
            f"{number(ratio, '.2f')} | "
            f"{number(inference.get('images_per_s'), ',.0f')} | {number(inference.get('mfu'), '.1%')} | "
            f"{number(peak, '.2f', 2**-30)} | {status} |"
        )
    return lines


def render_precision(results: dict) -> list[str]:
    return [
        f"{results.get('preset')}, batch {results.get('batch_size')}, random images; largest |logit| in fp32: "
        f"{number(results.get('logits_max_abs'))}.",
        "",
        f"- eager vs SDPA logits, bf16: max |difference| {number(results.get('eager_vs_sdpa_bf16_max_abs_diff'))} "
        f"(fp32: {number(results.get('eager_vs_sdpa_fp32_max_abs_diff'))}); same top-1 for "
        f"{number(results.get('top1_agreement_eager_vs_sdpa_bf16'), '.1%')} of the images",
        f"- bf16 vs fp32 logits: eager {number(results.get('eager_bf16_vs_fp32_max_abs_diff'))}, SDPA "
        f"{number(results.get('sdpa_bf16_vs_fp32_max_abs_diff'))}",
        f"- one training step's loss: fp32 {number(results.get('loss_fp32'), '.6g')}, bf16 "
        f"{number(results.get('loss_bf16'), '.6g')} (relative difference {number(results.get('loss_rel_diff'))}); "
        f"after the step: fp32 {number(results.get('loss_after_one_step_fp32'), '.6g')}, bf16 "
        f"{number(results.get('loss_after_one_step_bf16'), '.6g')}",
    ]


def render_launchers(results: dict) -> list[str]:
    lines = ["| launcher | status | seconds | world size | device | NCCL log lines | losses (first, last) "
             "| checkpoint predicts |", "|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        losses = r.get("losses") or []
        shown = f"{losses[0]:.4g}, {losses[-1]:.4g}" if losses else "-"
        lines.append(f"| {name} | {r['status']} | {r.get('seconds', '-')} | {r.get('world_size', '-')} | "
                     f"{r.get('device', '-')} | {r.get('nccl_log_lines', '-')} | {shown} | "
                     f"{r.get('checkpoint_predicts', '-')} |")
    lines += ["", "Commands:", ""] + [f"- `{r['command']}`" for r in results.values() if "command" in r]
    return lines


def render_input_pipeline(results: dict) -> list[str]:
    lines = [
        f"{results.get('image_size')} px from {results.get('source')} JPEGs, batch {results.get('batch_size')}, "
        f"{results.get('workers')} workers (train.py's default here); GPU: DEMS tiny-256 bf16 training step "
        f"{number(results.get('gpu_train_images_per_s'), ',.0f')} images/s, plus "
        f"{number(results.get('on_device_seconds_per_image'), '.3g', 1e3)} ms per image of on-device augmentation "
        "under --augment_on_device.",
        "",
        "| pipeline | loader images/s | GPU images/s | loader / GPU | starved |",
        "|---|---|---|---|---|",
    ]
    for name, loader in results.get("loader", {}).items():
        verdict = results.get("verdict", {}).get(name, {})
        lines.append(f"| {name} | {number(loader.get('images_per_s'), ',.0f')} | "
                     f"{number(results.get('gpu_images_per_s', {}).get(name), ',.0f')} | "
                     f"{number(verdict.get('loader_over_gpu'), '.2f')} | {verdict.get('starved', '-')} |")
    return lines


def render_fashion_mnist(results: dict) -> list[str]:
    return [
        f"- data: {results.get('train_images')} train images from {results.get('data_dir')} "
        f"(read in {results.get('data_load_s')} s)",
        f"- bare training step (harness, bf16, batch {results.get('global_batch_size')}): "
        f"{number(results.get('step_images_per_s'), ',.0f')} images/s; epochs planned "
        f"{results.get('epochs_planned')} (warm-up {results.get('warmup_epochs')})",
        f"- trained {number(results.get('epochs_done'), '.2f')} epochs, {results.get('images_seen')} images in "
        f"{results.get('train_seconds')} s: **{number(results.get('images_per_s'), ',.0f')} images/s**; stopped at the "
        f"deadline: {results.get('stopped_at_deadline')}",
        f"- test top-1 **{number(results.get('test_top1'), '.2f')}%** (top-5 "
        f"{number(results.get('test_top5'), '.2f')}%) on {results.get('test_images')} test images; the paper: "
        f"{results.get('paper_top1')}% after "
        f"{results.get('paper_epochs')} epochs",
        f"- `{results.get('train_py')}`",
    ]


RENDERERS = {
    "machine": render_machine,
    "throughput": render_throughput,
    "precision": render_precision,
    "launchers": render_launchers,
    "input_pipeline": render_input_pipeline,
    "fashion_mnist": render_fashion_mnist,
}


def render_stage(data: dict) -> str:
    detail = f" ({data['status_detail']})" if data.get("status_detail") else ""
    lines = [
        f"## {data['stage']}",
        "",
        f"Status **{data['status']}**{detail}: {data['seconds']:.0f} s of a {data['budget_s']:.0f} s box, started "
        f"{data['started_utc']}, device {data['device']}."
        + (" Dry run: CPU and a tiny model, the figures mean nothing." if data["dry_run"] else ""),
        "",
    ]
    if "error" in data:
        lines += [f"Error: `{data['error']}`", ""]
    return "\n".join(lines + RENDERERS[data["stage"]](data["results"])) + "\n"


def write_summary(check: Check) -> Path:
    """summary.md: every stage's Markdown in the script's order, whichever run of it wrote them."""
    parts = ["# GPU check (benchmarks/gpu_check.py)", "", "One section per stage; the figures are in STAGE.json.", ""]
    for name in STAGES:
        path = check.output_dir / f"{name}.md"
        if path.is_file():
            parts.append(path.read_text(encoding="utf-8"))
    summary = check.output_dir / "summary.md"
    write_atomically(summary, "\n".join(parts))
    return summary


# --- the command -----------------------------------------------------------------------------------------------------


def stage_status(name: str, results: dict) -> str:
    """ok, failed (a case or launch failed; the rest still ran) or time_box (the box left something out)."""
    if name == "throughput":
        entries = results["cases"]
    elif name == "launchers":
        entries = list(results.values())
    elif name == "input_pipeline":
        entries = list(results["loader"].values())
    else:
        return "ok"
    statuses = {entry.get("status", "ok") for entry in entries}
    if statuses & {"failed", "timed_out"}:
        return "failed"
    return "time_box" if "skipped" in statuses else "ok"


def build_check(args: argparse.Namespace) -> tuple[Check, list[str]]:
    """The check the flags ask for, every flag checked before anything runs."""
    profile = DRY_RUN_PROFILE if args.dry_run else GPU_PROFILE
    if not args.dry_run and not torch.cuda.is_available():
        raise UserInputError("torch sees no CUDA device: the check measures a GPU. Pass --dry_run to run every stage "
                             "on the CPU with a tiny model.")
    budgets = parse_budgets(args.budget, profile.budgets_s)
    stages = [name for name in STAGES if name in args.stages]
    if "fashion_mnist" in stages:
        check_data_dir(args.data_dir)
    default_output = REPO / "outputs" / "gpu_check_dry_run" if args.dry_run else DEFAULT_OUTPUT_DIR
    output_dir = args.output_dir or default_output
    for flag, folder in (("--output_dir", output_dir), ("--work_dir", args.work_dir)):
        if folder is not None and folder.exists() and not folder.is_dir():
            raise UserInputError(f"{flag}={str(folder)!r} is a file; it must be a folder (made if missing).")
    gpu_name = torch.cuda.get_device_name() if profile.device == "cuda" else None
    peak_name, peak_tflops = peak_for(gpu_name)
    check = Check(profile=profile, dry_run=args.dry_run, output_dir=output_dir, work_dir=args.work_dir,
                  data_dir=args.data_dir, budgets=budgets, gpu_name=gpu_name, peak_name=peak_name,
                  peak_tflops=peak_tflops)
    return check, stages


def run(argv: list[str] | None = None) -> dict:
    """Run the stages; {stage: its record} (what STAGE.json holds)."""
    args = parse_args(argv)
    check, stages = build_check(args)
    check.output_dir.mkdir(parents=True, exist_ok=True)
    temporary_work_dir = args.work_dir is None
    check.work_dir = Path(tempfile.mkdtemp(prefix="gpu_check_")) if temporary_work_dir else args.work_dir
    check.work_dir.mkdir(parents=True, exist_ok=True)
    previous_handler = signal.signal(signal.SIGTERM, raise_interrupted)
    records = {}
    try:
        for name in stages:
            record = StageRecord(name, check)
            print(f"gpu_check: stage {name} (box {record.budget_s:g} s)", flush=True)
            try:
                STAGE_FUNCTIONS[name](record, check)
                record.finish(stage_status(name, record.results))
            except Interrupted as error:
                record.finish("interrupted", error)
                raise
            except Exception as error:  # recorded; the next stage still runs
                record.finish("failed", error)
            finally:
                free_memory(check.device)
                write_summary(check)
            records[name] = record.data
            print(f"gpu_check: stage {name}: {record.data['status']} in {record.data['seconds']:.0f} s", flush=True)
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
        if temporary_work_dir:
            shutil.rmtree(check.work_dir, ignore_errors=True)
    print(write_summary(check).read_text(encoding="utf-8"))
    print(f"gpu_check: results in {check.output_dir}")
    return records


def main(argv: list[str] | None = None) -> int:
    """The command: 0 when every stage ran, 1 when one failed (its STAGE.json says why), 2 for a flag that cannot
    work (one line, as every command of the project reports it), 143 when stopped by SIGTERM."""
    records = {}
    try:
        code = run_command(lambda given: records.update(run(given)), "gpu_check.py", argv)
    except Interrupted:
        return 143
    if code == 0 and any(record["status"] == "failed" for record in records.values()):
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())

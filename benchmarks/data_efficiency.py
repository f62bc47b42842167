#!/usr/bin/env python
"""Data efficiency at a plateau: DEMS-ViT against two ViTs, at several training-set sizes, every run resumable.

Every run is a plain `train.py` run, recorded with the command and the git commit that made it, so that any record
can be rerun. The study, in the order it runs:

1. **Learning-rate grid.** Each model arm trains at one size (`--grid_samples_per_class`), seed 0, at every peak
   rate of `--grid_learning_rates`. The rate with the highest validation top-1 at the end of its run is the arm's
   rate for every size (a tie goes to the smaller rate). The grid trains for its size's budget, or for
   `--grid_epochs`, which keeps the grid as it ran when that size's budget doubles after it.
2. **Plateau check.** Seed 0 of DEMS and the matched ViT at the sizes of `--plateau_samples_per_class`, at the
   size's budget and at twice it: the budget holds when doubling it moves validation top-1 by less than
   `--plateau_tolerance` points.
3. **Comparison.** Every arm at every size, `--seeds` seeds (`--few_seeds` for the equal-compute ViT and the
   ablation, which runs at the smallest and largest size only). Seed by seed, so that a study stopped early holds
   whole comparisons.

Arms:

    dems            DEMS-ViT with the decaying augmentation schedule
    vit             transformers' ViTForImageClassification with DEMS's width, depth, heads and MLP (fewer MACs)
    vit-wide        that ViT widened so that its MACs per image are within 5% of DEMS's (equal compute)
    dems-constant   DEMS-ViT with the augmentation held at p0 throughout (the ablation of the schedule)

Every run sets aside the same validation set (`--validation_samples_per_class` images of each class of the train
split, a fixed seed) and draws its train subset from the rest with its own seed; both arms of a seed train on the
same images in the same order with the same augmentation draws (`train.py --seeded_augmentation`). A run evaluates
the validation set about ten times (its learning curve) and the held-out test split once, at the end: the test
figure is the result, the validation figures are for the choices and the plateau check.

A run checkpoints every tenth of its budget and an interrupted study, started again, resumes each unfinished run
from its newest checkpoint and skips finished ones. `--finish_by` (a UTC time) starts only runs expected to end
before it, by their arm's speed in the records: on a machine that goes away at a known time, a run cut off there
would lose its checkpoints with it. Each finished run writes `runs/<name>.json` under --results_dir
(and, with --commit_records, commits it with its log at once). `--aggregate_only` rebuilds the tables (`results.md`)
and the plots from the records; records of different model or training code are refused unless
--allow_mixed_commits.

    # the committed Fashion-MNIST study (CPU, two single-thread trainings at a time), from a pinned clone
    HF_HUB_OFFLINE=1 python benchmarks/data_efficiency.py --jobs 2 --commit_records
    # a few minutes on scikit-learn's digits
    python benchmarks/data_efficiency.py --quick --results_dir /tmp/quick --outputs_dir /tmp/quick/outputs
"""

import argparse
import datetime
import functools
import json
import os
import shlex
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if not __package__:  # run as `python benchmarks/data_efficiency.py`: dems_training lives at the repository root
    sys.path.insert(0, REPO)

from dems_training import UserInputError  # noqa: E402
from dems_training.command import run_command  # noqa: E402


# The scaled-down DEMS that two CPU cores can train: 32x32 input, patch 4 (one region of 64 + 16 + 4 + 1 = 85
# tokens), width 64, 6 blocks of 2 heads, merges after blocks 3 and 5 (the reference's 6 and 10 of 12, halved),
# keeping 64 tokens per region as the tiny reference does.
STUDY_MODEL = {
    "image_size": 32, "patch_size": 4, "hidden_size": 64, "num_hidden_layers": 6, "num_attention_heads": 2,
    "merge_layers": [3, 5], "num_merged_tokens": [64, 64],
}
# transformers' ViT of the study model's depth at width 72 counts 0.0281 GMACs per image against DEMS's 0.0284
# (-1.1%); the matched ViT (width 64) counts 0.0226 (-20%). The records carry the counts of the trained models.
EQUAL_COMPUTE_WIDTH = 72


@dataclass(frozen=True)
class Arm:
    label: str
    flags: tuple[str, ...] = ()
    config: dict = field(default_factory=dict)  # on top of the study's model
    rate_of: str | None = None  # the arm whose chosen learning rate it trains with (None: its own grid)


ARMS = {
    "dems": Arm("DEMS-ViT"),
    "vit": Arm("ViT, same width and depth", ("--architecture", "vit")),
    "vit-wide": Arm(f"ViT, equal compute (width {EQUAL_COMPUTE_WIDTH})", ("--architecture", "vit"),
                    {"hidden_size": EQUAL_COMPUTE_WIDTH}),
    "dems-constant": Arm("DEMS-ViT, augmentation held at p0", ("--augmentation_decay", "false"), rate_of="dems"),
}
# The code a record's numbers depend on. Records of two commits whose model and training code are identical compare
# like with like (the runner is left out of that test: a record's `command` spells out every argument it passed).
MODEL_AND_TRAINING_CODE = ("train.py", "dems_training", "modeling_dems", "configuration_dems")
# A study refuses to run with uncommitted changes to these (--allow_dirty).
TRAINING_CODE = (*MODEL_AND_TRAINING_CODE, "benchmarks/data_efficiency.py")


@dataclass(frozen=True)
class RunSpec:
    arm: str
    samples_per_class: int
    seed: int
    epochs: int
    learning_rate: float

    @property
    def name(self) -> str:
        return f"{self.arm}-k{self.samples_per_class}-s{self.seed}-e{self.epochs}-lr{self.learning_rate:g}"


@dataclass
class StudySettings:
    dataset: str = "fashion_mnist"
    data_dir: str | None = None
    config_overrides: dict = field(default_factory=lambda: dict(STUDY_MODEL))
    samples_per_class: list[int] = field(default_factory=lambda: [60, 120, 300, 600])
    epochs: list[int] = field(default_factory=lambda: [400, 250, 120, 80])
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    few_seeds: list[int] = field(default_factory=lambda: [0, 1])
    arms: list[str] = field(default_factory=lambda: list(ARMS))
    grid_samples_per_class: int = 120
    grid_learning_rates: list[float] = field(default_factory=lambda: [5e-4, 1e-3, 2e-3])
    grid_epochs: int | None = None  # the grid's budget; None: the budget of its size
    plateau_samples_per_class: list[int] = field(default_factory=lambda: [60, 300])
    plateau_arms: list[str] = field(default_factory=lambda: ["dems", "vit"])
    plateau_tolerance: float = 0.5
    validation_samples_per_class: int = 500
    validation_seed: int = 1234
    global_batch_size: int = 64
    warmup_fraction: float = 0.05
    evaluations: int = 10
    crop_scale_min: float = 0.5
    augmentation_p0: float = 0.6
    attention_dropout: float = 0.0
    device: str = "cpu"
    jobs: int = 2
    threads: int = 1
    results_dir: str = "benchmarks/results/fashion_mnist_plateau"
    outputs_dir: str = "outputs/data_efficiency"
    commit_records: bool = False
    allow_dirty: bool = False
    finish_by: str | None = None  # ISO 8601, UTC unless it names a zone
    only: list[str] = field(default_factory=list)  # run names: train these planned runs alone, whatever --finish_by
    extra_args: list[str] = field(default_factory=list)


QUICK = {
    "dataset": "digits",
    "config_overrides": {},
    "samples_per_class": [5, 20],
    "epochs": [8, 2],
    "seeds": [0],
    "few_seeds": [0],
    "grid_samples_per_class": 5,
    "grid_learning_rates": [1e-3, 2e-3],
    "plateau_samples_per_class": [5],
    "validation_samples_per_class": 10,
    "global_batch_size": 16,
}


def check_settings(settings: StudySettings) -> None:
    sizes = settings.samples_per_class
    if not sizes or min(sizes) < 1:
        raise UserInputError(f"--samples_per_class={sizes} must be positive counts.")
    if len(settings.epochs) != len(sizes) or min(settings.epochs) < 1:
        raise UserInputError(f"--epochs={settings.epochs}: give one positive number of epochs for every size {sizes}.")
    unknown = [arm for arm in settings.arms if arm not in ARMS]
    if unknown:
        raise UserInputError(f"--arms: {unknown} are not arms; choose from {list(ARMS)}.")
    for flag, value in (("--grid_samples_per_class", [settings.grid_samples_per_class]),
                        ("--plateau_samples_per_class", settings.plateau_samples_per_class)):
        if not set(value) <= set(sizes):
            raise UserInputError(f"{flag}={value} must be among --samples_per_class={sizes}.")
    if settings.grid_epochs is not None and settings.grid_epochs < 1:
        raise UserInputError(f"--grid_epochs={settings.grid_epochs} must be at least 1 (or left out: the size's).")
    if not settings.grid_learning_rates or min(settings.grid_learning_rates) <= 0:
        raise UserInputError(f"--grid_learning_rates={settings.grid_learning_rates} must be positive rates.")
    if not 0 <= settings.warmup_fraction < 1:
        raise UserInputError(f"--warmup_fraction={settings.warmup_fraction} must be in [0, 1).")
    if settings.evaluations < 1:
        raise UserInputError(f"--evaluations={settings.evaluations} must be at least 1.")
    if settings.jobs < 1 or settings.threads < 1:
        raise UserInputError(f"--jobs={settings.jobs} and --threads={settings.threads} must be at least 1.")
    if settings.finish_by is not None:
        finish_time(settings.finish_by)


def finish_time(text: str) -> datetime.datetime:
    """`--finish_by` as an aware time (UTC unless it names a zone); refused when it is not a time or has passed."""
    try:
        when = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise UserInputError(
            f"--finish_by={text!r} must be a date and time in ISO 8601, UTC unless it names a zone, "
            "e.g. 2026-12-04T12:10."
        ) from None
    when = when if when.tzinfo else when.replace(tzinfo=datetime.timezone.utc)
    if when <= datetime.datetime.now(datetime.timezone.utc):
        raise UserInputError(f"--finish_by={text!r} has passed: give a time to come.")
    return when


def base_epochs(settings: StudySettings) -> dict[int, int]:
    return dict(zip(settings.samples_per_class, settings.epochs, strict=True))


def model_arms(settings: StudySettings) -> list[str]:
    """The arms with a learning-rate grid of their own."""
    return [arm for arm in settings.arms if ARMS[arm].rate_of is None]


def grid_budget(settings: StudySettings) -> int:
    """The grid's epochs: its own when given (so that a size's budget can double after the grid without running the
    grid again), else its size's budget."""
    return settings.grid_epochs or base_epochs(settings)[settings.grid_samples_per_class]


def grid_runs(settings: StudySettings) -> list[RunSpec]:
    k = settings.grid_samples_per_class
    return [RunSpec(arm, k, 0, grid_budget(settings), rate)
            for arm in model_arms(settings) for rate in settings.grid_learning_rates]


def final_validation(record: dict) -> float:
    return record["val_top1"]


def chosen_learning_rates(settings: StudySettings, records: dict[str, dict]) -> dict[str, float] | None:
    """Each arm's peak rate: the grid rate with the highest final validation top-1 (ties: the smaller rate). None
    until every grid run has a record."""
    runs = grid_runs(settings)
    if any(run.name not in records for run in runs):
        return None
    chosen = {}
    for arm in model_arms(settings):
        candidates = [(-final_validation(records[run.name]), run.learning_rate) for run in runs if run.arm == arm]
        chosen[arm] = min(candidates)[1]
    for arm in settings.arms:
        if ARMS[arm].rate_of is not None:
            chosen[arm] = chosen[ARMS[arm].rate_of]
    return chosen


def plateau_shown_at(settings: StudySettings, records: dict[str, dict], run: RunSpec) -> int | None:
    """The smaller budget at which seed 0 of `run`'s arm already reached its plateau, at `run`'s size and rate: the
    budget b whose doubling moved validation top-1 by less than the tolerance, with 2b no more than `run`'s epochs.
    None when no such pair of records exists. A size's budget doubles when either arm fails; an arm that had passed
    already needs no 2x run of the doubled budget (skipping it can only understate that arm)."""
    b = run.epochs // 2
    while b >= 1:
        one = records.get(RunSpec(run.arm, run.samples_per_class, 0, b, run.learning_rate).name)
        two = records.get(RunSpec(run.arm, run.samples_per_class, 0, 2 * b, run.learning_rate).name)
        if one and two and abs(100 * (two["val_top1"] - one["val_top1"])) < settings.plateau_tolerance:
            return b
        b //= 2
    return None


def comparison_runs(settings: StudySettings, rates: dict[str, float],
                    records: dict[str, dict] | None = None) -> list[RunSpec]:
    """The plateau check first (its 1x runs are also the comparison's seed-0 runs; its 2x runs unless `records` show
    the arm's plateau at a smaller budget), then seed by seed."""
    epochs = base_epochs(settings)
    sizes = sorted(settings.samples_per_class)
    runs = []
    for k in sorted(settings.plateau_samples_per_class):
        for arm in settings.plateau_arms:
            if arm in settings.arms:
                budget = RunSpec(arm, k, 0, epochs[k], rates[arm])
                runs.append(budget)
                if plateau_shown_at(settings, records or {}, budget) is None:
                    runs.append(RunSpec(arm, k, 0, 2 * epochs[k], rates[arm]))
    for seed in sorted(set(settings.seeds) | set(settings.few_seeds)):
        for k in sizes:
            for arm in settings.arms:
                few = arm in ("vit-wide", "dems-constant")
                if seed not in (settings.few_seeds if few else settings.seeds):
                    continue
                if arm == "dems-constant" and k not in (sizes[0], sizes[-1]):
                    continue  # the schedule's ablation: smallest and largest size only
                runs.append(RunSpec(arm, k, seed, epochs[k], rates[arm]))
    unique = {run.name: run for run in runs}
    return list(unique.values())


def config_overrides_text(overrides: dict) -> str:
    return ",".join(f"{key}={json.dumps(value).replace(' ', '')}" for key, value in overrides.items())


def train_arguments(settings: StudySettings, run: RunSpec, output_dir: str) -> list[str]:
    arm = ARMS[run.arm]
    arguments = [
        "--dataset", settings.dataset,
        "--output_dir", output_dir,
        "--seed", str(run.seed),
        "--train_samples_per_class", str(run.samples_per_class),
        "--validation_samples_per_class", str(settings.validation_samples_per_class),
        "--validation_seed", str(settings.validation_seed),
        "--seeded_augmentation", "true",
        "--num_train_epochs", str(run.epochs),
        "--global_batch_size", str(settings.global_batch_size),
        "--learning_rate", f"{run.learning_rate:g}",
        # Trainer's per-step warm-up and cosine: no epoch runs at the floor rate
        "--lr_scheduler_type", "cosine_with_min_lr", "--warmup_steps", f"{settings.warmup_fraction:g}",
        "--crop_scale_min", f"{settings.crop_scale_min:g}",
        "--augmentation_p0", f"{settings.augmentation_p0:g}",
        "--attention_probs_dropout_prob", f"{settings.attention_dropout:g}",
        "--drop_path_rate", "0",
        "--mixup_alpha", "0", "--cutmix_alpha", "0",
        # the learning curve and the checkpoints: every tenth of the budget
        "--eval_strategy", "steps", "--eval_steps", f"{1 / settings.evaluations:g}",
        "--save_strategy", "steps", "--save_steps", f"{1 / settings.evaluations:g}", "--save_total_limit", "2",
        "--per_device_eval_batch_size", "256",
        "--logging_steps", "0.01",
        "--report_to", "none", "--dataloader_num_workers", "0", "--disable_tqdm", "true",
    ]
    if settings.data_dir is not None:
        arguments += ["--data_dir", settings.data_dir]
    overrides = {**settings.config_overrides, **arm.config}
    if overrides:
        arguments += ["--config_overrides", config_overrides_text(overrides)]
    if settings.device == "cpu":
        arguments += ["--use_cpu", "true"]
    return arguments + list(arm.flags) + list(settings.extra_args)


def git(*arguments: str) -> str:
    return subprocess.run(["git", "-C", REPO, *arguments], capture_output=True, text=True, check=True).stdout.strip()


def code_commit(allow_dirty: bool) -> str:
    """The commit of the training code: the newest commit that changed anything outside benchmarks/results (record
    commits do not count). Uncommitted changes to the training code are refused unless `allow_dirty`, and then
    marked."""
    try:
        commit = git("log", "-1", "--format=%H", "--", ".", ":(exclude)benchmarks/results")
        dirty = git("status", "--porcelain", "--untracked-files=no", "--", *TRAINING_CODE)
    except (OSError, subprocess.CalledProcessError) as error:
        raise UserInputError(f"{REPO} is not a git checkout the study can name a commit of ({error}).") from None
    if dirty and not allow_dirty:
        raise UserInputError(
            f"the training code has uncommitted changes ({' '.join(dirty.split())}): a record must name the commit "
            "that made it. Commit them, run from a pinned clone, or pass --allow_dirty (records then say so)."
        )
    return commit + ("+dirty" if dirty else "")


@functools.cache
def same_training_code(commit_a: str, commit_b: str) -> bool:
    """Whether two commits hold the same model and training code (`git diff` of MODEL_AND_TRAINING_CODE is empty).
    A commit git does not know, or one marked dirty, is the same only as itself."""
    if commit_a == commit_b:
        return True
    if "+dirty" in commit_a + commit_b:
        return False
    try:
        command = ["git", "-C", REPO, "diff", "--quiet", commit_a, commit_b, "--", *MODEL_AND_TRAINING_CODE]
        diff = subprocess.run(command, capture_output=True)
    except OSError:
        return False
    return diff.returncode == 0


def model_cost(output_dir: str) -> dict:
    """Parameters and multiply-accumulates per image of the trained model (torch's FLOP counter, 2 FLOPs a MAC)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import AutoModelForImageClassification

    import modeling_dems  # noqa: F401  (registers DEMS with the Auto classes)

    # eager attention: its products are what the FLOP counter sees (the fused CPU kernel goes uncounted)
    model = AutoModelForImageClassification.from_pretrained(output_dir, attn_implementation="eager").eval()
    config = model.config
    pixels = torch.zeros(1, config.num_channels, config.image_size, config.image_size)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(pixel_values=pixels)
    return {"params": sum(p.numel() for p in model.parameters()),
            "gmacs_per_image": counter.get_total_flops() / 2 / 1e9}


def learning_curve(output_dir: str, images_seen: int) -> list[dict]:
    """Validation top-1 at each evaluation, against the images seen by then (the last batch of an epoch may be short,
    so a step's share of the run counts, not its batch size)."""
    with open(os.path.join(output_dir, "trainer_state.json"), encoding="utf-8") as f:
        state = json.load(f)
    points = {entry["step"]: entry["eval_top1_accuracy"] for entry in state["log_history"]
              if "eval_top1_accuracy" in entry}
    return [{"images_seen": round(images_seen * step / state["max_steps"]), "val_top1": top1}
            for step, top1 in sorted(points.items())]


def store_weights_under_the_model_s_names(checkpoint: str) -> None:
    """Rewrite a ViT checkpoint's weights under the names the model loads them by. transformers' ViT saves them
    under legacy names (`encoder.layer.0.attention.attention.query`), and Trainer resumes with a bare
    `load_state_dict` that skips `from_pretrained`'s renaming (transformers#43701): at this study's pinned training
    code, a resumed ViT went on with its encoder freshly initialised, a warning its only sign. Main's trainer loads
    checkpoints by name; the pinned code stays as it is (every record names it), so the runner renames instead.
    The tensors are the ones saved, bit for bit; only their names change."""
    from safetensors.torch import save_file
    from transformers import ViTForImageClassification

    model, info = ViTForImageClassification.from_pretrained(checkpoint, output_loading_info=True)
    wrong = {kind: sorted(keys) for kind, keys in info.items() if kind != "error_msgs" and keys}
    if wrong:
        raise RuntimeError(f"{checkpoint} does not hold a whole ViT ({wrong}); it cannot be resumed.")
    path = os.path.join(checkpoint, "model.safetensors")
    save_file({name: tensor.contiguous() for name, tensor in model.state_dict().items()}, path + ".tmp",
              metadata={"format": "pt"})
    os.replace(path + ".tmp", path)  # written whole, then swapped in


def progress(output_dir: str) -> float:
    """The share of a run its newest whole checkpoint holds (0 without one), from Trainer's trainer_state.json."""
    from dems_training.outputs import complete_checkpoints

    checkpoints = complete_checkpoints(output_dir) if os.path.isdir(output_dir) else []
    if not checkpoints:
        return 0.0
    with open(os.path.join(checkpoints[-1], "trainer_state.json"), encoding="utf-8") as f:
        state = json.load(f)
    return state["global_step"] / state["max_steps"]


def seconds_needed(run: RunSpec, images_per_second: dict[str, float], classes: int, done: float = 0.0) -> float | None:
    """Seconds `run` still needs at its arm's speed, or at the speed of the arm whose rate it takes (the same model),
    None where no record gives one; `done` is its share already run."""
    speed = images_per_second.get(run.arm) or images_per_second.get(ARMS[run.arm].rate_of)
    if not speed:
        return None
    return (1 - done) * run.samples_per_class * classes * run.epochs / speed


def arm_speeds(records: list[dict], threads: int) -> dict[str, float]:
    """Each arm's median training speed (images per second) over its records at `threads` threads."""
    speeds: dict[str, list[float]] = {}
    for record in records:
        if record.get("images_per_second") and record.get("threads", threads) == threads:
            speeds.setdefault(record["arm"], []).append(record["images_per_second"])
    return {arm: sorted(values)[len(values) // 2] for arm, values in speeds.items()}


# An estimate from the records' speeds is an average over quiet and busy hours: leave a run this much room.
FINISH_MARGIN = 1.15


def next_run(pending: list[RunSpec], seconds: dict[str, float | None], seconds_left: float | None) -> RunSpec | None:
    """The first pending run (the plan's order) expected to end in `seconds_left` (None: no limit); a run with no
    estimate is started."""
    for run in pending:
        needed = seconds[run.name]
        if seconds_left is None or needed is None or FINISH_MARGIN * needed <= seconds_left:
            return run
    return None


def run_one(settings: StudySettings, run: RunSpec, context: dict, log) -> dict:
    """Train one run (resuming its newest checkpoint if an earlier study was stopped) and return its record."""
    import torch
    import transformers

    from dems_training.outputs import complete_checkpoints

    output_dir = os.path.join(settings.outputs_dir, settings.dataset, run.name)
    folder = os.path.join(REPO, output_dir)
    if os.path.isdir(folder) and not complete_checkpoints(folder):
        # The study's own folder of a run stopped before its first whole checkpoint: nothing to resume, start over.
        log(f"{run.name}: no checkpoint to resume in {folder}; starting the run again")
        shutil.rmtree(folder)
    if os.path.isdir(folder) and "vit" in ARMS[run.arm].flags:  # --architecture vit
        for checkpoint in complete_checkpoints(folder):
            store_weights_under_the_model_s_names(checkpoint)
    arguments = train_arguments(settings, run, output_dir)
    threads = str(settings.threads)
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "HF_HUB_OFFLINE": "1"}
    log_path = os.path.join(settings.results_dir, "logs", run.name + ".log")
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    start = time.time()
    with open(log_path, "a", encoding="utf-8") as log_file:  # a resumed run's log goes on
        returncode = subprocess.call([sys.executable, "train.py", *arguments], stdout=log_file,
                                     stderr=subprocess.STDOUT, env=env, cwd=REPO)
    if returncode != 0:
        raise RuntimeError(f"{run.name}: train.py exited with {returncode}; see {log_path}")
    with open(os.path.join(REPO, output_dir, "all_results.json"), encoding="utf-8") as f:
        results = json.load(f)
    train_images = run.samples_per_class * context["classes"]
    return {
        "name": run.name,
        "arm": run.arm,
        "dataset": settings.dataset,
        "samples_per_class": run.samples_per_class,
        "train_images": train_images,
        "train_fraction": train_images / context["train"],
        "seed": run.seed,
        "commit": context["commit"],
        "command": f"OMP_NUM_THREADS={threads} python train.py {shlex.join(arguments)}",
        **model_cost(os.path.join(REPO, output_dir)),
        "peak_lr": run.learning_rate,
        "epochs": run.epochs,
        "images_seen": train_images * run.epochs,
        "global_batch_size": settings.global_batch_size,
        "test_top1": results["test_top1_accuracy"],
        "test_images": context["test"],
        "val_top1": results["eval_top1_accuracy"],
        "validation_images": settings.validation_samples_per_class * context["classes"],
        "curve": learning_curve(os.path.join(REPO, output_dir), train_images * run.epochs),
        "train_loss": results.get("train_loss"),
        # Trainer's figure for the last process only: a resumed run's is the rate of its last part
        "images_per_second": results.get("train_samples_per_second"),
        "wall_clock_s_last_process": time.time() - start,
        "threads": settings.threads,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


COMMIT_LOCK = threading.Lock()  # two runs may finish at once; git takes one commit at a time


def commit_record(paths: list[str], message: str) -> None:
    with COMMIT_LOCK:
        git("add", "-f", *paths)
        git("commit", "-q", "-m", message, "--", *paths)


def write_record(settings: StudySettings, record: dict) -> str:
    runs_dir = os.path.join(settings.results_dir, "runs")
    os.makedirs(runs_dir, exist_ok=True)
    path = os.path.join(runs_dir, record["name"] + ".json")
    with open(path + ".tmp", "w", encoding="utf-8") as f:  # written whole (write then rename)
        json.dump(record, f, indent=1)
    os.replace(path + ".tmp", path)
    return path


def load_context(settings: StudySettings, commit: str) -> dict:
    """Sizes of the data (loading it here also fills the `datasets` cache once, before the parallel runs read it)."""
    from dems_training.data_sets import load_data

    data = load_data(dataset=settings.dataset, data_dir=settings.data_dir)
    return {"train": len(data.train), "test": len(data.eval), "classes": len(data.class_names), "commit": commit}


def run_study(settings: StudySettings, log=print) -> list[dict]:
    check_settings(settings)
    settings.results_dir = os.path.abspath(settings.results_dir)
    commit = code_commit(settings.allow_dirty)
    context = load_context(settings, commit)

    def work(run: RunSpec) -> dict:
        record = run_one(settings, run, context, log)
        path = write_record(settings, record)
        if settings.commit_records:
            log_path = os.path.join(settings.results_dir, "logs", run.name + ".log")
            commit_record([path, log_path], f"study: {run.name}, test top-1 {100 * record['test_top1']:.2f}%")
        log(f"{run.name}: test top-1 {100 * record['test_top1']:.2f}%, validation {100 * record['val_top1']:.2f}%")
        return record

    # Phase by phase: the comparison needs the rates the grid chooses.
    while True:
        records = {r["name"]: r for r in read_records(settings.results_dir) if same_training_code(r["commit"], commit)}
        rates = chosen_learning_rates(settings, records)
        planned = grid_runs(settings) if rates is None else comparison_runs(settings, rates, records)
        todo = [run for run in planned if run.name not in records]
        if settings.only:
            unplanned = sorted(set(settings.only) - {run.name for run in planned})
            if unplanned:
                raise UserInputError(f"--only={' '.join(unplanned)}: not a run of this plan "
                                     f"({'learning-rate grid' if rates is None else 'comparison'}); its runs: "
                                     f"{', '.join(run.name for run in planned)}")
            todo = sorted((run for run in todo if run.name in settings.only),
                          key=lambda run: settings.only.index(run.name))
        if not todo:
            break
        log(f"{len(todo)} run(s) to do ({'learning-rate grid' if rates is None else 'comparison'}); records in "
            f"{os.path.join(settings.results_dir, 'runs')}")
        left = run_until(settings, todo, records, context, work)
        if left:
            log(f"{len(left)} run(s) left for a later start, each expected to end after --finish_by="
                f"{settings.finish_by}: {', '.join(run.name for run in left)}")
            break
    all_records = read_records(settings.results_dir)
    from benchmarks.study_report import write_report

    write_report(all_records, settings, allow_mixed_commits=False)
    return all_records


def run_until(settings: StudySettings, todo: list[RunSpec], records: dict[str, dict], context: dict, work) -> list:
    """Run `todo` in order, `settings.jobs` at a time, each job taking the next run that fits before --finish_by;
    return the runs left."""
    # --only names runs to train whatever their length (one longer than a session resumes in the next)
    finish = finish_time(settings.finish_by).timestamp() if settings.finish_by and not settings.only else None
    speeds = arm_speeds(list(records.values()), settings.threads)
    seconds = {run.name: seconds_needed(run, speeds, context["classes"], progress(
        os.path.join(REPO, settings.outputs_dir, settings.dataset, run.name))) for run in todo}
    pending = list(todo)
    lock = threading.Lock()

    def job() -> None:
        while True:
            with lock:
                run = next_run(pending, seconds, None if finish is None else finish - time.time())
                if run is None:
                    return
                pending.remove(run)
            work(run)

    with ThreadPoolExecutor(max_workers=settings.jobs) as pool:
        for future in [pool.submit(job) for _ in range(settings.jobs)]:
            future.result()
    return pending


def read_records(results_dir: str) -> list[dict]:
    runs_dir = os.path.join(results_dir, "runs")
    records = []
    for name in sorted(os.listdir(runs_dir)) if os.path.isdir(runs_dir) else []:
        if name.endswith(".json"):
            with open(os.path.join(runs_dir, name), encoding="utf-8") as f:
                records.append(json.load(f))
    return records


def parse_args(argv: list[str] | None = None) -> tuple[StudySettings, argparse.Namespace]:
    defaults = StudySettings()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default=defaults.dataset, help="any train.py --dataset")
    parser.add_argument("--data_dir", help="IDX release folder (train.py --data_dir)")
    parser.add_argument("--samples_per_class", type=int, nargs="+", default=defaults.samples_per_class)
    parser.add_argument("--epochs", type=int, nargs="+", default=defaults.epochs, help="the budget of each size")
    parser.add_argument("--seeds", type=int, nargs="+", default=defaults.seeds)
    parser.add_argument("--few_seeds", type=int, nargs="+", default=defaults.few_seeds,
                        help="seeds of the equal-compute ViT and the ablation")
    parser.add_argument("--arms", nargs="+", default=defaults.arms)
    parser.add_argument("--grid_samples_per_class", type=int, default=defaults.grid_samples_per_class)
    parser.add_argument("--grid_learning_rates", type=float, nargs="+", default=defaults.grid_learning_rates)
    parser.add_argument("--grid_epochs", type=int, help="the grid's budget (default: its size's); keep it when "
                        "that size's budget doubles after the grid")
    parser.add_argument("--plateau_samples_per_class", type=int, nargs="*", default=defaults.plateau_samples_per_class)
    parser.add_argument("--validation_samples_per_class", type=int, default=defaults.validation_samples_per_class)
    parser.add_argument("--global_batch_size", type=int, default=defaults.global_batch_size)
    parser.add_argument("--device", choices=("cpu", "cuda"), default=defaults.device)
    parser.add_argument("--jobs", type=int, default=defaults.jobs, help="runs at a time")
    parser.add_argument("--threads", type=int, default=defaults.threads, help="torch threads per run")
    parser.add_argument("--results_dir", default=defaults.results_dir)
    parser.add_argument("--outputs_dir", default=defaults.outputs_dir, help="where the runs' model folders go")
    parser.add_argument("--commit_records", action="store_true", help="git-commit each record and log when written")
    parser.add_argument("--allow_dirty", action="store_true", help="run with uncommitted training code (marked)")
    parser.add_argument("--finish_by", help="start only runs expected to end before this UTC time (ISO 8601), "
                        "e.g. when the machine goes away then")
    parser.add_argument("--only", nargs="+", default=[],
                        help="train only these runs of the plan (by name), in this order, whatever --finish_by says")
    parser.add_argument("--allow_mixed_commits", action="store_true",
                        help="aggregate records of different model or training code")
    parser.add_argument("--quick", action="store_true", help="digits, tiny budgets: a few minutes on a CPU")
    parser.add_argument("--aggregate_only", action="store_true", help="rebuild the tables and plots, train nothing")
    args, extra = parser.parse_known_args(argv)
    values = {name: getattr(args, name) for name in asdict(defaults) if hasattr(args, name)}
    if args.quick:
        given = {name for name in values if f"--{name}" in (argv if argv is not None else sys.argv[1:])}
        values.update({name: value for name, value in QUICK.items() if name not in given})
    settings = StudySettings(**{**values, "extra_args": extra})
    return settings, args


def run(argv: list[str] | None = None) -> list[dict]:
    settings, args = parse_args(argv)
    if args.aggregate_only:
        from benchmarks.study_report import write_report

        records = read_records(settings.results_dir)
        write_report(records, settings, allow_mixed_commits=args.allow_mixed_commits)
    else:
        records = run_study(settings)
    print(f"{len(records)} run(s); report: {os.path.join(settings.results_dir, 'results.md')}")
    return records


def main(argv: list[str] | None = None) -> int:
    """The command: `run`, with a setting that cannot work reported in one line and exit code 2."""
    return run_command(run, "data_efficiency.py", argv)


if __name__ == "__main__":
    sys.exit(main())

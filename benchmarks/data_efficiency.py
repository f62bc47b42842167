#!/usr/bin/env python
"""Data efficiency: DEMS-ViT against a ViT of the same width and depth, at several training-set sizes.

Every run is a plain `train.py` run (so any of them can be rerun by hand): a class-balanced subset of the train
split, the same recipe for every arm, evaluated on the whole held-out split at half and at the full budget. The
budget of a size is counted in images seen (epochs = images seen / subset size), so that small subsets are not
starved. Arms:

    dems            DEMS-ViT with the recipe's decaying augmentation schedule
    vit             transformers' ViTForImageClassification matched to it (--architecture vit)
    dems-constant   DEMS-ViT with the augmentation at p0 throughout, no decay (at the smallest and largest size)

Each run writes `runs/<name>.json` under --results_dir as soon as it ends; a rerun skips finished runs, so the
study resumes where it stopped, across sessions. `--aggregate_only` rebuilds the table (`results.md`) and the plot
(`top1_vs_size.png`) from whatever runs exist.

    # the committed Fashion-MNIST study (CPU, two single-thread trainings at a time)
    HF_HUB_OFFLINE=1 python benchmarks/data_efficiency.py --jobs 2
    # a few minutes on scikit-learn's digits
    python benchmarks/data_efficiency.py --quick --results_dir /tmp/quick
    # CIFAR100 at the reference's scale on a GPU: tiny-32 as the reference builds it, longer budgets
    python benchmarks/data_efficiency.py --dataset cifar100 --model_preset tiny-32 --config_overrides "" \
        --samples_per_class 5 25 100 500 --images_seen 2000000 --global_batch_size 256 --learning_rate 5e-4 \
        --device cuda --jobs 1 --threads 8 --results_dir benchmarks/results/cifar100
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
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
STUDY_MODEL = (
    "image_size=32,patch_size=4,hidden_size=64,num_hidden_layers=6,num_attention_heads=2,merge_layers=[3,5],"
    "num_merged_tokens=[64,64]"
)
ARMS = ("dems", "vit", "dems-constant")
ARM_FLAGS = {
    "dems": [],
    "vit": ["--architecture", "vit"],
    "dems-constant": ["--augmentation_decay", "false"],
}
ARM_LABELS = {
    "dems": "DEMS-ViT",
    "vit": "ViT (DeiT-style)",
    "dems-constant": "DEMS-ViT, no augmentation decay",
}


@dataclass
class RunSpec:
    arm: str
    samples_per_class: int
    seed: int
    epochs: int
    warmup_epochs: int

    @property
    def name(self) -> str:
        return f"{self.arm}-k{self.samples_per_class}-s{self.seed}"


@dataclass
class StudySettings:
    dataset: str = "fashion_mnist"
    data_dir: str | None = None
    train_dir: str | None = None
    model_preset: str | None = None
    config_overrides: str = STUDY_MODEL
    samples_per_class: list[int] = field(default_factory=lambda: [60, 150, 600, 1500])
    images_seen: list[int] = field(default_factory=lambda: [90_000, 120_000, 180_000, 240_000])
    seeds: list[int] = field(default_factory=lambda: [0, 1])
    arms: list[str] = field(default_factory=lambda: list(ARMS))
    global_batch_size: int = 32
    learning_rate: float = 1e-3
    warmup_fraction: float = 0.05
    drop_path_rate: float = 0.0
    mixup_cutmix: bool = False
    device: str = "cpu"
    jobs: int = 2
    threads: int = 1
    results_dir: str = "benchmarks/results/fashion_mnist"
    outputs_dir: str = "outputs/data_efficiency"
    max_eval_samples: int | None = None
    extra_args: list[str] = field(default_factory=list)


QUICK = {
    "dataset": "digits",
    "config_overrides": "",
    "samples_per_class": [5, 20],
    "images_seen": [800],
    "seeds": [0],
    "global_batch_size": 16,
    "learning_rate": 1e-3,
}


def check_settings(settings: StudySettings) -> None:
    if not settings.samples_per_class or min(settings.samples_per_class) < 1:
        raise UserInputError(f"--samples_per_class={settings.samples_per_class} must be positive counts.")
    if len(settings.images_seen) not in (1, len(settings.samples_per_class)):
        raise UserInputError(
            f"--images_seen has {len(settings.images_seen)} values; give one for every size "
            f"({len(settings.samples_per_class)}) or one for all."
        )
    if min(settings.images_seen) < 1:
        raise UserInputError(f"--images_seen={settings.images_seen} must be positive.")
    unknown = [arm for arm in settings.arms if arm not in ARMS]
    if unknown:
        raise UserInputError(f"--arms: {unknown} are not arms; choose from {ARMS}.")
    if not 0 <= settings.warmup_fraction < 1:
        raise UserInputError(f"--warmup_fraction={settings.warmup_fraction} must be in [0, 1).")
    if settings.jobs < 1 or settings.threads < 1:
        raise UserInputError(f"--jobs={settings.jobs} and --threads={settings.threads} must be at least 1.")


def plan_runs(settings: StudySettings, num_classes: int) -> list[RunSpec]:
    """Seed by seed, size by size: a study stopped early still holds whole comparisons. A subset holds
    samples_per_class x num_classes images."""
    sizes = sorted(settings.samples_per_class)
    if len(settings.images_seen) == 1:
        budgets = dict.fromkeys(sizes, settings.images_seen[0])
    else:
        budgets = dict(zip(settings.samples_per_class, settings.images_seen, strict=True))
    runs = []
    for seed in settings.seeds:
        for k in sizes:
            for arm in settings.arms:
                if arm == "dems-constant" and k not in (sizes[0], sizes[-1]):
                    continue  # the schedule ablation: smallest and largest size only
                epochs = max(1, round(budgets[k] / k / num_classes))
                warmup = min(round(settings.warmup_fraction * epochs), epochs - 1)
                runs.append(RunSpec(arm, k, seed, epochs, warmup))
    return runs


def load_study_data(settings: StudySettings):
    """The data as train.py will load it; loading it here first also fills the `datasets` cache once, before the
    parallel runs read it."""
    from dems_training.data_sets import load_data

    return load_data(dataset=settings.dataset, data_dir=settings.data_dir, train_dir=settings.train_dir)


def train_command(settings: StudySettings, run: RunSpec, output_dir: str) -> list[str]:
    command = [
        sys.executable, "train.py",  # run with the repository as the working directory
        "--dataset", settings.dataset,
        "--output_dir", output_dir,
        "--train_samples_per_class", str(run.samples_per_class),
        "--num_train_epochs", str(run.epochs),
        "--warmup_epochs", str(run.warmup_epochs),
        "--global_batch_size", str(settings.global_batch_size),
        "--learning_rate", str(settings.learning_rate),
        "--drop_path_rate", str(settings.drop_path_rate),
        *([] if settings.mixup_cutmix else ["--mixup_alpha", "0", "--cutmix_alpha", "0"]),
        "--seed", str(run.seed),
        # held-out top-1 at half the budget (and at the end); no checkpoints: a stopped run is simply rerun
        "--eval_strategy", "steps", "--eval_steps", "0.5", "--save_strategy", "no",
        "--report_to", "none", "--dataloader_num_workers", "0", "--disable_tqdm", "true",
    ]
    for flag, value in (("--data_dir", settings.data_dir), ("--train_dir", settings.train_dir),
                        ("--model_preset", settings.model_preset), ("--max_eval_samples", settings.max_eval_samples)):
        if value is not None:
            command += [flag, str(value)]
    if settings.config_overrides:
        command += ["--config_overrides", settings.config_overrides]
    if settings.device == "cpu":
        command += ["--use_cpu", "true"]
    return command + ARM_FLAGS[run.arm] + list(settings.extra_args)


def model_cost(output_dir: str) -> dict:
    """Parameters and multiply-accumulates per image of the trained model (torch's FLOP counter, 2 FLOPs a MAC)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import AutoModelForImageClassification

    import modeling_dems  # noqa: F401  (registers DEMS with the Auto classes)

    # eager attention: its products are what the FLOP counter sees (fused CPU kernels may go uncounted)
    model = AutoModelForImageClassification.from_pretrained(output_dir, attn_implementation="eager").eval()
    config = model.config
    pixels = torch.zeros(1, config.num_channels, config.image_size, config.image_size)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(pixel_values=pixels)
    return {"num_parameters": sum(p.numel() for p in model.parameters()),
            "gmacs_per_image": counter.get_total_flops() / 2 / 1e9}


def eval_at_half(output_dir: str, max_steps: int) -> dict:
    with open(os.path.join(output_dir, "trainer_state.json"), encoding="utf-8") as f:
        history = json.load(f)["log_history"]
    evals = [entry for entry in history if "eval_top1_accuracy" in entry and entry["step"] < max_steps]
    if not evals:
        return {}
    first = evals[0]
    return {"half_step": first["step"], "top1_half": first["eval_top1_accuracy"],
            "top5_half": first["eval_top5_accuracy"]}


def run_one(settings: StudySettings, run: RunSpec, data_sizes: dict, log) -> dict:
    """Train one run; `data_sizes` holds the whole train split, the held-out images and the number of classes."""
    output_dir = os.path.join(settings.outputs_dir, settings.dataset, run.name)
    if os.path.isdir(output_dir):
        # The study's own folder of a run that stopped before its result was written: start it again.
        log(f"{run.name}: removing the unfinished run's folder {output_dir}")
        shutil.rmtree(output_dir)
    os.makedirs(os.path.dirname(output_dir), exist_ok=True)
    command = train_command(settings, run, output_dir)
    env = {**os.environ, "OMP_NUM_THREADS": str(settings.threads), "MKL_NUM_THREADS": str(settings.threads)}
    log_path = os.path.join(settings.results_dir, "logs", run.name + ".log")
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    start = time.time()
    with open(log_path, "w", encoding="utf-8") as log_file:
        returncode = subprocess.call(command, stdout=log_file, stderr=subprocess.STDOUT, env=env, cwd=REPO)
    wall = time.time() - start
    if returncode != 0:
        raise RuntimeError(f"{run.name}: train.py exited with {returncode}; see {log_path}")
    with open(os.path.join(output_dir, "all_results.json"), encoding="utf-8") as f:
        results = json.load(f)
    with open(os.path.join(output_dir, "trainer_state.json"), encoding="utf-8") as f:
        max_steps = json.load(f)["max_steps"]
    subset = run.samples_per_class * data_sizes["classes"]
    record = {
        **asdict(run),
        "name": run.name,
        "dataset": settings.dataset,
        "train_size": subset,
        "train_fraction": subset / data_sizes["train"],
        "images_seen": subset * run.epochs,
        "global_batch_size": settings.global_batch_size,
        "learning_rate": settings.learning_rate,
        "top1": results["eval_top1_accuracy"],
        "top5": results["eval_top5_accuracy"],
        "eval_images": data_sizes["eval"],
        **eval_at_half(output_dir, max_steps),
        "wall_clock_s": wall,
        "train_images_per_s": results.get("train_samples_per_second"),
        **model_cost(output_dir),
        "output_dir": output_dir,
        "command": command[1:],
    }
    return record


def run_study(settings: StudySettings, log=print) -> list[dict]:
    check_settings(settings)
    data = load_study_data(settings)
    data_sizes = {
        "train": len(data.train),
        "eval": min(len(data.eval), settings.max_eval_samples or len(data.eval)),
        "classes": len(data.class_names),
    }
    runs_dir = os.path.join(settings.results_dir, "runs")
    os.makedirs(runs_dir, exist_ok=True)
    planned = plan_runs(settings, data_sizes["classes"])
    todo = [run for run in planned if not os.path.exists(os.path.join(runs_dir, run.name + ".json"))]
    log(f"{len(todo)} run(s) to do; results in {runs_dir}")

    def work(run: RunSpec):
        record = run_one(settings, run, data_sizes, log)
        # Written at once, whole (write then rename): a stopped study keeps every finished run.
        path = os.path.join(runs_dir, run.name + ".json")
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            json.dump(record, f, indent=1)
        os.replace(path + ".tmp", path)
        log(f"{run.name}: top-1 {100 * record['top1']:.2f}% (half budget "
            f"{100 * record.get('top1_half', float('nan')):.2f}%), {record['wall_clock_s']:.0f} s")
        return record

    with ThreadPoolExecutor(max_workers=settings.jobs) as pool:
        for _ in pool.map(work, todo):
            pass
    records = read_records(settings.results_dir)
    aggregate(records, settings.results_dir)
    return records


def read_records(results_dir: str) -> list[dict]:
    runs_dir = os.path.join(results_dir, "runs")
    records = []
    for name in sorted(os.listdir(runs_dir)) if os.path.isdir(runs_dir) else []:
        if name.endswith(".json"):
            with open(os.path.join(runs_dir, name), encoding="utf-8") as f:
                records.append(json.load(f))
    return records


def summarise(values: list[float]) -> tuple[float, float, float]:
    """Mean, lowest and highest."""
    return sum(values) / len(values), min(values), max(values)


def grouped(records: list[dict], key: str) -> dict[tuple[str, int], list[float]]:
    groups: dict[tuple[str, int], list[float]] = {}
    for record in records:
        if record.get(key) is not None:
            groups.setdefault((record["arm"], record["train_size"]), []).append(100 * record[key])
    return groups


def results_table(records: list[dict], key: str = "top1") -> str:
    """Markdown: one row per arm, one column per training-set size, 'mean (min-max, n runs)'."""
    groups = grouped(records, key)
    sizes = sorted({size for _, size in groups})
    fractions = {r["train_size"]: r["train_fraction"] for r in records}
    arms = [arm for arm in ARMS if any(a == arm for a, _ in groups)]
    header = "| arm | " + " | ".join(f"{s:,} ({100 * fractions[s]:.3g}%)" for s in sizes) + " |"
    lines = [header, "|---|" + "---|" * len(sizes)]
    for arm in arms:
        cells = []
        for size in sizes:
            values = groups.get((arm, size))
            if not values:
                cells.append("")
                continue
            mean, low, high = summarise(values)
            cells.append(f"{mean:.2f} ({low:.2f}-{high:.2f}, n={len(values)})")
        lines.append(f"| {ARM_LABELS[arm]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def gap_table(records: list[dict]) -> str:
    """DEMS minus ViT per seed at each size (paired: same subset, same seed)."""
    top1 = {(r["arm"], r["train_size"], r["seed"]): 100 * r["top1"] for r in records}
    lines = ["| training images | DEMS - ViT, top-1 points per seed | mean |", "|---|---|---|"]
    for size in sorted({r["train_size"] for r in records}):
        gaps = [top1[("dems", size, s)] - top1[("vit", size, s)]
                for (_, sz, s) in sorted(k for k in top1 if k[0] == "dems" and k[1] == size)
                if ("vit", size, s) in top1]
        if gaps:
            lines.append(f"| {size:,} | {', '.join(f'{g:+.2f}' for g in gaps)} | {sum(gaps) / len(gaps):+.2f} |")
    return "\n".join(lines)


def plot(records: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    groups = grouped(records, "top1")
    figure, axes = plt.subplots(figsize=(6.4, 4.2))
    for arm in ARMS:
        points = sorted((size, summarise(v)) for (a, size), v in groups.items() if a == arm)
        if not points:
            continue
        sizes = [size for size, _ in points]
        means = [mean for _, (mean, _, _) in points]
        errors = [[mean - low for _, (mean, low, _) in points], [high - mean for _, (mean, _, high) in points]]
        axes.errorbar(sizes, means, yerr=errors, marker="o", capsize=3, label=ARM_LABELS[arm])
    axes.set_xscale("log")
    axes.set_xlabel("training images (class-balanced subset, log scale)")
    axes.set_ylabel("held-out top-1 accuracy (%)")
    dataset = records[0]["dataset"] if records else ""
    axes.set_title(f"{dataset}: mean over seeds, bars from lowest to highest")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def aggregate(records: list[dict], results_dir: str) -> None:
    if not records:
        return
    first = records[0]
    cost = {}
    for record in records:
        cost.setdefault(record["arm"], (record["num_parameters"], record["gmacs_per_image"]))
    budget_rows = sorted({(r["train_size"], r["epochs"], r["images_seen"]) for r in records})
    text = [
        f"# Data efficiency on {first['dataset']}",
        "",
        "Held-out top-1 (%) at the full budget: mean over seeds (lowest-highest, number of runs).",
        "",
        results_table(records, "top1"),
        "",
        "At half the budget:",
        "",
        results_table(records, "top1_half"),
        "",
        "DEMS minus ViT, paired by seed (same subset):",
        "",
        gap_table(records),
        "",
        "| arm | parameters | GMACs per image |",
        "|---|---|---|",
        *[f"| {ARM_LABELS[arm]} | {params:,} | {gmacs:.4f} |" for arm, (params, gmacs) in cost.items()],
        "",
        "| training images | epochs | images seen |",
        "|---|---|---|",
        *[f"| {size:,} | {epochs} | {seen:,} |" for size, epochs, seen in budget_rows],
        "",
    ]
    with open(os.path.join(results_dir, "results.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(text))
    plot(records, os.path.join(results_dir, "top1_vs_size.png"))


def keep_best(records: list[dict], results_dir: str, arm: str = "dems") -> str | None:
    """Copy the run of `arm` with the highest held-out top-1 (model, config, processor, card, results) to
    results_dir/best_<arm>."""
    candidates = [r for r in records if r["arm"] == arm and os.path.isdir(r["output_dir"])]
    if not candidates:
        return None
    best = max(candidates, key=lambda r: r["top1"])
    target = os.path.join(results_dir, f"best_{arm}")
    if os.path.isdir(target):
        shutil.rmtree(target)  # the study's own copy, replaced by the current best
    shutil.copytree(best["output_dir"], target, ignore=shutil.ignore_patterns("runs", "training_args.bin"))
    return target


def parse_args(argv: list[str] | None = None) -> tuple[StudySettings, argparse.Namespace]:
    defaults = StudySettings()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default=defaults.dataset, help="any train.py --dataset")
    parser.add_argument("--data_dir", help="IDX release folder (train.py --data_dir)")
    parser.add_argument("--train_dir", help="image folder (train.py --train_dir)")
    parser.add_argument("--model_preset", help="train.py --model_preset (default: the data set's)")
    parser.add_argument("--config_overrides", default=defaults.config_overrides,
                        help="DEMS config overrides; the ViT is matched to the result (default: the study's model)")
    parser.add_argument("--samples_per_class", type=int, nargs="+", default=defaults.samples_per_class)
    parser.add_argument("--images_seen", type=int, nargs="+", default=defaults.images_seen,
                        help="training budget in images, one per size or one for all")
    parser.add_argument("--seeds", type=int, nargs="+", default=defaults.seeds)
    parser.add_argument("--arms", nargs="+", default=defaults.arms, choices=ARMS)
    parser.add_argument("--global_batch_size", type=int, default=defaults.global_batch_size)
    parser.add_argument("--learning_rate", type=float, default=defaults.learning_rate, help="peak learning rate")
    parser.add_argument("--warmup_fraction", type=float, default=defaults.warmup_fraction,
                        help="warm-up epochs as a fraction of each run's epochs")
    parser.add_argument("--drop_path_rate", type=float, default=defaults.drop_path_rate,
                        help="0: transformers' ViT has no stochastic depth, so neither arm gets it")
    parser.add_argument("--mixup_cutmix", action="store_true",
                        help="keep the recipe's mixup/cutmix (off by default: CPU budgets are too short for it)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default=defaults.device)
    parser.add_argument("--jobs", type=int, default=defaults.jobs, help="runs at a time")
    parser.add_argument("--threads", type=int, default=defaults.threads, help="torch threads per run")
    parser.add_argument("--results_dir", default=defaults.results_dir)
    parser.add_argument("--outputs_dir", default=defaults.outputs_dir, help="where the runs' model folders go")
    parser.add_argument("--max_eval_samples", type=int, help="evaluate on fewer held-out images (quick checks)")
    parser.add_argument("--quick", action="store_true",
                        help="digits, two sizes, one seed, a tiny budget: a few minutes on a CPU")
    parser.add_argument("--aggregate_only", action="store_true", help="rebuild the table and plot, train nothing")
    parser.add_argument("--keep_best", action="store_true", help="copy the best DEMS run to results_dir/best_dems")
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
        records = read_records(settings.results_dir)
        aggregate(records, settings.results_dir)
    else:
        records = run_study(settings)
    if args.keep_best:
        print(f"best DEMS run kept in {keep_best(records, settings.results_dir)}")
    print(f"{len(records)} run(s); table: {os.path.join(settings.results_dir, 'results.md')}")
    return records


def main(argv: list[str] | None = None) -> int:
    """The command: `run`, with a setting that cannot work reported in one line and exit code 2."""
    return run_command(run, "data_efficiency.py", argv)


if __name__ == "__main__":
    sys.exit(main())

"""The data-efficiency study's report, from its records: `results.md` (models, learning-rate choice, plateau check,
test top-1 per arm and size, paired differences) and two plots (learning curves, top-1 against size)."""

import os
import statistics

from dems_training import UserInputError


def check_one_commit(records: list[dict], allow_mixed_commits: bool) -> str:
    """The commits the records name, when their model and training code are the same; records of different training
    code are refused unless allowed."""
    from benchmarks.data_efficiency import same_training_code

    commits = sorted({record["commit"] for record in records})
    kinds: list[str] = []  # one commit per distinct training code
    for commit in commits:
        if not any(same_training_code(kind, commit) for kind in kinds):
            kinds.append(commit)
    if len(kinds) > 1 and not allow_mixed_commits:
        counts = ", ".join(f"{c[:12]}: {sum(r['commit'] == c for r in records)}" for c in commits)
        raise UserInputError(
            f"the records were made by {len(kinds)} different versions of the training code ({counts}); a table "
            "mixing them would compare different code. Rerun the odd ones at one commit, or pass "
            "--allow_mixed_commits."
        )
    if len(commits) > 1 and len(kinds) == 1:
        return ", ".join(commits) + " (the same model and training code)"
    return ", ".join(commits)


def mean_sd(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.2f} ± {sd:.2f} (n={len(values)})"


class StudyRecords:
    """The records sorted into the study's parts, given the settings that planned them."""

    def __init__(self, records: list[dict], settings):
        from benchmarks.data_efficiency import ARMS, base_epochs, chosen_learning_rates, grid_budget

        self.settings, self.arms = settings, ARMS
        self.by_name = {record["name"]: record for record in records}
        self.epochs = base_epochs(settings)
        self.grid_epochs = grid_budget(settings)
        self.rates = chosen_learning_rates(settings, self.by_name) or {}

    def main(self) -> list[dict]:
        """The comparison's runs: each size's budget, each arm's chosen rate."""
        return [r for r in self.by_name.values()
                if r["arm"] in self.rates and r["peak_lr"] == self.rates[r["arm"]]
                and r["epochs"] == self.epochs.get(r["samples_per_class"])]

    def test_top1(self) -> dict[tuple[str, int], dict[int, float]]:
        table: dict[tuple[str, int], dict[int, float]] = {}
        for r in self.main():
            table.setdefault((r["arm"], r["train_images"]), {})[r["seed"]] = 100 * r["test_top1"]
        return table


def models_table(records: list[dict], arms) -> list[str]:
    lines = ["| arm | parameters | GMACs per image | training images/s (one thread) |", "|---|---|---|---|"]
    for name, arm in arms.items():
        mine = [r for r in records if r["arm"] == name]
        if mine:
            rates = [r["images_per_second"] for r in mine if r.get("images_per_second")]
            speed = f"{statistics.median(rates):.0f} (median of {len(rates)})" if rates else ""
            lines.append(f"| {arm.label} | {mine[0]['params']:,} | {mine[0]['gmacs_per_image']:.4f} | {speed} |")
    return lines


def grid_table(study: StudyRecords) -> list[str]:
    settings = study.settings
    k = settings.grid_samples_per_class
    rates = settings.grid_learning_rates
    lines = ["| arm | " + " | ".join(f"peak lr {rate:g}" for rate in rates) + " | chosen |",
             "|---|" + "---|" * (len(rates) + 1)]
    for name, arm in study.arms.items():
        if arm.rate_of is not None or name not in settings.arms:
            continue
        cells = []
        for rate in rates:
            record = next((r for r in study.by_name.values() if r["arm"] == name and r["samples_per_class"] == k
                           and r["seed"] == 0 and r["epochs"] == study.grid_epochs and r["peak_lr"] == rate), None)
            cells.append(f"{100 * record['val_top1']:.2f}" if record else "")
        chosen = f"{study.rates[name]:g}" if name in study.rates else "(grid unfinished)"
        if study.rates.get(name) in (min(rates), max(rates)):
            chosen += " (the grid's edge: a wider grid might choose otherwise)"
        lines.append(f"| {arm.label} | " + " | ".join(cells) + f" | {chosen} |")
    return lines


def plateau_table(study: StudyRecords) -> list[str]:
    """Every doubling that seed 0 of a plateau arm has run at its chosen rate: the check of each size's budget, and
    the failed checks of budgets it has doubled from (marked); a budget whose 2x run is missing shows as pending, or
    as not run where a smaller budget already showed the arm's plateau (`plateau_shown_at`)."""
    from benchmarks.data_efficiency import RunSpec, plateau_shown_at

    settings = study.settings
    lines = ["| arm | training images | epochs | validation top-1 | at 2x the epochs | change | plateau "
             "| test top-1, at the budget -> at 2x (not for choices) |",
             "|---|---|---|---|---|---|---|---|"]
    for k in sorted(settings.plateau_samples_per_class):
        for name in settings.plateau_arms:
            rate = study.rates.get(name)
            by_epochs = {r["epochs"]: r for r in study.by_name.values() if r["arm"] == name
                         and r["samples_per_class"] == k and r["seed"] == 0 and r["peak_lr"] == rate}
            for epochs, one in sorted(by_epochs.items()):
                two = by_epochs.get(2 * epochs)
                start = (f"| {study.arms[name].label} | {one['train_images']:,} | {epochs} | "
                         f"{100 * one['val_top1']:.2f} |")
                # shown so that a disagreement of the two splits is in view; the check itself reads validation only
                test = f"{100 * one['test_top1']:.2f}"
                if two is None:
                    if epochs == study.epochs.get(k):
                        shown = plateau_shown_at(settings, study.by_name, RunSpec(name, k, 0, epochs, rate))
                        lines.append(f"{start} (no 2x record yet) | | | {test} |" if shown is None else
                                     f"{start} not run: shown at {shown} -> {2 * shown} | | yes | {test} |")
                    continue
                change = 100 * (two["val_top1"] - one["val_top1"])
                verdict = "yes" if abs(change) < settings.plateau_tolerance else "**no**"
                if epochs < study.epochs.get(k, 0):
                    verdict += " (an earlier budget, doubled since)"
                lines.append(f"{start} {100 * two['val_top1']:.2f} | {change:+.2f} | {verdict} "
                             f"| {test} -> {100 * two['test_top1']:.2f} |")
    return lines


def results_table(study: StudyRecords) -> list[str]:
    table = study.test_top1()
    sizes = sorted({size for _, size in table})
    lines = ["| arm | " + " | ".join(f"{size:,}" for size in sizes) + " |", "|---|" + "---|" * len(sizes)]
    for name, arm in study.arms.items():
        cells = [mean_sd(list(table[(name, size)].values())) if (name, size) in table else "" for size in sizes]
        if any(cells):
            lines.append(f"| {arm.label} | " + " | ".join(cells) + " |")
    return lines


def paired_differences(study: StudyRecords, arm: str, other: str) -> list[str]:
    """`arm` minus `other` per size, paired by seed (the same subset, order and augmentation draws)."""
    table = study.test_top1()
    lines = [f"| training images | {study.arms[arm].label} minus {study.arms[other].label}, per seed | mean | "
             "wins |", "|---|---|---|---|"]
    for size in sorted({size for _, size in table}):
        mine, theirs = table.get((arm, size), {}), table.get((other, size), {})
        seeds = sorted(set(mine) & set(theirs))
        if not seeds:
            continue
        gaps = [mine[s] - theirs[s] for s in seeds]
        wins = sum(gap > 0 for gap in gaps)
        lines.append(f"| {size:,} | {', '.join(f'{g:+.2f} (seed {s})' for g, s in zip(gaps, seeds, strict=True))} | "
                     f"{statistics.mean(gaps):+.2f} | {wins} of {len(gaps)} |")
    return lines


def dropped_sizes_table(study: StudyRecords) -> list[str]:
    """The records, at the chosen rates, of training-set sizes the plan no longer holds (a size dropped when its
    budget outgrew the machine): kept in view, out of every other table, since no plateau was shown for them."""
    kept = set(study.settings.samples_per_class)
    dropped = [r for r in study.by_name.values() if r["samples_per_class"] not in kept
               and r["arm"] in study.rates and r["peak_lr"] == study.rates[r["arm"]]]
    if not dropped:
        return []
    order = list(study.arms)
    lines = ["## Sizes dropped from the plan: their records at the chosen rates (no plateau shown)", "",
             "| arm | training images | epochs | seed | validation top-1 | test top-1 |", "|---|---|---|---|---|---|"]
    for r in sorted(dropped, key=lambda r: (r["train_images"], order.index(r["arm"]), r["epochs"], r["seed"])):
        lines.append(f"| {study.arms[r['arm']].label} | {r['train_images']:,} | {r['epochs']} | {r['seed']} | "
                     f"{100 * r['val_top1']:.2f} | {100 * r['test_top1']:.2f} |")
    return [*lines, ""]


def budget_table(study: StudyRecords, records: list[dict]) -> list[str]:
    lines = ["| training images | epochs | images seen |", "|---|---|---|"]
    for k, epochs in sorted(study.epochs.items()):
        size = next((r["train_images"] for r in records if r["samples_per_class"] == k), None)
        if size is not None:
            lines.append(f"| {size:,} | {epochs} | {size * epochs:,} |")
    return lines


def plot_curves(study: StudyRecords, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    runs = study.main()
    sizes = sorted({r["train_images"] for r in runs})
    if not sizes:
        return
    figure, axes = plt.subplots(1, len(sizes), figsize=(4.2 * len(sizes), 3.8), squeeze=False)
    for axis, size in zip(axes[0], sizes, strict=True):
        for index, (name, arm) in enumerate(study.arms.items()):
            curves = [r["curve"] for r in runs if r["arm"] == name and r["train_images"] == size]
            for number, curve in enumerate(curves):
                axis.plot([p["images_seen"] / 1e6 for p in curve], [100 * p["val_top1"] for p in curve],
                          color=f"C{index}", alpha=0.8, linewidth=1.2, label=arm.label if number == 0 else None)
        axis.set_title(f"{size:,} training images")
        axis.set_xlabel("images seen (millions)")
        axis.grid(True, alpha=0.3)
    axes[0][0].set_ylabel("validation top-1 (%), one line per seed")
    axes[0][0].legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_sizes(study: StudyRecords, path: str, dataset: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = study.test_top1()
    figure, axis = plt.subplots(figsize=(6.4, 4.2))
    for name, arm in study.arms.items():
        sizes = sorted(size for a, size in table if a == name)
        if not sizes:
            continue
        values = [list(table[(name, size)].values()) for size in sizes]
        means = [statistics.mean(v) for v in values]
        sds = [statistics.stdev(v) if len(v) > 1 else 0.0 for v in values]
        axis.errorbar(sizes, means, yerr=sds, marker="o", capsize=3, label=arm.label)
    axis.set_xscale("log")
    axis.set_xlabel("training images (class-balanced subset, log scale)")
    axis.set_ylabel("test top-1 (%)")
    axis.set_title(f"{dataset}: mean over seeds, bars ± one standard deviation")
    axis.grid(True, which="both", alpha=0.3)
    if axis.get_legend_handles_labels()[0]:
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def write_report(records: list[dict], settings, allow_mixed_commits: bool = False) -> str | None:
    """Write results.md and the two plots into settings.results_dir; return the path of results.md."""
    if not records:
        return None
    commits = check_one_commit(records, allow_mixed_commits)
    study = StudyRecords(records, settings)
    hours = sum(r.get("wall_clock_s_last_process", 0) for r in records) / 3600
    dataset = records[0]["dataset"]
    text = [
        f"# Data efficiency on {dataset}, trained to a plateau",
        "",
        f"Training-code commit: {commits}. {len(records)} runs, {hours:.1f} hours of single-thread training "
        "(wall clock of the runs' last processes).",
        "",
        "## Models",
        "",
        *models_table(records, study.arms),
        "",
        f"## Learning rate: validation top-1 (%) at {settings.grid_samples_per_class} images per class, seed 0",
        "",
        *grid_table(study),
        "",
        f"## Plateau check: seed 0, validation top-1 (%) at the budget and at twice it (< "
        f"{settings.plateau_tolerance:g} points: a plateau)",
        "",
        *plateau_table(study),
        "",
        "## Test top-1 (%): mean ± standard deviation over seeds",
        "",
        *results_table(study),
        "",
        "## Paired by seed (test top-1 points)",
        "",
        *paired_differences(study, "dems", "vit"),
        "",
        *paired_differences(study, "dems", "vit-wide"),
        "",
        *paired_differences(study, "dems", "dems-constant"),
        "",
        "## Budgets",
        "",
        *budget_table(study, records),
        "",
        *dropped_sizes_table(study),
    ]
    os.makedirs(settings.results_dir, exist_ok=True)
    path = os.path.join(settings.results_dir, "results.md")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(text))
    plot_curves(study, os.path.join(settings.results_dir, "learning_curves.png"))
    plot_sizes(study, os.path.join(settings.results_dir, "top1_vs_size.png"), dataset)
    return path

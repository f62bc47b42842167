"""Before and after, in one run: throughput.py's inference forward and training step for the model code of another
revision (the baseline) and of this checkout (the candidate), timed in one process, interleaved, on the same
weights and batch.

    # main's model code against this checkout's, tiny-32, batch 32, 30 pairs, iterations disturbed by other
    # processes discarded and repeated
    python benchmarks/compare_revisions.py --baseline main --presets tiny-32 --iters 30 --max_foreign_load 0.05

The baseline is a git revision of this repository (its `modeling_dems/modeling_dems.py` and
`configuration_dems.py`, read with `git show`) or a folder holding a `modeling_dems/` package (another checkout). It
is imported under another package name, so both versions live side by side. Before timing, the baseline gets the
candidate's weights and both must give the same logits on the batch (`torch.equal`): a speed comparison of models
that compute something else would mean nothing.

Each timed pair runs baseline and candidate back to back, in alternating order, so that a slow moment of the
machine falls on both alike; the report gives each side's median and the median of the per-pair ratios
(candidate / baseline: below 1 is faster) with their 10th-90th percentiles. With `--max_foreign_load`, a pair
during which other processes took more than that share of the CPUs is discarded and run again (see
`harness.ForeignLoad`).
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch


if not __package__:  # run as `python benchmarks/compare_revisions.py`: the repository root holds the packages
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.harness import (  # noqa: E402
    DTYPES,
    BenchmarkSettings,
    Runner,
    apply_process_settings,
    build_model,
    is_quiet,
    make_batch,
    timed,
)
from configuration_dems import DEMS_PRESETS  # noqa: E402
from dems_training import (
    UserInputError,  # noqa: E402
    run_command,  # noqa: E402
)


REPO = Path(__file__).resolve().parent.parent
MODEL_FILES = ("modeling_dems.py", "configuration_dems.py")  # the model code: self-contained, shipped as remote code
BASELINE_PACKAGE = "dems_baseline_model"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n\n".join(__doc__.split("\n\n")[1:]),
    )
    parser.add_argument("--baseline", default="main", help="git revision or checkout folder (default: main)")
    parser.add_argument("--presets", nargs="+", default=["tiny-32"], choices=sorted(DEMS_PRESETS))
    parser.add_argument("--attn_implementation", nargs="+", default=["sdpa"], choices=["sdpa", "eager"])
    parser.add_argument("--override", nargs="*", default=[], metavar="KEY=VALUE",
                        help="config fields of every preset, VALUE as JSON (as throughput.py)")
    parser.add_argument("--num_labels", type=int, default=10)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="fp32", choices=sorted(DTYPES))
    parser.add_argument("--compile", action="store_true", help="torch.compile both models")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU)")
    parser.add_argument("--clock", default="wall", choices=["wall", "cpu"], help="as throughput.py's --clock")
    parser.add_argument("--warmup", type=int, default=3, help="untimed pairs before timing (default 3)")
    parser.add_argument("--iters", type=int, default=20, help="timed pairs (default 20)")
    parser.add_argument("--max_foreign_load", type=float, default=None,
                        help="discard and repeat pairs during which other processes used more than this share")
    parser.add_argument("--max_attempts", type=int, default=5, help="with --max_foreign_load: at most this x iters")
    parser.add_argument("--skip_train", action="store_true", help="time the inference forward only")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    return parser.parse_args(argv)


def baseline_sources(baseline: str) -> tuple[dict[str, str], str]:
    """The baseline's model files {name: text} and a description of where they came from."""
    folder = Path(baseline)
    if folder.is_dir():
        package = folder / "modeling_dems"
        missing = [name for name in MODEL_FILES if not (package / name).is_file()]
        if missing:
            raise UserInputError(f"--baseline {baseline}: a folder must hold modeling_dems/{missing[0]} (a checkout)")
        return {name: (package / name).read_text(encoding="utf-8") for name in MODEL_FILES}, str(folder.resolve())
    sources = {}
    for name in MODEL_FILES:
        proc = subprocess.run(["git", "-C", str(REPO), "show", f"{baseline}:modeling_dems/{name}"],
                              capture_output=True, text=True)  # fmt: skip
        if proc.returncode != 0:
            reason = " ".join(proc.stderr.split()) or f"git exited with {proc.returncode}"
            raise UserInputError(
                f"--baseline {baseline} is neither a folder nor a git revision with modeling_dems/{name} ({reason})"
            )
        sources[name] = proc.stdout
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", baseline], capture_output=True, text=True)
    return sources, f"{baseline} ({commit.stdout.strip()})"


def import_baseline(sources: dict[str, str], folder: Path):
    """The baseline's modeling module, imported as `BASELINE_PACKAGE.modeling_dems` from `folder`. Its package has
    no `__init__` code: the project's registers the Auto classes, which the baseline must not take over."""
    package = folder / BASELINE_PACKAGE
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name, text in sources.items():
        (package / name).write_text(text, encoding="utf-8")
    # A baseline imported earlier in this process (another call) would be returned from the module cache.
    for name in [m for m in sys.modules if m == BASELINE_PACKAGE or m.startswith(f"{BASELINE_PACKAGE}.")]:
        del sys.modules[name]
    importlib.invalidate_caches()
    sys.path.insert(0, str(folder))
    try:
        return importlib.import_module(f"{BASELINE_PACKAGE}.modeling_dems")
    finally:
        sys.path.remove(str(folder))


class ModelRunner(Runner):
    """`Runner`'s training step and inference forward, on a model built elsewhere (here: the baseline's)."""

    def __init__(self, model, settings: BenchmarkSettings, batch):
        # Runner.__init__ is not called: it would build a model of this checkout's code.
        self.model = model.to(settings.torch_device)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-4, fused=True)
        self.forward = torch.compile(self.model, mode=settings.compile_mode) if settings.compile else self.model
        self.pixel_values, self.labels = batch
        self.device = settings.torch_device
        self.dtype = settings.torch_dtype


def build_pair(module, preset: str, attn_implementation: str, settings: BenchmarkSettings, batch):
    """(baseline runner, candidate runner) on the same weights, after checking that their logits are equal."""
    torch.manual_seed(settings.seed)
    candidate = build_model(preset, settings, attn_implementation)
    config = module.DemsConfig.from_preset(preset, num_labels=settings.num_labels, **settings.config_fields)
    baseline = module.DemsForImageClassification._from_config(config, attn_implementation=attn_implementation)
    baseline.load_state_dict(candidate.state_dict())
    baseline.to(settings.torch_device).eval()
    candidate.eval()
    with torch.inference_mode():
        same = torch.equal(baseline(batch[0]).logits, candidate(batch[0]).logits)
    if not same:
        raise UserInputError(
            f"{preset} {attn_implementation}: the baseline's logits differ from the candidate's on the same weights; "
            "their speeds would not compare the same computation"
        )
    return ModelRunner(baseline, settings, batch), ModelRunner(candidate, settings, batch)


def time_pairs(first, second, settings: BenchmarkSettings) -> dict:
    """Time `first` and `second` (zero-argument callables) back to back, alternating which runs first."""
    for _ in range(settings.warmup):
        first(), second()
    times: tuple[list[float], list[float]] = ([], [])
    discarded = 0
    attempts = settings.max_attempts if settings.max_foreign_load is not None else 1
    for index in range(settings.iters * attempts):
        order = (0, 1) if index % 2 == 0 else (1, 0)
        pair = {}
        quiet = True
        for side in order:
            seconds, load = timed((first, second)[side], settings.torch_device, settings.clock)
            pair[side] = seconds
            quiet = quiet and is_quiet(load, settings.max_foreign_load)
        if not quiet:
            discarded += 1
            continue
        times[0].append(pair[0])
        times[1].append(pair[1])
        if len(times[0]) == settings.iters:
            break
    if not times[0]:
        raise UserInputError(
            f"no pair ran under --max_foreign_load={settings.max_foreign_load} in {settings.iters * attempts} "
            "attempts: the machine is busy; run again when it is quiet, or raise the bound"
        )
    ratios = sorted(b / a for a, b in zip(*times, strict=True))
    return {
        "baseline_median_s": statistics.median(times[0]),
        "candidate_median_s": statistics.median(times[1]),
        "ratio_median": statistics.median(ratios),
        "ratio_p10": ratios[int(0.1 * (len(ratios) - 1))],
        "ratio_p90": ratios[int(round(0.9 * (len(ratios) - 1)))],
        "pairs": len(ratios),
        "discarded_pairs": discarded,
        "baseline_times_s": times[0],
        "candidate_times_s": times[1],
    }


def run(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    settings = BenchmarkSettings(
        num_labels=args.num_labels, batch_size=args.batch_size, config_overrides=tuple(args.override),
        device=args.device, dtype=args.dtype, compile=args.compile, seed=args.seed, threads=args.threads,
        clock=args.clock, warmup=args.warmup, iters=args.iters, max_foreign_load=args.max_foreign_load,
        max_attempts=args.max_attempts, skip_inference=False, skip_memory=True,
    )
    apply_process_settings(settings)
    sources, origin = baseline_sources(args.baseline)
    results = []
    with tempfile.TemporaryDirectory() as folder:
        module = import_baseline(sources, Path(folder))
        for preset in args.presets:
            batch = make_batch(preset, settings)
            for attn_implementation in args.attn_implementation:
                baseline, candidate = build_pair(module, preset, attn_implementation, settings, batch)
                result = {"preset": preset, "attn_implementation": attn_implementation, "logits_equal": True}
                result["inference"] = time_pairs(baseline.infer, candidate.infer, settings)
                if not args.skip_train:
                    result["train"] = time_pairs(baseline.train_step, candidate.train_step, settings)
                results.append(result)
                print(format_rows([result]), flush=True)
    report = {
        "environment": {
            "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "baseline": origin,
            "candidate": str(REPO),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "device": str(settings.torch_device),
            "batch_size": settings.batch_size,
            "clock": settings.clock,
        },
        "results": results,
    }
    print(f"\nbaseline {origin} vs candidate {REPO} (ratio = candidate / baseline time; < 1 is faster)")
    print(format_rows(results, header=True))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")
    return report


def format_rows(results: list[dict], header: bool = False) -> str:
    lines = []
    if header:
        lines.append(f"{'preset':<10} {'attn':<5} {'phase':<9} {'base ms':>9} {'cand ms':>9} {'ratio':>6} "
                     f"{'p10-p90':>13} {'pairs':>5}")
    for result in results:
        for phase in ("inference", "train"):
            if phase not in result:
                continue
            r = result[phase]
            lines.append(
                f"{result['preset']:<10} {result['attn_implementation']:<5} {phase:<9} "
                f"{r['baseline_median_s'] * 1e3:>9.2f} {r['candidate_median_s'] * 1e3:>9.2f} {r['ratio_median']:>6.3f} "
                f"{r['ratio_p10']:>6.3f}-{r['ratio_p90']:<6.3f} {r['pairs']:>5}"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    return run_command(run, "compare_revisions.py", argv)


if __name__ == "__main__":
    sys.exit(main())

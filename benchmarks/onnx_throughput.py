"""Inference throughput on the CPU: ONNX Runtime against PyTorch, for the same DEMS-ViT, side by side in one run.

It builds the preset's classifier (random weights: the speed does not depend on them), exports it the way
`export_onnx.py` does (`dems_training.hub.onnx_export`, checked under ONNX Runtime to 1e-4 at batch 1 and 8 before
anything is timed), and for each batch size times PyTorch's eager forward (eval mode, `torch.inference_mode`, fp32)
and ONNX Runtime's CPU session on the same pixels. The two are timed in alternation, one iteration each in turn, so
that a neighbour's load slows both alike; both use the same number of threads. It prints a Markdown table (median
milliseconds per batch, images per second, the ratio) and can write the figures as JSON.

    python benchmarks/onnx_throughput.py                        # tiny-32, batch 1 and 64, as in RESULTS.md
    python benchmarks/onnx_throughput.py --json onnx.json --threads 2 --iters 30

Each figure is the median over `--iters` timed iterations after `--warmup` untimed ones; the foreign load (the CPU
time other processes took while it ran, see benchmarks/harness.py) is reported next to it: on a busy machine the
figures mean little.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import tempfile
from pathlib import Path

import torch


if not __package__:  # run as `python benchmarks/onnx_throughput.py`: the repository root holds the packages
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.harness import timed  # noqa: E402
from configuration_dems import DEMS_PRESETS, DemsConfig  # noqa: E402
from dems_training import (
    UserInputError,  # noqa: E402
    run_command,  # noqa: E402
)
from dems_training.hub.onnx_export import (  # noqa: E402
    INPUT_NAME,
    OUTPUT_NAME,
    check_onnx,
    export_onnx,
    onnx_session,
    require_onnx_packages,
)
from modeling_dems.modeling_dems import DemsForImageClassification  # noqa: E402


PROG = "onnx_throughput.py"
CPU = torch.device("cpu")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", default="tiny-32", help=f"one of {', '.join(DEMS_PRESETS)} (default tiny-32)")
    parser.add_argument("--num_labels", type=int, default=10, help="classes of the head (default 10)")
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[1, 64], help="default: 1 64")
    parser.add_argument("--attn_implementation", default="sdpa", choices=["sdpa", "eager"], help="PyTorch's side")
    parser.add_argument(
        "--threads", type=int, default=None, help="threads of both PyTorch and ONNX Runtime (default: torch's)"
    )
    parser.add_argument("--warmup", type=int, default=5, help="untimed iterations per batch size (default 5)")
    parser.add_argument("--iters", type=int, default=20, help="timed iterations; the median is reported (default 20)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="write the results here (default: print only)")
    return parser.parse_args(argv)


def check_args(args: argparse.Namespace) -> None:
    if args.preset not in DEMS_PRESETS:
        raise UserInputError(f"--preset {args.preset!r} is not one of {', '.join(DEMS_PRESETS)}")
    for flag, values, lowest in (
        ("--num_labels", [args.num_labels], 1),
        ("--batch_sizes", args.batch_sizes, 1),
        ("--warmup", [args.warmup], 0),
        ("--iters", [args.iters], 1),
        ("--threads", [args.threads] if args.threads is not None else [], 1),
    ):
        if any(value < lowest for value in values):
            raise UserInputError(f"{flag} {' '.join(map(str, values))}: each must be at least {lowest}")
    require_onnx_packages()


def measure(model, session, batch_size: int, args: argparse.Namespace) -> dict:
    """Median seconds per batch of PyTorch and of ONNX Runtime, timed in alternation on the same pixels."""
    config = model.config
    generator = torch.Generator().manual_seed(args.seed)
    pixels = torch.randn(batch_size, config.num_channels, config.image_size, config.image_size, generator=generator)
    feed = {INPUT_NAME: pixels.numpy()}

    def pytorch():
        with torch.inference_mode():
            model(pixel_values=pixels)

    def onnx_runtime():
        session.run([OUTPUT_NAME], feed)

    for _ in range(args.warmup):
        pytorch()
        onnx_runtime()
    samples = {"pytorch": [], "onnxruntime": []}
    loads = []
    for _ in range(args.iters):
        for name, run in (("pytorch", pytorch), ("onnxruntime", onnx_runtime)):
            seconds, load = timed(run, CPU)
            samples[name].append(seconds)
            if load is not None:
                loads.append(load)
    result = {"batch_size": batch_size}
    for name, values in samples.items():
        median = statistics.median(values)
        result[name] = {"median_seconds": median, "images_per_second": batch_size / median, "seconds": values}
    result["speedup"] = result["pytorch"]["median_seconds"] / result["onnxruntime"]["median_seconds"]
    result["foreign_load_median"] = statistics.median(loads) if loads else None
    return result


def markdown_table(report: dict) -> str:
    lines = [
        f"{report['preset']}, {report['num_labels']} classes, fp32, CPU, {report['threads']} threads "
        f"(PyTorch {report['versions']['torch']} {report['attn_implementation']}, ONNX Runtime "
        f"{report['versions']['onnxruntime']})",
        "",
        "| batch | PyTorch ms | PyTorch images/s | ONNX Runtime ms | ONNX Runtime images/s | ONNX Runtime speed-up "
        "| foreign load |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in report["results"]:
        torch_side, ort_side, load = row["pytorch"], row["onnxruntime"], row["foreign_load_median"]
        cells = [
            str(row["batch_size"]),
            f"{1000 * torch_side['median_seconds']:.2f}",
            f"{torch_side['images_per_second']:.0f}",
            f"{1000 * ort_side['median_seconds']:.2f}",
            f"{ort_side['images_per_second']:.0f}",
            f"{row['speedup']:.2f}x",
            "-" if load is None else f"{load:.2f}",
        ]
        lines.append(f"| {' | '.join(cells)} |")
    return "\n".join(lines)


def run(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    check_args(args)
    import onnxruntime

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    torch.manual_seed(args.seed)
    config = DemsConfig.from_preset(args.preset, num_labels=args.num_labels)
    model = DemsForImageClassification._from_config(config, attn_implementation=args.attn_implementation).eval()
    with tempfile.TemporaryDirectory(prefix="dems-onnx-bench-") as tmp:
        path = Path(tmp) / "model.onnx"
        export_onnx(model, path)
        differences = check_onnx(model, path)
        session = onnx_session(path, threads=threads)
        results = [measure(model, session, batch_size, args) for batch_size in args.batch_sizes]
    report = {
        "benchmark": "onnx_throughput",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "preset": args.preset,
        "num_labels": args.num_labels,
        "attn_implementation": args.attn_implementation,
        "threads": threads,
        "warmup": args.warmup,
        "iters": args.iters,
        "onnx_check_max_abs_difference": differences,
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
        },
        "versions": {"torch": torch.__version__, "onnxruntime": onnxruntime.__version__},
        "results": results,
    }
    print(markdown_table(report))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return report


def main(argv: list[str] | None = None) -> int:
    return run_command(run, PROG, argv)


if __name__ == "__main__":
    sys.exit(main())

"""Input pipeline benchmark: images per second per core of the train and held-out transforms, stage by stage, the
frozen slow implementation (benchmarks/baseline_transforms.py, "baseline") against the project's ("new") in the
same run, and the data loader's images per second with 0, 1 and 2 workers.

Images, the same bytes for both implementations, synthetic (gradients, rectangles and noise, from --seed):
  32 px:  CIFAR-like, 32 x 32 RGB stored as PNG (as the Hub's CIFAR-10/100 store them), model input 32; held-out:
          resize to 32 (bicubic), normalise.
  256 px: Caltech101-like, 300 x 400 RGB stored as JPEG (quality 90), model input 256; held-out as the reference
          evaluates Caltech101: resize to 300 x 300 (bilinear), centre crop 256, normalise.

Per size, one thread, each figure the mean over --iters images (the median of --repeats such means):
  decode                     bytes -> PIL image, as datasets' Image feature decodes (not changed: timed once)
  pretrain transform         the train transform of the augmentation schedule at --epoch of --total_epochs with
                             p0 0.6 (tiny): "crop + resize", "colour ops" (jitter, greyscale, solarize as drawn),
                             "flip + tensor + normalise", and "whole" (the transform as the data loader calls it)
  held-out transform         "whole"; the baseline is the image processor, which train.py used for held-out images
  collate                    mixup/cutmix collation of --batch_size images, per image (same code in both)
  on-device, CPU share       what the workers do under --augment_on_device: decode, crop + resize + flip (uint8),
                             stacking; the goal compares it with decode alone
  on-device, batched         colour ops, normalisation and mixup/cutmix of --batch_size images on --device
Both implementations draw the same crops and decisions (same seed, same sequence of draws).

Per-image figures are this process's CPU time (`--clock cpu`, the default): 1 / time is images per second per core
whatever else the machine runs, and the "load" recorded with each is other processes' share of the CPUs meanwhile.
The loader figures are wall-clock images per second of a DataLoader over a `datasets.Dataset` of the encoded images
(train transform and collator, as train.py builds them), so they need a quiet machine; the baseline loader reads one
row per image, as the frozen implementation did.

    python benchmarks/input_pipeline.py --json runs/input_pipeline.json
    python benchmarks/input_pipeline.py --sizes 256 --skip_loader --iters 100 --repeats 1   # quick look
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import datasets
import numpy as np
import torch
from PIL import Image, ImageDraw


if not __package__:  # run as `python benchmarks/input_pipeline.py`: the repository root holds `benchmarks`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import baseline_transforms as baseline  # noqa: E402
from benchmarks.harness import FOREIGN_LOAD, synchronize  # noqa: E402
from benchmarks.throughput import cpu_model  # noqa: E402
from dems_training import UserInputError, run_command  # noqa: E402
from dems_training.augmentation.mixup import MixupCutmixCollator, default_collator  # noqa: E402
from dems_training.augmentation.on_device import DeviceAugmentation  # noqa: E402
from dems_training.augmentation.pipeline import eval_transform_for  # noqa: E402
from dems_training.augmentation.schedule import AugmentationSchedule  # noqa: E402
from dems_training.augmentation.transforms import (  # noqa: E402
    CpuAugmentation,
    RandomResizedCropFlip,
)
from dems_training.data.torch_data import TransformedImageDataset  # noqa: E402
from modeling_dems import DemsImageProcessor  # noqa: E402


MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
P0 = 0.6  # tiny's
SIZES = {
    32: {"source": (32, 32), "format": "PNG", "classes": 100, "processor": {"size": {"height": 32, "width": 32}}},
    256: {
        "source": (300, 400),
        "format": "JPEG",
        "classes": 101,
        "processor": {
            "size": {"height": 300, "width": 300},
            "resample": Image.Resampling.BILINEAR,
            "do_center_crop": True,
            "crop_size": {"height": 256, "width": 256},
        },
    },
}
CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 256], choices=sorted(SIZES))
    parser.add_argument("--iters", type=int, nargs="+", default=[3000, 300],
                        help="images per timing, one value per size (default 3000 at 32 px, 300 at 256 px)")
    parser.add_argument("--repeats", type=int, default=3, help="timings per figure; the median is reported")
    parser.add_argument("--distinct_images", type=int, default=64, help="distinct synthetic images, cycled")
    parser.add_argument("--epoch", type=float, default=0, help="epoch of the schedule the transform is at")
    parser.add_argument("--total_epochs", type=float, default=800)
    parser.add_argument("--batch_size", type=int, default=64, help="for collation, the batched path and the loader")
    parser.add_argument("--collate_batches", type=int, default=20, help="collations timed per figure")
    parser.add_argument("--device", default="cpu", help="where the batched on-device path runs (cpu, cuda)")
    parser.add_argument("--device_batches", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2], help="data loader workers to time")
    parser.add_argument("--loader_batches", type=int, default=8, help="timed loader batches (after one untimed)")
    parser.add_argument("--skip_loader", action="store_true")
    parser.add_argument("--skip_baseline", action="store_true", help="time the new code only")
    parser.add_argument("--clock", default="cpu", choices=sorted(CLOCKS), help="clock of the per-image figures")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1: per core)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args(argv)
    if len(args.iters) == 1:
        args.iters = args.iters * len(args.sizes)
    if len(args.iters) != len(args.sizes):
        raise UserInputError(f"--iters has {len(args.iters)} values for --sizes {args.sizes}: give one per size.")
    if args.clock == "cpu" and args.threads != 1:
        raise UserInputError(f"--clock cpu counts one thread's time: --threads={args.threads} must be 1 with it "
                             "(or pass --clock wall).")
    for flag in ("iters", "repeats", "distinct_images", "batch_size", "collate_batches", "device_batches",
                 "loader_batches", "threads"):
        values = getattr(args, flag)
        if min(values if isinstance(values, list) else [values]) < 1:
            raise UserInputError(f"--{flag}={values} must be at least 1.")
    return args


# --- images ------------------------------------------------------------------------------------------------------


def synthetic_picture(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A colour gradient, a few flat rectangles and sensor-like noise: JPEG and PNG work about as on photos."""
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    start, slope = rng.uniform(30, 220, 3), rng.uniform(-120, 120, (2, 3))
    array = start + x[..., None] * slope[0] + y[..., None] * slope[1]
    image = Image.fromarray(np.clip(array, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x0, x1 = sorted(rng.integers(0, width, 2))
        y0, y1 = sorted(rng.integers(0, height, 2))
        draw.rectangle((int(x0), int(y0), int(x1), int(y1)), fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    noisy = np.asarray(image).astype(np.float32) + rng.normal(0, 6, (height, width, 3))
    return np.clip(noisy, 0, 255).astype(np.uint8)


def encoded_images(size: int, count: int, seed: int) -> list[bytes]:
    spec, rng = SIZES[size], np.random.default_rng(seed)
    out = []
    for _ in range(count):
        buffer = io.BytesIO()
        Image.fromarray(synthetic_picture(*spec["source"], rng)).save(buffer, format=spec["format"], quality=90)
        out.append(buffer.getvalue())
    return out


def decode(data: bytes) -> Image.Image:
    """As datasets' Image feature: open, then load the pixels."""
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


# --- timing ------------------------------------------------------------------------------------------------------


def time_stages(stages: list[tuple[str, Callable]], inputs: list, iters: int, args, clock: str | None = None) -> dict:
    """Seconds per input of each stage, each fed the previous one's output, over `iters` inputs cycling `inputs`
    (after an untimed tenth); Python's and torch's generators seeded alike for every implementation, so that they
    draw the same crops and decisions. The median over --repeats, with each repeat's figure and foreign load."""
    clock, seed = CLOCKS[clock or args.clock], args.seed
    runs, loads = {name: [] for name, _ in stages}, []
    for repeat in range(args.repeats):
        random.seed(seed + repeat)
        torch.manual_seed(seed + repeat)
        for i in range(max(iters // 10, 1)):
            x = inputs[i % len(inputs)]
            for _, fn in stages:
                x = fn(x)
        totals = dict.fromkeys(runs, 0.0)
        start = FOREIGN_LOAD.snapshot()
        for i in range(iters):
            x = inputs[i % len(inputs)]
            for name, fn in stages:
                t0 = clock()
                x = fn(x)
                totals[name] += clock() - t0
        loads.append(FOREIGN_LOAD.fraction(start, FOREIGN_LOAD.snapshot()))
        for name, total in totals.items():
            runs[name].append(total / iters)
    result = {name: {"seconds": statistics.median(values), "runs": values} for name, values in runs.items()}
    result["load"] = loads
    return result


def pretrain_stages(transform) -> list[tuple[str, Callable]]:
    p = transform.current_probabilities()
    return [
        ("crop + resize", transform.random_crop),
        ("colour ops", lambda picture: transform.colour(picture, p)),
        ("flip + tensor + normalise", transform.finish),
    ]


def transformed_examples(transform, images: list, count: int) -> list[dict]:
    return [{"pixel_values": transform(images[i % len(images)]), "labels": i % 10} for i in range(count)]


def time_collate(collator, examples: list[dict], args) -> dict:
    """Seconds per image of collating one batch of `examples`."""
    per_batch = time_stages([("collate", collator)], [examples], args.collate_batches, args)
    return {"seconds": per_batch["collate"]["seconds"] / len(examples), "load": per_batch["load"]}


def time_on_device(size: int, images: list, args) -> dict:
    """Seconds per image of the batched colour ops, normalisation and mixing on --device (synchronised; the wall
    clock on a GPU, whose work is not this process's CPU time)."""
    device = torch.device(args.device)
    cpu_part = RandomResizedCropFlip(size)
    random.seed(args.seed)
    batches = [
        torch.stack([cpu_part(images[(b * args.batch_size + i) % len(images)]) for i in range(args.batch_size)])
        .to(device)
        for b in range(2)
    ]
    labels = torch.arange(args.batch_size, device=device) % 10
    mixer = MixupCutmixCollator(num_classes=SIZES[size]["classes"])
    augmentation = DeviceAugmentation(MEAN, STD, schedule=AugmentationSchedule(P0, P0, P0), mixer=mixer)
    augmentation.set_epoch(args.epoch, args.total_epochs)

    def run(batch):
        out = augmentation(batch, labels)
        synchronize(device)
        return out

    clock = "wall" if device.type != "cpu" else args.clock
    per_batch = time_stages([("batched", run)], batches, args.device_batches, args, clock)
    return {"seconds": per_batch["batched"]["seconds"] / args.batch_size, "device": str(device), "clock": clock,
            "load": per_batch["load"]}


def loader_images_per_second(dataset, collator, workers: int, args, untimed_batches: int = 1) -> dict:
    """Wall-clock images per second of a DataLoader, after `untimed_batches` batches (the first starts the workers;
    with many workers, the batches they prefetched meanwhile are better left untimed too: gpu_check.py does)."""
    generator = torch.Generator().manual_seed(args.seed)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=args.batch_size, shuffle=True, generator=generator, num_workers=workers,
        collate_fn=collator, drop_last=True,
    )
    batches = iter(loader)
    for _ in range(untimed_batches):
        next(batches)
    start = FOREIGN_LOAD.snapshot()
    count = 0
    for _ in range(args.loader_batches):
        count += len(next(batches)["labels"])
    end = FOREIGN_LOAD.snapshot()
    del batches
    return {"images_per_s": count / (end[0] - start[0]), "load": FOREIGN_LOAD.fraction(start, end)}


# --- one size ----------------------------------------------------------------------------------------------------


def bench_size(size: int, iters: int, args) -> dict:
    spec = SIZES[size]
    encoded = encoded_images(size, args.distinct_images, args.seed)
    images = [decode(data) for data in encoded]
    schedule = AugmentationSchedule(P0, P0, P0)
    processor = DemsImageProcessor(image_mean=list(MEAN), image_std=list(STD), **spec["processor"])
    implementations = {"new": (CpuAugmentation(size, MEAN, STD, schedule=schedule),
                               eval_transform_for(processor))}
    if not args.skip_baseline:
        implementations["baseline"] = (baseline.BaselineCpuAugmentation(size, MEAN, STD, schedule=schedule),
                                       baseline.ProcessorTransform(processor))
    result = {"source": f"{spec['source'][0]}x{spec['source'][1]} {spec['format']}", "iters": iters,
              "decode": time_stages([("decode", decode)], encoded, iters, args)}
    mixer = MixupCutmixCollator(num_classes=spec["classes"])
    for name, (train_transform, eval_transform) in implementations.items():
        train_transform.set_epoch(args.epoch, args.total_epochs)
        result[name] = {
            "pretrain": time_stages(pretrain_stages(train_transform), images, iters, args),
            "pretrain_whole": time_stages([("whole", train_transform)], images, iters, args),
            "held_out_whole": time_stages([("whole", eval_transform)], images, iters, args),
            "collate": time_collate(mixer, transformed_examples(train_transform, images, args.batch_size), args),
        }
        if name == "new":
            result[name]["held_out"] = time_stages(
                [("resize", eval_transform.resize), ("tensor + normalise", eval_transform.normalize)],
                images, iters, args,
            )
    cpu_part = RandomResizedCropFlip(size)
    result["on_device"] = {
        "crop_resize_flip": time_stages([("crop + resize + flip", cpu_part)], images, iters, args),
        "stack": time_collate(default_collator, transformed_examples(cpu_part, images, args.batch_size), args),
        "batched": time_on_device(size, images, args),
    }
    if not args.skip_loader:
        result["loader"] = bench_loader(size, encoded, implementations, cpu_part, mixer, args)
    return result


def bench_loader(size: int, encoded: list[bytes], implementations: dict, cpu_part, mixer, args) -> dict:
    count = args.batch_size * (args.loader_batches + 1) * max(len(args.workers), 1)
    rows = {"image": [{"bytes": encoded[i % len(encoded)], "path": None} for i in range(count)],
            "label": [i % SIZES[size]["classes"] for i in range(count)]}
    features = datasets.Features({"image": datasets.Image(), "label": datasets.Value("int64")})
    data = datasets.Dataset.from_dict(rows, features=features)
    pipelines = {"new": (TransformedImageDataset(data, "image", "label", implementations["new"][0]), mixer),
                 "on-device CPU share": (TransformedImageDataset(data, "image", "label", cpu_part), default_collator)}
    if "baseline" in implementations:
        dataset = baseline.BaselineTransformedImageDataset(data, "image", "label", implementations["baseline"][0])
        pipelines["baseline"] = (dataset, mixer)
    return {
        name: {str(w): loader_images_per_second(dataset, collator, w, args) for w in args.workers}
        for name, (dataset, collator) in pipelines.items()
    }


# --- report ------------------------------------------------------------------------------------------------------


def rows_of(result: dict) -> list[tuple[str, float | None, float | None]]:
    """(what, baseline seconds per image, new seconds per image)."""
    def seconds(name, *keys):
        node = result.get(name)
        for key in keys:
            if node is None:
                return None
            node = node.get(key)
        return node

    rows = [("decode", result["decode"]["decode"]["seconds"], result["decode"]["decode"]["seconds"])]
    for stage in ("crop + resize", "colour ops", "flip + tensor + normalise"):
        rows.append((f"pretrain: {stage}", seconds("baseline", "pretrain", stage, "seconds"),
                     seconds("new", "pretrain", stage, "seconds")))
    rows.append(("pretrain: whole transform", seconds("baseline", "pretrain_whole", "whole", "seconds"),
                 seconds("new", "pretrain_whole", "whole", "seconds")))
    for stage in ("resize", "tensor + normalise"):
        rows.append((f"held-out: {stage}", None, seconds("new", "held_out", stage, "seconds")))
    rows.append(("held-out: whole transform", seconds("baseline", "held_out_whole", "whole", "seconds"),
                 seconds("new", "held_out_whole", "whole", "seconds")))
    rows.append(("collate (mixup/cutmix)", seconds("baseline", "collate", "seconds"),
                 seconds("new", "collate", "seconds")))
    on_device = result["on_device"]
    rows.append(("on-device: crop + resize + flip", None,
                 on_device["crop_resize_flip"]["crop + resize + flip"]["seconds"]))
    rows.append(("on-device: stack (collate)", None, on_device["stack"]["seconds"]))
    rows.append((f"on-device: batched on {on_device['batched']['device']}", None, on_device["batched"]["seconds"]))
    return rows


def on_device_cpu_share(result: dict) -> float:
    """Decode + crop/resize/flip + stacking, per image: everything the CPU does under --augment_on_device."""
    on_device = result["on_device"]
    return (result["decode"]["decode"]["seconds"] + on_device["crop_resize_flip"]["crop + resize + flip"]["seconds"]
            + on_device["stack"]["seconds"])


def format_table(report: dict) -> str:
    def cell(seconds):
        return "-" if seconds is None else f"{seconds * 1e3:.4f} ms ({1 / seconds:,.0f}/s)"

    lines = []
    for size, result in report["results"].items():
        lines += ["", f"{size} px from {result['source']}, per image on one core ({report['environment']['clock']} "
                  f"clock): ms (images/s)", f"{'':38s} {'baseline':>24s} {'new':>24s} {'speed-up':>9s}"]
        for what, before, after in rows_of(result):
            ratio = f"{before / after:.2f}x" if before and after else ""
            lines.append(f"{what:38s} {cell(before):>24s} {cell(after):>24s} {ratio:>9s}")
        decode = result["decode"]["decode"]["seconds"]
        share = on_device_cpu_share(result)
        lines.append(f"{'on-device: CPU share (decode + above)':38s} {'':>24s} {cell(share):>24s} "
                     f"{share / decode:>8.2f}x decode")
        for name, by_workers in result.get("loader", {}).items():
            figures = ", ".join(f"{w} workers {v['images_per_s']:,.0f}/s" for w, v in by_workers.items())
            lines.append(f"loader, {name}: {figures} (wall clock)")
    return "\n".join(lines)


def environment(args) -> dict:
    return {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "torch": torch.__version__,
        "pillow": Image.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "clock": args.clock,
        "epoch": [args.epoch, args.total_epochs],
        "p0": P0,
        "gpu": torch.cuda.get_device_name() if args.device.startswith("cuda") else None,
    }


def run(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    report = {"environment": environment(args), "results": {}}
    for size, iters in zip(args.sizes, args.iters, strict=True):
        report["results"][str(size)] = bench_size(size, iters, args)
    print(format_table(report))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
    return report


def main(argv: list[str] | None = None) -> int:
    """The command: `run`, with a flag that cannot work reported in one line and exit code 2."""
    return run_command(run, "input_pipeline.py", argv)


if __name__ == "__main__":
    sys.exit(main())

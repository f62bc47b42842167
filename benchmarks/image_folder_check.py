"""Image-folder load + broken-image check: the wall time of `load_data(train_dir=...)` (datasets' imagefolder builder,
the parallel `Dataset.filter` that decodes every image once, the stratified held-out split) on a synthetic folder,
and whether its result was computed or read from datasets' cache.

The folder (built under --root unless it is there): --classes class folders of --images random --size px JPEGs in
all, and --broken unreadable files among them (half truncated JPEGs, half text named .jpg), which are skipped. Run it
twice with the same cache: the first run decodes every image, the second reads the cached result.

    export HF_DATASETS_CACHE=/tmp/image_folder_check_cache HF_DATASETS_OFFLINE=1
    time python benchmarks/image_folder_check.py    # first run: decodes 2,002 files
    time python benchmarks/image_folder_check.py    # rerun: "check: read from cache"
"""

from __future__ import annotations

import argparse
import os
import sys
import time


if not __package__:  # run as `python benchmarks/image_folder_check.py`: dems_training lives at the repository root
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from dems_training import UserInputError, run_command  # noqa: E402
from dems_training.data.loading import load_data  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default="/tmp/dems_image_folder_check", help="the synthetic folder (built if absent)")
    parser.add_argument("--images", type=int, default=2000, help="readable images in all")
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--size", type=int, default=64, help="image side in pixels")
    parser.add_argument("--broken", type=int, default=2, help="unreadable files added")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--preprocessing_num_workers", type=int, default=None, help="as train.py's")
    parser.add_argument("--cache_dir", default=None, help="datasets cache (default: HF_DATASETS_CACHE)")
    return parser.parse_args(argv)


def build_folder(root: str, images: int, classes: int, size: int, broken: int, seed: int) -> None:
    """root/class_<k>/<i>.jpg, the images dealt round the classes; the broken files go in the first classes."""
    if images < classes or classes < 2 or size < 1 or broken < 0:
        raise UserInputError(f"--images={images} --classes={classes} --size={size} --broken={broken}: need at least "
                             "2 classes, one image per class, a positive size and no negative count.")
    rng = np.random.default_rng(seed)
    for i in range(images):
        folder = os.path.join(root, f"class_{i % classes}")
        os.makedirs(folder, exist_ok=True)
        pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(os.path.join(folder, f"{i}.jpg"), quality=90)
    for b in range(broken):
        path = os.path.join(root, f"class_{b % classes}", f"broken_{b}.jpg")
        with open(os.path.join(root, f"class_{b % classes}", f"{b}.jpg"), "rb") as f:
            data = f.read()
        with open(path, "wb") as f:
            f.write(data[: len(data) // 2] if b % 2 == 0 else b"not an image")


def run(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if not os.path.isdir(args.root):
        build_folder(args.root, args.images, args.classes, args.size, args.broken, args.seed)
    start = time.time()
    data = load_data(train_dir=args.root, cache_dir=args.cache_dir,
                     preprocessing_num_workers=args.preprocessing_num_workers)
    seconds = time.time() - start
    # The cache files of the checked, split data: written now on a first run, older than `start` on a rerun.
    files = [f["filename"] for split in (data.train, data.eval) for f in split.cache_files]
    cached = all(os.path.getmtime(path) < start for path in files)
    result = {"seconds": round(seconds, 2), "train": len(data.train), "held_out": len(data.eval),
              "check": "read from cache" if cached else "computed"}
    print(f"load + check of {args.root}: {result['seconds']} s, {result['train']} train / {result['held_out']} "
          f"held-out images, check: {result['check']}")
    return result


def main(argv: list[str] | None = None) -> int:
    """The command: `run`, with a flag that cannot work reported in one line and exit code 2."""
    return run_command(run, "image_folder_check.py", argv)


if __name__ == "__main__":
    sys.exit(main())

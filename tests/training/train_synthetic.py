"""A small image-folder data set the train.py tests make: "dark" and "bright" noisy images. A DEMS model starts
with near-uniform attention and merges, so its class token first sees the average of the image; brightness is the
signal that such a model picks up within a few dozen steps, even through the recipe's crops, flips and colour
changes (solarize, which can turn bright into dark, fades out with the schedule)."""

import os

import numpy as np
from PIL import Image


CLASSES = ("bright", "dark")


def synthetic_image(kind: str, size: int, rng) -> np.ndarray:
    low, high = (0, 90) if kind == "dark" else (165, 256)
    return rng.integers(low, high, (size, size, 3), dtype=np.uint8)


def make_synthetic_folder(root, train_per_class: int = 32, val_per_class: int = 12, size: int = 32, seed: int = 0):
    """root/train/<class>/*.png and root/val/<class>/*.png; returns root."""
    rng = np.random.default_rng(seed)
    for split, count in (("train", train_per_class), ("val", val_per_class)):
        for kind in CLASSES:
            folder = os.path.join(root, split, kind)
            os.makedirs(folder, exist_ok=True)
            for i in range(count):
                Image.fromarray(synthetic_image(kind, size, rng)).save(os.path.join(folder, f"{i}.png"))
    return str(root)

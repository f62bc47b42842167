"""The train and held-out transforms in their first, plain form (PIL operations as documented, one row read per
image), frozen here so that `input_pipeline.py` times the fast path against it in the same run (git history is not
importable), and so that tests can check the fast path against it bit for bit. Do not speed this file up.

What the fast path left unchanged (the schedule, the crop box, the mode conversion, the image processor) is imported
rather than copied: it is the same code on both sides of the comparison.
"""

import random

import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageOps

from dems_training.augmentation.schedule import AugmentationSchedule, ScheduleFollower
from dems_training.augmentation.transforms import (
    ProcessorTransform,  # the held-out transform
    mode_for_channels,
    random_resized_crop_box,
    to_mode,
)
from dems_training.data.torch_data import TransformedImageDataset


__all__ = [
    "BaselineResizeNormalize",
    "BaselineCpuAugmentation",
    "BaselineTransformedImageDataset",
    "ProcessorTransform",
    "color_jitter",
]


def shift_hue(image: Image.Image, hue: float) -> Image.Image:
    h, s, v = image.convert("HSV").split()
    shifted = (np.asarray(h, dtype=np.int16) + int(round(hue * 255))) % 256
    return Image.merge("HSV", (Image.fromarray(shifted.astype(np.uint8)), s, v)).convert("RGB")


def color_jitter(image: Image.Image, brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1) -> Image.Image:
    ops = [
        lambda im: ImageEnhance.Brightness(im).enhance(random.uniform(1 - brightness, 1 + brightness)),
        lambda im: ImageEnhance.Contrast(im).enhance(random.uniform(1 - contrast, 1 + contrast)),
    ]
    if image.mode == "RGB":
        ops.append(lambda im: ImageEnhance.Color(im).enhance(random.uniform(1 - saturation, 1 + saturation)))
        ops.append(lambda im: shift_hue(im, random.uniform(-hue, hue)))
    random.shuffle(ops)
    for op in ops:
        image = op(image)
    return image


def to_normalized_tensor(image: Image.Image, mean, std) -> torch.Tensor:
    array = np.asarray(image, dtype=np.float32) / 255.0
    if array.ndim == 2:
        array = array[:, :, None]
    array = (array - np.asarray(mean, dtype=np.float32)[: array.shape[2]]) / np.asarray(std, dtype=np.float32)[
        : array.shape[2]
    ]
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))


class BaselineCpuAugmentation(ScheduleFollower):
    def __init__(self, size, mean, std, num_channels=3, schedule=None, crop_scale=(0.2, 1.0), hflip_prob=0.5,
                 solarize_threshold=128):
        self.size, self.mean, self.std = size, tuple(mean), tuple(std)
        self.mode = mode_for_channels(num_channels)
        self.start_schedule(schedule or AugmentationSchedule())
        self.crop_scale, self.hflip_prob, self.solarize_threshold = tuple(crop_scale), hflip_prob, solarize_threshold

    # The body of the old __call__, cut into the stages the benchmark times (same operations, same order, same
    # random draws as the new CpuAugmentation's stages of the same names).
    def __call__(self, image: Image.Image) -> torch.Tensor:
        return self.finish(self.colour(self.random_crop(image), self.current_probabilities()))

    def random_crop(self, image: Image.Image) -> Image.Image:
        image = to_mode(image, self.mode)
        box = random_resized_crop_box(*image.size, scale=self.crop_scale)
        return image.resize((self.size, self.size), Image.Resampling.BICUBIC, box=box)

    def colour(self, image: Image.Image, p: dict[str, float]) -> Image.Image:
        if random.random() < p["color_jitter"]:
            image = color_jitter(image)
        if random.random() < p["grayscale"] and self.mode == "RGB":
            image = image.convert("L").convert("RGB")
        if random.random() < p["solarize"]:
            image = ImageOps.solarize(image, threshold=self.solarize_threshold)
        return image

    def finish(self, image: Image.Image) -> torch.Tensor:
        if random.random() < self.hflip_prob:
            image = ImageOps.mirror(image)
        return to_normalized_tensor(image, self.mean, self.std)


class BaselineResizeNormalize:
    def __init__(self, size: int, mean, std, num_channels: int = 3):
        self.size, self.mean, self.std = size, tuple(mean), tuple(std)
        self.mode = mode_for_channels(num_channels)

    def __call__(self, image: Image.Image) -> torch.Tensor:
        image = to_mode(image, self.mode).resize((self.size, self.size), Image.Resampling.BICUBIC)
        return to_normalized_tensor(image, self.mean, self.std)


class BaselineTransformedImageDataset(TransformedImageDataset):
    """The data set read one row per image (DataLoader falls back to `__getitem__`)."""

    __getitems__ = None

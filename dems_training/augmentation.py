"""Image transforms without torchvision (PIL + numpy), and the DEMS augmentation schedule.

Pretrain train transform, rebuilt every epoch e of E in the reference:
    RandomResizedCrop(S, scale (0.2, 1), bicubic) -> colour jitter with prob p(e) -> greyscale with prob p(e)
    -> solarize with prob p(e) -> horizontal flip (0.5) -> tensor -> normalise,
    p(e) = 0.5 * p0 * (1 + cos(pi * e / E)).
Here the transform is built once and reads the epoch from a shared-memory tensor, so data loader workers (forked or
spawned, persistent or not) see every `set_epoch` the main process makes. Randomness comes from Python's `random`,
which PyTorch seeds differently in every worker and Trainer seeds in the main process.
"""

import math
import random
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageOps

from modeling_dems.image_processing_dems import to_8_bit


def mode_for_channels(num_channels: int) -> str:
    if num_channels == 3:
        return "RGB"
    if num_channels == 1:
        return "L"
    raise ValueError(f"num_channels={num_channels} is not supported by the training transforms; use 1 or 3.")


def to_mode(image: Image.Image, mode: str) -> Image.Image:
    """Grey, palette, RGBA... to the model's mode (grey images feed a 3-channel model as three equal channels)."""
    image = to_8_bit(image)  # 16-bit and float images scaled as the image processor does, not clipped
    if image.mode == mode:
        return image
    if image.mode in ("RGBA", "LA", "P") and mode == "RGB":
        return image.convert("RGBA").convert("RGB")
    return image.convert(mode)


@dataclass(frozen=True)
class AugmentationSchedule:
    """p(e) = 0.5 * p0 * (1 + cos(pi * e / E)) for each of colour jitter, greyscale and solarize (p0 throughout
    when `decaying` is False)."""

    color_jitter_p0: float = 0.6
    grayscale_p0: float = 0.6
    solarize_p0: float = 0.6
    decaying: bool = True  # False: p(e) = p0 for every epoch (the ablation without the schedule)

    def __post_init__(self):
        for name in ("color_jitter_p0", "grayscale_p0", "solarize_p0"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"AugmentationSchedule.{name}={value} must be a probability in [0, 1].")

    @staticmethod
    def decay(p0: float, epoch: float, total_epochs: float) -> float:
        if total_epochs <= 0:
            return p0
        return 0.5 * p0 * (1.0 + math.cos(math.pi * epoch / total_epochs))

    def probabilities(self, epoch: float, total_epochs: float) -> dict[str, float]:
        if not self.decaying:
            total_epochs = 0  # decay() then returns p0
        return {
            "color_jitter": self.decay(self.color_jitter_p0, epoch, total_epochs),
            "grayscale": self.decay(self.grayscale_p0, epoch, total_epochs),
            "solarize": self.decay(self.solarize_p0, epoch, total_epochs),
        }


def random_resized_crop_box(width: int, height: int, scale=(0.2, 1.0), ratio=(3 / 4, 4 / 3)) -> tuple:
    """torchvision's RandomResizedCrop box: area fraction in `scale`, aspect ratio log-uniform in `ratio`, ten
    tries, then the central crop clamped to `ratio`."""
    area = width * height
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target_area = area * random.uniform(*scale)
        aspect = math.exp(random.uniform(*log_ratio))
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            left = random.randint(0, width - w)
            top = random.randint(0, height - h)
            return left, top, left + w, top + h
    in_ratio = width / height
    if in_ratio < ratio[0]:
        w, h = width, int(round(width / ratio[0]))
    elif in_ratio > ratio[1]:
        w, h = int(round(height * ratio[1])), height
    else:
        w, h = width, height
    left, top = (width - w) // 2, (height - h) // 2
    return left, top, left + w, top + h


def shift_hue(image: Image.Image, hue: float) -> Image.Image:
    """Rotate the hue by `hue` of a turn (torchvision's adjust_hue), via PIL's 8-bit HSV."""
    h, s, v = image.convert("HSV").split()
    shifted = (np.asarray(h, dtype=np.int16) + int(round(hue * 255))) % 256
    return Image.merge("HSV", (Image.fromarray(shifted.astype(np.uint8)), s, v)).convert("RGB")


def color_jitter(image: Image.Image, brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1) -> Image.Image:
    """torchvision's ColorJitter: the four adjustments in random order, factors uniform in [1-x, 1+x] (hue in
    [-x, x]). Saturation and hue leave a grey image alone."""
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


class ScheduledAugmentation:
    """The pretrain train transform: PIL image in, normalised (C, S, S) float tensor out."""

    def __init__(
        self,
        size: int,
        mean,
        std,
        num_channels: int = 3,
        schedule: AugmentationSchedule | None = None,
        crop_scale: tuple = (0.2, 1.0),
        hflip_prob: float = 0.5,
        solarize_threshold: int = 128,
    ):
        if not 0.0 < crop_scale[0] <= crop_scale[1] <= 1.0:
            raise ValueError(f"crop_scale={tuple(crop_scale)} must satisfy 0 < min <= max <= 1.")
        if not 0.0 <= hflip_prob <= 1.0:
            raise ValueError(f"hflip_prob={hflip_prob} must be a probability in [0, 1].")
        self.size, self.mean, self.std = size, tuple(mean), tuple(std)
        self.mode = mode_for_channels(num_channels)
        self.schedule = schedule or AugmentationSchedule()
        self.crop_scale, self.hflip_prob, self.solarize_threshold = tuple(crop_scale), hflip_prob, solarize_threshold
        # [epoch, total epochs] in shared memory: written by the main process, read by every worker.
        self._epoch_state = torch.zeros(2, dtype=torch.float64).share_memory_()

    def set_epoch(self, epoch: float, total_epochs: float) -> None:
        self._epoch_state[0] = float(epoch)
        self._epoch_state[1] = float(total_epochs)

    @property
    def epoch(self) -> tuple[float, float]:
        return float(self._epoch_state[0]), float(self._epoch_state[1])

    def current_probabilities(self) -> dict[str, float]:
        return self.schedule.probabilities(*self.epoch)

    def __call__(self, image: Image.Image) -> torch.Tensor:
        p = self.current_probabilities()
        image = to_mode(image, self.mode)
        box = random_resized_crop_box(*image.size, scale=self.crop_scale)
        image = image.resize((self.size, self.size), Image.Resampling.BICUBIC, box=box)
        if random.random() < p["color_jitter"]:
            image = color_jitter(image)
        if random.random() < p["grayscale"] and self.mode == "RGB":
            image = image.convert("L").convert("RGB")
        if random.random() < p["solarize"]:
            image = ImageOps.solarize(image, threshold=self.solarize_threshold)
        if random.random() < self.hflip_prob:
            image = ImageOps.mirror(image)
        return to_normalized_tensor(image, self.mean, self.std)


class ResizeNormalize:
    """Resize to S x S (bicubic) and normalise: the finetune train transform and, through the image processor, the
    eval transform. Kept in PIL here so train-time tensors need no processor call per image."""

    def __init__(self, size: int, mean, std, num_channels: int = 3):
        self.size, self.mean, self.std = size, tuple(mean), tuple(std)
        self.mode = mode_for_channels(num_channels)

    def __call__(self, image: Image.Image) -> torch.Tensor:
        image = to_mode(image, self.mode).resize((self.size, self.size), Image.Resampling.BICUBIC)
        return to_normalized_tensor(image, self.mean, self.std)

"""Per-image transforms without torchvision (PIL, NumPy and torch on uint8): PIL image in, (C, S, S) tensor out.

`CpuAugmentation` is the pretrain train transform, the reference's
    RandomResizedCrop(S, scale (0.2, 1), bicubic) -> colour jitter with prob p(e) -> greyscale with prob p(e)
    -> solarize with prob p(e) -> horizontal flip (0.5) -> tensor -> normalise,
with p(e) from the augmentation schedule (schedule.py). Randomness comes from Python's `random`, which PyTorch seeds
differently in every data loader worker and Trainer seeds in the main process. `ResizeNormalize` is the finetune
train transform and the held-out one; `ProcessorTransform` runs the image processor itself where no fast equivalent
exists.

The per-image work is in image_ops.py (uint8 throughout; float32 only for the normalised output). With
`--augment_on_device` the CPU keeps the crop, resize and flip (`RandomResizedCropFlip`, uint8 out) and the colour
operations, normalisation and mixing run batched on the training device (on_device.py).
"""

import math
import random

import torch
from PIL import Image

from modeling_dems.image_processing_dems import to_8_bit

from .image_ops import (
    TORCH_RESAMPLING,
    Normalizer,
    as_pil,
    as_tensor,
    color_jitter,
    grayscale,
    resize_crop,
    solarize,
)
from .schedule import AugmentationSchedule, ScheduleFollower


# The PIL modes the training transforms make, by channel count: colour jitter, greyscale and solarize are defined on
# grey and RGB images only.
MODE_FOR_CHANNELS = {1: "L", 3: "RGB"}


def mode_for_channels(num_channels: int) -> str:
    if num_channels not in MODE_FOR_CHANNELS:
        raise ValueError(f"num_channels={num_channels} is not supported by the training transforms; use 1 or 3.")
    return MODE_FOR_CHANNELS[num_channels]


def to_mode(image: Image.Image, mode: str) -> Image.Image:
    """Grey, palette, RGBA... to the model's mode (grey images feed a 3-channel model as three equal channels)."""
    image = to_8_bit(image)  # 16-bit and float images scaled as the image processor does, not clipped
    if image.mode == mode:
        return image
    if image.mode in ("RGBA", "LA", "P") and mode == "RGB":
        return image.convert("RGBA").convert("RGB")
    return image.convert(mode)


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


def hflip(pixels: torch.Tensor) -> torch.Tensor:
    """Mirror left to right."""
    return pixels.flip(-1)


class RandomResizedCropFlip:
    """Random resized crop (bicubic) and horizontal flip on uint8: PIL image in, uint8 (C, S, S) tensor out. The
    CPU's share of `--augment_on_device`, and the first and last steps of `CpuAugmentation`."""

    def __init__(self, size: int, num_channels: int = 3, crop_scale: tuple = (0.2, 1.0), hflip_prob: float = 0.5):
        if not 0.0 < crop_scale[0] <= crop_scale[1] <= 1.0:
            raise ValueError(f"crop_scale={tuple(crop_scale)} must satisfy 0 < min <= max <= 1.")
        if not 0.0 <= hflip_prob <= 1.0:
            raise ValueError(f"hflip_prob={hflip_prob} must be a probability in [0, 1].")
        self.size, self.mode = size, mode_for_channels(num_channels)
        self.crop_scale, self.hflip_prob = tuple(crop_scale), hflip_prob

    def random_crop(self, image: Image.Image) -> Image.Image | torch.Tensor:
        """Crop a random box and resize it to S x S (the box is cut out first, as torchvision's resized_crop)."""
        image = to_mode(image, self.mode)
        box = random_resized_crop_box(*image.size, scale=self.crop_scale)
        return resize_crop(image, box, (self.size, self.size), Image.Resampling.BICUBIC)

    def random_flip(self, pixels: torch.Tensor) -> torch.Tensor:
        return hflip(pixels) if random.random() < self.hflip_prob else pixels

    def __call__(self, image: Image.Image) -> torch.Tensor:
        return self.random_flip(as_tensor(self.random_crop(image)))


class CpuAugmentation(RandomResizedCropFlip, ScheduleFollower):
    """The pretrain train transform: PIL image in, normalised (C, S, S) float tensor out. Colour operations run in
    PIL on uint8, and only on the images they are drawn for."""

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
        super().__init__(size, num_channels, crop_scale, hflip_prob)
        self.start_schedule(schedule or AugmentationSchedule())
        self.normalize = Normalizer(mean, std)
        self.solarize_threshold = solarize_threshold

    def __call__(self, image: Image.Image) -> torch.Tensor:
        return self.finish(self.colour(self.random_crop(image), self.current_probabilities()))

    def colour(self, picture: Image.Image | torch.Tensor, p: dict[str, float]) -> torch.Tensor:
        """Colour jitter, greyscale and solarize, each drawn with its probability in `p`; uint8 (C, S, S) out. The
        picture becomes a PIL image only when jitter or greyscale is drawn."""
        if random.random() < p["color_jitter"]:
            picture = color_jitter(as_pil(picture))
        if random.random() < p["grayscale"] and self.mode == "RGB":
            picture = grayscale(as_pil(picture), tensor=True)  # the luma plane, broadcast to three channels
        pixels = as_tensor(picture)
        if random.random() < p["solarize"]:
            pixels = solarize(pixels, self.solarize_threshold)
        return pixels

    def finish(self, pixels: torch.Tensor) -> torch.Tensor:
        """The flip (drawn), then the normalised float32 tensor."""
        return self.normalize(self.random_flip(pixels))


def _side(size, name: str) -> int | None:
    """`size.height` of a processor's SizeDict, or `size["height"]` of a plain dict."""
    if size is None:
        return None
    return size.get(name) if isinstance(size, dict) else getattr(size, name, None)


class ResizeNormalize:
    """Resize to S x S (bicubic by default), optionally centre-crop, and normalise: the finetune train transform
    and the held-out transform (`from_image_processor`). With `normalize=False` it returns the uint8 pixels (the CPU's
    share under `--augment_on_device`)."""

    def __init__(
        self,
        size,
        mean,
        std,
        num_channels: int = 3,
        resample=Image.Resampling.BICUBIC,
        crop_size: tuple[int, int] | None = None,
        normalize: bool = True,
    ):
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        self.mode = mode_for_channels(num_channels)
        self.resample, self.crop_size = resample, crop_size
        if crop_size is not None and (crop_size[0] > self.size[0] or crop_size[1] > self.size[1]):
            raise ValueError(f"crop_size={crop_size} must fit inside the resized size={self.size}.")
        self.normalize = Normalizer(mean, std) if normalize else None

    @classmethod
    def from_image_processor(cls, image_processor) -> "ResizeNormalize | None":
        """The processor's resize, centre crop, rescale and normalise as one fast transform (within one level of 255
        of the processor's output but for a few pixels in a million, which are within two: image_ops.py); None when
        the processor does something else (another filter, a shortest-edge size, padding, no normalisation, no
        `num_channels`...), or is not a PIL-backend processor of this shape."""
        p = image_processor
        settings = ("do_resize", "size", "resample", "do_center_crop", "crop_size", "do_rescale", "rescale_factor",
                    "do_normalize", "image_mean", "image_std", "num_channels")
        if any(getattr(p, name, None) is None for name in settings if name not in ("do_center_crop", "crop_size")):
            return None
        height, width = _side(p.size, "height"), _side(p.size, "width")
        crop = (_side(p.crop_size, "height"), _side(p.crop_size, "width")) if p.do_center_crop else None
        if not (p.do_resize and height and width and p.do_rescale and p.do_normalize):
            return None
        if not math.isclose(p.rescale_factor, 1 / 255) or getattr(p, "do_pad", None):
            return None
        if crop is not None and not (crop[0] and crop[1] and crop[0] <= height and crop[1] <= width):
            return None
        if Image.Resampling(p.resample) not in TORCH_RESAMPLING or p.num_channels not in (1, 3):
            return None
        return cls((height, width), p.image_mean, p.image_std, p.num_channels, Image.Resampling(p.resample), crop)

    def __call__(self, image: Image.Image) -> torch.Tensor:
        pixels = self.resize(image)
        return pixels if self.normalize is None else self.normalize(pixels)

    def resize(self, image: Image.Image) -> torch.Tensor:
        """Resize, then centre-crop (as transformers' center_crop): uint8 (C, H, W)."""
        pixels = as_tensor(resize_crop(to_mode(image, self.mode), None, self.size, self.resample))
        if self.crop_size is not None:
            height, width = self.crop_size
            top, left = (self.size[0] - height) // 2, (self.size[1] - width) // 2
            pixels = pixels[:, top:top + height, left:left + width]
        return pixels


class ProcessorTransform:
    """The image processor as a per-image transform: the eval path is exactly what `pipeline` will do."""

    def __init__(self, image_processor):
        self.image_processor = image_processor

    def __call__(self, image) -> torch.Tensor:
        return self.image_processor(image, return_tensors="pt")["pixel_values"][0]

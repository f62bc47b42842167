"""Per-image operations of the CPU input pipeline, on uint8 images, each the same computation as the PIL operation
it stands for and faster:

- resizing a crop runs in torch's uint8 antialiased kernels (PIL's filters, vectorised) for all but small images;
- brightness, contrast and saturation are Pillow's own blends (ImageEnhance), without ImageStat's Python loop;
- the hue shift stays in PIL's 8-bit HSV, the shift itself one C addition modulo 256 (no NumPy round trip);
- solarize is one comparison on the uint8 tensor;
- the conversion to a float tensor and the normalisation are two float32 passes (no float64, no NumPy float).
"""

import random

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageChops, ImageEnhance


# Resampling filters torch's antialiased uint8 kernels compute as PIL does (PIL's bicubic is a = -0.5, as torch's
# antialiased bicubic). Both work in fixed point, with weights of different precision: results agree within one level
# of 255, but for a few bicubic pixels in a million that differ by two (tests/training/test_train_image_ops.py).
TORCH_RESAMPLING = {Image.Resampling.BILINEAR: "bilinear", Image.Resampling.BICUBIC: "bicubic"}
# Below this many output pixels PIL's resize is cheaper than the tensor round trip torch's kernels need.
TORCH_RESIZE_MIN_PIXELS = 64 * 64


def pil_to_tensor(image: Image.Image) -> torch.Tensor:
    """A uint8 (C, H, W) tensor holding a copy of the image's pixels, laid out as PIL's (H, W, C): transposing
    bytes costs more than the float conversion that does it on the way (`Normalizer`)."""
    array = np.array(image)  # a writable copy: torch.from_numpy warns on PIL's read-only buffer
    if array.ndim == 2:
        array = array[:, :, None]
    return torch.from_numpy(array).permute(2, 0, 1)


def tensor_to_pil(pixels: torch.Tensor) -> Image.Image:
    """A uint8 (C, H, W) tensor, C in 1 or 3, as an "L" or "RGB" image."""
    array = pixels.permute(1, 2, 0).contiguous().numpy()
    return Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)


def as_pil(picture: Image.Image | torch.Tensor) -> Image.Image:
    return picture if isinstance(picture, Image.Image) else tensor_to_pil(picture)


def as_tensor(picture: Image.Image | torch.Tensor) -> torch.Tensor:
    return pil_to_tensor(picture) if isinstance(picture, Image.Image) else picture


def resize_crop(image: Image.Image, box: tuple | None, size: tuple[int, int], resample) -> Image.Image | torch.Tensor:
    """Cut out `box` (left, top, right, bottom; None: the whole image) and resize it to `size` (height, width).
    Large bilinear and bicubic outputs come from torch's uint8 kernels as a uint8 (C, height, width) tensor; small
    ones, and other filters, from PIL as an image (`as_tensor` / `as_pil` convert when the next step needs to)."""
    if box is not None:
        image = image.crop(box)
    height, width = size
    mode = TORCH_RESAMPLING.get(resample)
    if image.size == (width, height):
        return image
    if mode is None or height * width < TORCH_RESIZE_MIN_PIXELS:
        return image.resize((width, height), resample)
    return F.interpolate(pil_to_tensor(image)[None], size=(height, width), mode=mode, antialias=True)[0]


class Normalizer:
    """uint8 (C, H, W) -> contiguous float32 (C, H, W), (pixel / 255 - mean) / std, in two float32 passes: a
    multiply by 1 / (255 std) that converts (and transposes) into the output, then a subtract of mean / std."""

    def __init__(self, mean, std):
        mean, std = _per_channel(mean), _per_channel(std)
        if len(mean) != len(std) or len(mean) not in (1, 3):
            raise ValueError(f"image_mean={mean} and image_std={std} must both have 1 or 3 values.")
        if min(std) <= 0:
            raise ValueError(f"image_std={std} must be positive.")
        self.mean, self.std = mean, std
        self.scale = torch.tensor([1.0 / (255.0 * s) for s in std], dtype=torch.float32).view(-1, 1, 1)
        self.shift = torch.tensor([m / s for m, s in zip(mean, std, strict=True)], dtype=torch.float32).view(-1, 1, 1)

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        channels = pixels.shape[0]
        out = torch.empty(pixels.shape, dtype=torch.float32)
        return torch.mul(pixels, self.scale[:channels], out=out).sub_(self.shift[:channels])

    def normalize_batch(self, images: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) floats in [0, 1], on any device, normalised in place (per channel with Python numbers: no
        constant tensor to copy to a GPU at every batch)."""
        for channel in range(images.shape[1]):
            index = channel if len(self.mean) > 1 else 0
            images[:, channel].sub_(self.mean[index]).div_(self.std[index])
        return images


def _per_channel(value) -> tuple[float, ...]:
    """A mean or std as a tuple: one number stands for every channel (e.g. the processor's `image_mean=0.5`)."""
    if isinstance(value, (int, float)):
        return (float(value),)
    return tuple(float(v) for v in value)


def adjust_brightness(image: Image.Image, factor: float) -> Image.Image:
    """`ImageEnhance.Brightness(image).enhance(factor)`: a blend with black."""
    return ImageEnhance.Brightness(image).enhance(factor)


_LEVELS = np.arange(256, dtype=np.int64)


def adjust_contrast(image: Image.Image, factor: float) -> Image.Image:
    """`ImageEnhance.Contrast(image).enhance(factor)`: a blend with the grey level of the image's mean luma, rounded
    as Pillow rounds it. The mean comes from the luma histogram in integers (ImageStat sums it in Python)."""
    grey = image if image.mode == "L" else image.convert("L")
    histogram = np.asarray(grey.histogram(), dtype=np.int64)
    level = int(int(histogram @ _LEVELS) / int(histogram.sum()) + 0.5)
    flat = Image.new(image.mode, image.size, level if image.mode == "L" else (level,) * len(image.getbands()))
    return Image.blend(flat, image, factor)


def adjust_saturation(image: Image.Image, factor: float) -> Image.Image:
    """`ImageEnhance.Color(image).enhance(factor)`: a blend with the image's own grey version."""
    return ImageEnhance.Color(image).enhance(factor)


def shift_hue(image: Image.Image, hue: float) -> Image.Image:
    """Rotate the hue by `hue` of a turn (torchvision's adjust_hue) in PIL's 8-bit HSV, as before: H moves by
    round(255 hue) steps of 1/255 of a turn, modulo 256 (PIL spans a turn over 255 steps but H wraps at 256). One C
    pass: an addition without clipping."""
    shift = (int(round(hue * 255)) % 256, 0, 0)
    return ImageChops.add_modulo(image.convert("HSV"), Image.new("HSV", image.size, shift)).convert("RGB")


def grayscale(image: Image.Image) -> Image.Image:
    """Luma (ITU-R 601-2, PIL's weights), kept in the image's mode."""
    return image.convert("L").convert(image.mode)


def solarize(pixels: torch.Tensor, threshold: int = 128) -> torch.Tensor:
    """`ImageOps.solarize` on uint8 pixels: every value at or above `threshold` is inverted."""
    return torch.where(pixels >= threshold, 255 - pixels, pixels)


def color_jitter(image: Image.Image, brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1) -> Image.Image:
    """torchvision's ColorJitter: the four adjustments in random order, factors uniform in [1-x, 1+x] (hue in
    [-x, x]). Saturation and hue leave a grey image alone. The random draws (the shuffle, then one factor per
    adjustment as it runs) are the same as before these operations were made fast."""
    ops = [
        lambda im: adjust_brightness(im, random.uniform(1 - brightness, 1 + brightness)),
        lambda im: adjust_contrast(im, random.uniform(1 - contrast, 1 + contrast)),
    ]
    if image.mode == "RGB":
        ops.append(lambda im: adjust_saturation(im, random.uniform(1 - saturation, 1 + saturation)))
        ops.append(lambda im: shift_hue(im, random.uniform(-hue, hue)))
    random.shuffle(ops)
    for op in ops:
        image = op(image)
    return image

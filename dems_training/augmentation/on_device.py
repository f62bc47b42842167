"""`--augment_on_device`: the colour half of the augmentation schedule, normalisation and mixup/cutmix, batched as
tensor operations on the training device (a GPU, or the CPU in CI).

The CPU workers only decode, crop, resize and flip (uint8, `RandomResizedCropFlip`); the operations here are the
CPU path's (image_ops.py), with the same probabilities, on floats in [0, 1] instead of PIL's uint8:
- brightness, contrast, saturation: PIL's blends (with black, with the mean luma rounded to a level, with the grey
  image), clipped to [0, 1] after each, in a random order drawn per image;
- hue: a rotation in HSV by the amount PIL's 8-bit H moves, round(255 u) / 255 of a turn;
- greyscale with PIL's luma weights; solarize inverts values at or above threshold / 255.
The flip runs on the CPU before these instead of after them: the colour operations act on each pixel or on the
whole image's mean, so they commute with a mirror.

Own tensor code rather than kornia (an optional extra was the alternative): each operation is a few lines, written to
PIL's definitions and tested against the CPU path's; the jitter order is drawn per image as on the CPU; the draws
stay on the host (below); and no dependency is added.

Every random draw (which images, which factors, which order) is made on the CPU with torch's global generator, so
that the device never has to report back (no synchronisation) and resuming from a checkpoint, which restores that
generator, replays the same augmentations.
"""

import torch

from .image_ops import Normalizer
from .mixup import MixupCutmixCollator
from .schedule import AugmentationSchedule, ScheduleFollower
from .transforms import mode_for_channels


# PIL's "L" conversion (ITU-R 601-2 luma).
LUMA_WEIGHTS = (0.299, 0.587, 0.114)
# hsv -> rgb: channel value = max - chroma * clamp(min(k, 4 - k), 0, 1), k = (n + hue in sextants) mod 6, n per
# channel (the compact form of the six-case table).
_SEXTANT_OFFSETS = (5.0, 3.0, 1.0)
# Constants enter as Python numbers: a tensor made from them on a GPU would be a blocking copy at every call.


def luma(images: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) -> (N, 1, H, W); a one-channel image is its own luma."""
    if images.shape[1] == 1:
        return images
    red, green, blue = images.split(1, dim=1)
    return red * LUMA_WEIGHTS[0] + green * LUMA_WEIGHTS[1] + blue * LUMA_WEIGHTS[2]


def _per_image(values: torch.Tensor) -> torch.Tensor:
    return values.view(-1, 1, 1, 1)


def adjust_brightness(images: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    return (images * _per_image(factors)).clamp_(0.0, 1.0)


def adjust_contrast(images: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Blend with the image's mean luma rounded to a level of 255, as Pillow rounds it."""
    mean = luma(images).mean(dim=(1, 2, 3), keepdim=True)
    level = torch.floor(mean * 255.0 + 0.5) / 255.0
    return torch.lerp(level.expand_as(images), images, _per_image(factors)).clamp_(0.0, 1.0)


def adjust_saturation(images: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    return torch.lerp(luma(images).expand_as(images), images, _per_image(factors)).clamp_(0.0, 1.0)


def shift_hue(images: torch.Tensor, turns: torch.Tensor) -> torch.Tensor:
    """Rotate each image's hue by `turns` of a turn in HSV (S and V kept)."""
    red, green, blue = images.unbind(dim=1)
    value = images.amax(dim=1)
    chroma = value - images.amin(dim=1)
    safe = torch.where(chroma > 0, chroma, torch.ones_like(chroma))
    sextant = torch.where(
        value == red,
        (green - blue) / safe,
        torch.where(value == green, (blue - red) / safe + 2.0, (red - green) / safe + 4.0),
    )
    sextant = torch.remainder(sextant + 6.0 * turns.view(-1, 1, 1), 6.0)
    k = torch.stack([torch.remainder(sextant + offset, 6.0) for offset in _SEXTANT_OFFSETS], dim=1)
    return value[:, None] - chroma[:, None] * torch.minimum(k, 4.0 - k).clamp_(0.0, 1.0)


def grayscale(images: torch.Tensor) -> torch.Tensor:
    return luma(images).expand_as(images).contiguous()


def solarize(images: torch.Tensor, threshold: int) -> torch.Tensor:
    """Invert values at or above `threshold` levels of 255 (compared in the images' float32, as they were made)."""
    return torch.where(images >= threshold / 255, 1.0 - images, images)


def _apply(images: torch.Tensor, chosen: torch.Tensor, op, *per_image: torch.Tensor) -> None:
    """images[chosen] = op(images[chosen], per_image[chosen]...), in place; `chosen` is a CPU boolean mask."""
    index = chosen.nonzero().squeeze(1)
    if len(index) == 0:
        return
    device = images.device
    index_on_device = index.to(device, non_blocking=True)
    values = [v[index].to(device, non_blocking=True) for v in per_image]
    images.index_copy_(0, index_on_device, op(images.index_select(0, index_on_device), *values))


class DeviceAugmentation(ScheduleFollower):
    """uint8 (B, C, H, W) batch and integer labels on the device -> normalised float32 pixels and the mixed soft
    targets. With `schedule=None` (the finetune stage) only normalisation and mixing run."""

    def __init__(
        self,
        mean,
        std,
        num_channels: int = 3,
        schedule: AugmentationSchedule | None = None,
        mixer: MixupCutmixCollator | None = None,
        solarize_threshold: int = 128,
        brightness: float = 0.4,
        contrast: float = 0.4,
        saturation: float = 0.2,
        hue: float = 0.1,
    ):
        self.mode = mode_for_channels(num_channels)
        self.start_schedule(schedule)
        self.normalize = Normalizer(mean, std)
        self.mixer, self.solarize_threshold = mixer, solarize_threshold
        self.jitter_ranges = {"brightness": brightness, "contrast": contrast, "saturation": saturation, "hue": hue}

    def jitter_operations(self) -> list:
        """(name, op) in the CPU path's order; saturation and hue leave a grey image alone."""
        ops = [("brightness", adjust_brightness), ("contrast", adjust_contrast)]
        if self.mode == "RGB":
            ops += [("saturation", adjust_saturation), ("hue", shift_hue)]
        return ops

    def jitter_factors(self, name: str, count: int) -> torch.Tensor:
        """As torchvision's ColorJitter: uniform in [1 - x, 1 + x]; hue uniform in [-x, x] turns, then quantised to
        the steps of PIL's 8-bit hue (1/255 of a turn), as on the CPU."""
        width = self.jitter_ranges[name]
        if name == "hue":
            return torch.round((torch.rand(count) * 2 - 1) * width * 255) / 255
        return 1 - width + torch.rand(count) * 2 * width

    def color_jitter(self, images: torch.Tensor, chosen: torch.Tensor) -> None:
        """Each chosen image gets every operation once, in its own random order: in slot s, the images whose s-th
        operation is op go through op together."""
        ops = self.jitter_operations()
        count = images.shape[0]
        order = torch.rand(count, len(ops)).argsort(dim=1)
        factors = [self.jitter_factors(name, count) for name, _ in ops]
        for slot in range(len(ops)):
            for index, (_, op) in enumerate(ops):
                _apply(images, chosen & (order[:, slot] == index), op, factors[index])

    def __call__(self, pixel_values: torch.Tensor, labels: torch.Tensor) -> dict:
        if pixel_values.dtype != torch.uint8 or pixel_values.dim() != 4:
            raise ValueError(
                f"pixel_values of dtype {pixel_values.dtype} and shape {tuple(pixel_values.shape)}: "
                "--augment_on_device expects the uint8 (batch, channels, height, width) batches of its data path."
            )
        images = pixel_values.to(torch.float32).div_(255.0)
        if self.schedule is not None:
            p = self.current_probabilities()
            count = images.shape[0]
            self.color_jitter(images, torch.rand(count) < p["color_jitter"])
            chosen = torch.rand(count) < p["grayscale"]
            if self.mode == "RGB":
                _apply(images, chosen, grayscale)
            _apply(images, torch.rand(count) < p["solarize"], lambda x: solarize(x, self.solarize_threshold))
        images = self.normalize.normalize_batch(images)
        if self.mixer is None:
            return {"pixel_values": images, "labels": labels}
        pixel_values, targets = self.mixer.mix(images, labels)
        return {"pixel_values": pixel_values, "labels": targets}

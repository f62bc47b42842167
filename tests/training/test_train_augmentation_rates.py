"""Over many images, each scheduled operation runs at its scheduled probability, at two epochs, in the CPU path
(`CpuAugmentation`) and in the on-device path (`RandomResizedCropFlip` on the CPU, then `DeviceAugmentation`).

Each operation is counted where it is applied (the module functions are wrapped), so a decision drawn but not acted
on would show. Tolerance: four standard errors of a binomial rate, 4 sqrt(p (1 - p) / n), which a correct draw
exceeds with probability about 6e-5 (the draws are seeded, so the test is also repeatable)."""

import math
import random

import numpy as np
import pytest
import torch
from PIL import Image

from dems_training.augmentation import on_device as on_device_ops
from dems_training.augmentation import transforms
from dems_training.augmentation.on_device import DeviceAugmentation
from dems_training.augmentation.schedule import AugmentationSchedule
from dems_training.augmentation.transforms import CpuAugmentation, RandomResizedCropFlip


SCHEDULE = AugmentationSchedule(color_jitter_p0=0.8, grayscale_p0=0.6, solarize_p0=0.4)  # three different rates
TOTAL_EPOCHS, IMAGES = 10, 4000
EPOCHS = (0, 7)  # p(0) = p0; p(7) = p0 (1 + cos(0.7 pi)) / 2 = 0.206 p0


def tolerance(p: float, n: int = IMAGES) -> float:
    return 4 * math.sqrt(p * (1 - p) / n)


class Counter:
    """Wraps `module.name` and adds up how many images each call receives."""

    def __init__(self, monkeypatch, module, name: str, images_in=lambda *args: 1):
        self.images = 0
        original = getattr(module, name)

        def counting(*args, **kwargs):
            self.images += images_in(*args)
            return original(*args, **kwargs)

        monkeypatch.setattr(module, name, counting)


def expected_rates(epoch: int) -> dict[str, float]:
    return {**SCHEDULE.probabilities(epoch, TOTAL_EPOCHS), "hflip": 0.5}


def assert_rates(counts: dict[str, int], epoch: int) -> None:
    for name, p in expected_rates(epoch).items():
        rate = counts[name] / IMAGES
        assert abs(rate - p) <= tolerance(p), (name, epoch, rate, p)


def test_expected_rates_differ_between_the_two_epochs():
    first, later = expected_rates(EPOCHS[0]), expected_rates(EPOCHS[1])
    assert first["color_jitter"] == 0.8
    assert later["color_jitter"] == pytest.approx(0.8 * 0.5 * (1 + math.cos(0.7 * math.pi)))
    for name in ("color_jitter", "grayscale", "solarize"):
        assert first[name] - later[name] > tolerance(first[name]) + tolerance(later[name])


IMAGE = Image.fromarray(np.random.default_rng(0).integers(0, 256, (10, 12, 3), dtype=np.uint8))


@pytest.mark.parametrize("epoch", EPOCHS)
def test_cpu_path_fires_each_operation_at_its_scheduled_rate(monkeypatch, epoch):
    counters = {
        "color_jitter": Counter(monkeypatch, transforms, "color_jitter"),
        "grayscale": Counter(monkeypatch, transforms, "grayscale"),
        "solarize": Counter(monkeypatch, transforms, "solarize"),
        "hflip": Counter(monkeypatch, transforms, "hflip"),
    }
    transform = CpuAugmentation(8, (0.5,) * 3, (0.5,) * 3, schedule=SCHEDULE)
    transform.set_epoch(epoch, TOTAL_EPOCHS)
    random.seed(epoch)
    for _ in range(IMAGES):
        transform(IMAGE)
    assert_rates({name: c.images for name, c in counters.items()}, epoch)


@pytest.mark.parametrize("epoch", EPOCHS)
def test_on_device_path_fires_each_operation_at_its_scheduled_rate(monkeypatch, epoch):
    rows = lambda images, *rest: images.shape[0]  # noqa: E731  (images per batched call)
    counters = {
        # every jittered image goes through each of the four adjustments once
        "color_jitter": Counter(monkeypatch, on_device_ops, "adjust_brightness", rows),
        "contrast": Counter(monkeypatch, on_device_ops, "adjust_contrast", rows),
        "saturation": Counter(monkeypatch, on_device_ops, "adjust_saturation", rows),
        "hue": Counter(monkeypatch, on_device_ops, "shift_hue", rows),
        "grayscale": Counter(monkeypatch, on_device_ops, "grayscale", rows),
        "solarize": Counter(monkeypatch, on_device_ops, "solarize", rows),
        "hflip": Counter(monkeypatch, transforms, "hflip"),  # on the CPU, in the workers
    }
    cpu_part = RandomResizedCropFlip(8)
    on_device = DeviceAugmentation((0.5,) * 3, (0.5,) * 3, schedule=SCHEDULE)
    on_device.set_epoch(epoch, TOTAL_EPOCHS)
    random.seed(epoch)
    torch.manual_seed(epoch)
    batch = 500
    for _ in range(IMAGES // batch):
        pixels = torch.stack([cpu_part(IMAGE) for _ in range(batch)])
        out = on_device(pixels, torch.zeros(batch, dtype=torch.long))
        assert out["pixel_values"].shape == (batch, 3, 8, 8)
    counts = {name: c.images for name, c in counters.items()}
    assert counts["contrast"] == counts["saturation"] == counts["hue"] == counts["color_jitter"]
    assert_rates(counts, epoch)

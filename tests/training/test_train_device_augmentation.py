"""`--augment_on_device` (dems_training/augmentation/on_device.py), run on the CPU as CI runs it: each batched operation
against hand-computed values and against the CPU path's PIL operation, normalisation, mixing, and bad input."""

import random

import numpy as np
import pytest
import torch
from PIL import Image

from dems_training.augmentation import image_ops, on_device
from dems_training.augmentation.mixup import MixupCutmixCollator
from dems_training.augmentation.schedule import AugmentationSchedule


def unit(values) -> torch.Tensor:
    """uint8 levels -> one (1, C, H, W) image of floats in [0, 1]; `values` is (H, W, C)."""
    return torch.tensor(values, dtype=torch.float32).permute(2, 0, 1)[None] / 255


def levels(images: torch.Tensor) -> list:
    """(1, C, H, W) floats -> (H, W, C) levels of 255, rounded."""
    return (images[0].permute(1, 2, 0) * 255).round().to(torch.int64).tolist()


def test_solarize_inverts_from_128_up():
    images = unit([[[0, 127, 128], [129, 200, 255]]])  # one row of two pixels
    assert levels(on_device.solarize(images, 128)) == [[[0, 127, 127], [126, 55, 0]]]


def test_grayscale_uses_the_itu_601_luma_weights():
    images = unit([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [100, 150, 200]]])
    out = on_device.grayscale(images)
    # 0.299 * 255 = 76.2, 0.587 * 255 = 149.7, 0.114 * 255 = 29.1, 29.9 + 88.05 + 22.8 = 140.75
    expected = [76.245, 149.685, 29.07, 140.75]
    for channel in range(3):
        assert (out[0, channel, 0] * 255).tolist() == pytest.approx(expected, abs=1e-3)


def test_brightness_contrast_saturation_by_hand():
    one = torch.ones(1)
    pixels = unit([[[200, 100, 10], [250, 0, 60]]])
    assert (on_device.adjust_brightness(pixels.clone(), 0.5 * one)[0] * 255).flatten().tolist() == pytest.approx(
        [100, 125, 50, 0, 5, 30], abs=1e-3
    )
    assert levels(on_device.adjust_brightness(pixels.clone(), 1.2 * one)) == [[[240, 120, 12], [255, 0, 72]]]
    # Grey 100 and 200, mean 150: factor 0.5 halves each distance to 150.
    grey = unit([[[100], [200]], [[200], [100]]])
    assert levels(on_device.adjust_contrast(grey, 0.5 * one)) == [[[125], [175]], [[175], [125]]]
    # Red and black: luma 76.245 and 0, mean 38.12 -> level 38 (rounded as Pillow rounds it).
    red_black = unit([[[255, 0, 0], [0, 0, 0]]])
    out = on_device.adjust_contrast(red_black, 0.5 * one)[0] * 255
    assert out[:, 0, 0].tolist() == pytest.approx([146.5, 19, 19], abs=1e-3)
    # (100, 150, 200), luma 140.75: factor 0 gives the grey pixel, 2 doubles the distance (and clips at 255).
    colour = unit([[[100, 150, 200]]])
    assert (on_device.adjust_saturation(colour, 0 * one)[0, :, 0, 0] * 255).tolist() == pytest.approx([140.75] * 3)
    assert (on_device.adjust_saturation(colour, 2 * one)[0, :, 0, 0] * 255).tolist() == pytest.approx(
        [59.25, 159.25, 255], abs=1e-3
    )


def test_hue_rotation_by_hand():
    images = unit([[[255, 0, 0], [128, 128, 128], [255, 128, 0]]])  # red, grey, orange (hue 30.1 degrees)
    third = on_device.shift_hue(images, torch.tensor([1 / 3]))
    assert levels(third)[0][:2] == [[0, 255, 0], [128, 128, 128]]  # red -> green; grey has no hue
    assert levels(third)[0][2] == [0, 255, 128]  # orange -> spring green: same max, min and chroma
    assert levels(on_device.shift_hue(images, torch.tensor([-1 / 3])))[0][0] == [0, 0, 255]
    assert levels(on_device.shift_hue(images, torch.tensor([1.0]))) == levels(images)  # a whole turn


def smooth_image(height=24, width=20) -> Image.Image:
    y, x = np.mgrid[0:height, 0:width]
    array = np.stack([20 + 9 * x, 30 + 8 * y, 120 + 40 * np.sin(x / 3.0 + y / 4.0)], axis=-1)
    return Image.fromarray(np.clip(array.round(), 0, 255).astype(np.uint8))


@pytest.mark.parametrize(
    "name,factor,tolerance",
    [
        ("adjust_brightness", 1.3, 1.0),
        ("adjust_brightness", 0.7, 1.0),
        ("adjust_contrast", 1.3, 1.0),
        ("adjust_contrast", 0.6, 1.0),
        ("adjust_saturation", 1.2, 1.1),
        ("adjust_saturation", 0.8, 1.1),
        # PIL's HSV truncates hue and saturation to 8 bits: one hue step (6/255 of a sextant) moves a channel by up
        # to chroma x 6/255 <= 6 levels, one saturation step by up to 1, then the rounding.
        ("shift_hue", 20 / 255, 7.5),
        ("shift_hue", -13 / 255, 7.5),
    ],
)
def test_each_operation_matches_the_cpu_paths_pil_operation(name, factor, tolerance):
    image = smooth_image()
    cpu = np.asarray(getattr(image_ops, name)(image, factor)).astype(np.float64)
    device_factor = torch.tensor([round(factor * 255) / 255 if name == "shift_hue" else factor])
    device = getattr(on_device, name)(unit(np.asarray(image)), device_factor)[0].permute(1, 2, 0).numpy() * 255
    # PIL truncates each blend to an integer level; the tensor keeps the fraction.
    assert np.abs(cpu - device).max() <= tolerance


def test_normalises_and_passes_labels_through_when_nothing_is_drawn():
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.5)
    augmentation = on_device.DeviceAugmentation(mean, std, schedule=AugmentationSchedule(0.0, 0.0, 0.0))
    augmentation.set_epoch(0, 10)
    pixels = torch.tensor([0, 51, 255], dtype=torch.uint8).view(1, 3, 1, 1).repeat(2, 1, 2, 2)
    out = augmentation(pixels, torch.tensor([3, 1]))
    expected = [(0 - 0.5) / 0.2, (0.2 - 0.4) / 0.25, (1 - 0.3) / 0.5]
    assert out["pixel_values"].dtype == torch.float32 and out["pixel_values"].shape == (2, 3, 2, 2)
    assert out["pixel_values"][1, :, 1, 0].tolist() == pytest.approx(expected, abs=1e-6)
    assert out["labels"].tolist() == [3, 1]


def test_mixing_on_the_device_gives_soft_targets():
    random.seed(0)
    mixer = MixupCutmixCollator(num_classes=4, mixup_alpha=0.8, cutmix_alpha=0.0, label_smoothing=0.0)
    augmentation = on_device.DeviceAugmentation((0.0,) * 3, (1.0,) * 3, mixer=mixer)
    pixels = torch.tensor([0, 255], dtype=torch.uint8).view(2, 1, 1, 1).expand(2, 3, 4, 4).contiguous()
    out = augmentation(pixels, torch.tensor([0, 2]))
    lam = out["labels"][0, 0].item()
    assert 0 < lam < 1 and out["labels"][0, 2].item() == pytest.approx(1 - lam)
    # image 0 (black) mixed with image 1 (white): lam * 0 + (1 - lam) * 1 everywhere
    assert out["pixel_values"][0].flatten().tolist() == pytest.approx([1 - lam] * 48, abs=1e-6)


def test_the_schedule_off_still_normalises_and_mixes_only():
    augmentation = on_device.DeviceAugmentation((0.5,), (0.5,), num_channels=1)
    out = augmentation(torch.full((3, 1, 2, 2), 255, dtype=torch.uint8), torch.tensor([0, 1, 2]))
    assert out["pixel_values"].flatten().tolist() == [1.0] * 12


def test_float_batches_are_refused_with_what_was_given():
    augmentation = on_device.DeviceAugmentation((0.5,) * 3, (0.5,) * 3)
    with pytest.raises(ValueError, match=r"dtype torch.float32 and shape \(2, 3, 4, 4\).*expects the uint8"):
        augmentation(torch.zeros(2, 3, 4, 4), torch.tensor([0, 1]))

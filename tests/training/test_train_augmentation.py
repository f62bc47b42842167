"""The augmentation schedule's values and the PIL transforms (no torchvision)."""

import math
import random

import numpy as np
import pytest
import torch
from PIL import Image

from dems_training.augmentation.schedule import AugmentationSchedule
from dems_training.augmentation.transforms import (
    CpuAugmentation,
    ResizeNormalize,
    random_resized_crop_box,
)


def test_schedule_follows_the_cosine_from_p0_to_zero():
    schedule = AugmentationSchedule(0.6, 0.6, 0.8)
    assert schedule.probabilities(0, 10) == {"color_jitter": 0.6, "grayscale": 0.6, "solarize": 0.8}
    half = schedule.probabilities(5, 10)
    assert half["color_jitter"] == pytest.approx(0.3) and half["solarize"] == pytest.approx(0.4)
    assert schedule.probabilities(10, 10)["grayscale"] == pytest.approx(0.0, abs=1e-12)
    e, total = 3, 800
    expected = 0.5 * 0.6 * (1 + math.cos(math.pi * e / total))
    assert schedule.probabilities(e, total)["color_jitter"] == pytest.approx(expected)
    values = [schedule.probabilities(e, 10)["solarize"] for e in range(11)]
    assert values == sorted(values, reverse=True)


def test_schedule_rejects_a_probability_above_one():
    with pytest.raises(ValueError, match="solarize_p0=1.5"):
        AugmentationSchedule(0.6, 0.6, 1.5)


def test_set_epoch_changes_what_the_transform_applies():
    transform = CpuAugmentation(16, (0.5,) * 3, (0.5,) * 3)
    transform.set_epoch(0, 4)
    assert transform.current_probabilities()["grayscale"] == pytest.approx(0.6)
    transform.set_epoch(4, 4)
    assert transform.current_probabilities()["grayscale"] == pytest.approx(0.0, abs=1e-12)
    # At the last epoch nothing random but the crop is left: a full-image "crop" of an upscaled image is
    # deterministic, so two calls agree when the crop covers the whole image.
    random.seed(0)
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (8, 8, 3), dtype=np.uint8))
    out = transform(image)
    assert out.shape == (3, 16, 16) and out.dtype == torch.float32


def test_colour_ops_run_at_their_maximum_probability_and_keep_shape_and_range():
    random.seed(0)
    transform = CpuAugmentation(16, (0.0,) * 3, (1.0,) * 3, schedule=AugmentationSchedule(1.0, 0.0, 1.0))
    transform.set_epoch(0, 10)
    image = Image.fromarray(np.random.default_rng(1).integers(0, 255, (20, 24, 3), dtype=np.uint8))
    for _ in range(10):
        out = transform(image)
        assert out.shape == (3, 16, 16) and 0.0 <= out.min() and out.max() <= 1.0


def test_grey_image_feeds_three_channels_and_one_channel():
    grey = Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8) * 4)
    three = ResizeNormalize(16, (0.5,) * 3, (0.5,) * 3, num_channels=3)(grey)
    one = ResizeNormalize(16, (0.5,), (0.5,), num_channels=1)(grey)
    assert three.shape == (3, 16, 16) and one.shape == (1, 16, 16)
    torch.testing.assert_close(three[0], three[2])
    torch.testing.assert_close(three[:1], one)


def test_a_16_bit_image_trains_on_the_pixels_the_processor_gives():
    # PIL's convert("RGB") clips I;16 at 255: training would have seen white where the processor sees the gradient.
    from modeling_dems import DemsImageProcessor

    levels = np.arange(256).reshape(16, 16)
    deep = Image.fromarray((levels * 257).astype(np.uint16))
    trained_on = ResizeNormalize(16, (0.0,) * 3, (1.0,) * 3)(deep)
    for channel in trained_on:
        np.testing.assert_allclose(channel.numpy(), levels / 255, rtol=0, atol=1e-6)
    processor = DemsImageProcessor(size={"height": 16, "width": 16}, do_normalize=False)
    torch.testing.assert_close(processor(deep, return_tensors="pt")["pixel_values"][0], trained_on)


def test_random_resized_crop_box_respects_scale():
    random.seed(0)
    for _ in range(200):
        left, top, right, bottom = random_resized_crop_box(100, 80, scale=(0.2, 1.0))
        assert 0 <= left < right <= 100 and 0 <= top < bottom <= 80
        assert (right - left) * (bottom - top) >= 0.2 * 100 * 80 * 0.9  # rounding of the sides

import logging

import numpy as np
import pytest
import torch
import transformers
from PIL import Image

from modeling_dems import DemsImageProcessor


IMAGENET_MEAN = np.array([0.485, 0.456, 0.406])
IMAGENET_STD = np.array([0.229, 0.224, 0.225])


def _random_rgb(height=20, width=24, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def test_defaults_resize_bicubic_rescale_and_normalise_with_imagenet_statistics():
    processor = DemsImageProcessor()
    array = _random_rgb()
    pixels = processor(Image.fromarray(array), return_tensors="pt")["pixel_values"]
    assert pixels.shape == (1, 3, 32, 32) and pixels.dtype == torch.float32
    resized = np.asarray(Image.fromarray(array).resize((32, 32), Image.Resampling.BICUBIC), dtype=np.float64)
    expected = ((resized / 255 - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1)
    np.testing.assert_allclose(pixels[0].numpy(), expected, atol=1e-5)


def test_a_white_image_normalises_to_known_values():
    white = Image.new("RGB", (32, 32), (255, 255, 255))
    pixels = DemsImageProcessor()(white, return_tensors="pt")["pixel_values"][0]
    for channel in range(3):
        expected = (1 - IMAGENET_MEAN[channel]) / IMAGENET_STD[channel]
        assert torch.allclose(pixels[channel], torch.full((32, 32), expected, dtype=torch.float32), atol=1e-5)


def test_grey_and_rgba_become_rgb():
    processor = DemsImageProcessor(size={"height": 16, "width": 16}, do_normalize=False)
    grey = Image.fromarray(np.arange(256, dtype=np.uint8).reshape(16, 16), mode="L")
    pixels = processor(grey, return_tensors="pt")["pixel_values"][0]
    assert pixels.shape == (3, 16, 16)
    assert torch.equal(pixels[0], pixels[1]) and torch.equal(pixels[1], pixels[2])
    assert pixels[0, 0, 5].item() == pytest.approx(5 / 255)

    rgb = _random_rgb(16, 16)
    rgba = np.concatenate([rgb, np.full((16, 16, 1), 7, dtype=np.uint8)], axis=2)
    from_rgba = processor(Image.fromarray(rgba, mode="RGBA"), return_tensors="pt")["pixel_values"]
    from_rgb = processor(Image.fromarray(rgb), return_tensors="pt")["pixel_values"]
    assert torch.equal(from_rgba, from_rgb)  # alpha dropped, as PIL's convert("RGB")
    # NumPy inputs follow the same rules as PIL ones
    assert torch.equal(processor(rgba, return_tensors="pt")["pixel_values"], from_rgb)
    grey_array = np.asarray(grey)
    assert torch.equal(processor(grey_array, return_tensors="pt")["pixel_values"][0], pixels)


def test_single_channel_model_gets_grey_with_pil_luma():
    processor = DemsImageProcessor(size={"height": 16, "width": 16}, num_channels=1, do_normalize=False)
    rgb = _random_rgb(16, 16)
    from_pil = processor(Image.fromarray(rgb), return_tensors="pt")["pixel_values"]
    from_numpy = processor(rgb, return_tensors="pt")["pixel_values"]
    assert from_pil.shape == (1, 1, 16, 16)
    luma = np.asarray(Image.fromarray(rgb).convert("L"), dtype=np.float64) / 255
    np.testing.assert_allclose(from_pil[0, 0].numpy(), luma, atol=1e-6)
    # PIL rounds its luma in fixed point; the NumPy path rounds the float: at most one grey level apart
    np.testing.assert_allclose(from_numpy[0, 0].numpy(), luma, atol=1.01 / 255)


def test_inputs_of_every_kind_and_batches():
    processor = DemsImageProcessor()
    array = _random_rgb()
    chw_tensor = torch.from_numpy(array).permute(2, 0, 1).contiguous()
    batch = processor([Image.fromarray(array), array, array.transpose(2, 0, 1), chw_tensor], return_tensors="pt")
    pixels = batch["pixel_values"]
    assert pixels.shape == (4, 3, 32, 32)
    for i in range(1, 4):
        torch.testing.assert_close(pixels[i], pixels[0], rtol=0, atol=1e-6)


def test_centre_crop_like_the_reference_caltech_evaluation():
    processor = DemsImageProcessor(
        size={"height": 300, "width": 300},
        resample=Image.Resampling.BILINEAR,
        do_center_crop=True,
        crop_size={"height": 256, "width": 256},
    )
    pixels = processor(Image.fromarray(_random_rgb(400, 350)), return_tensors="pt")["pixel_values"]
    assert pixels.shape == (1, 3, 256, 256)


def test_save_and_load(tmp_path):
    processor = DemsImageProcessor(size={"height": 64, "width": 64}, num_channels=1, image_mean=0.5, image_std=0.5)
    processor.save_pretrained(tmp_path)
    loaded = DemsImageProcessor.from_pretrained(tmp_path)
    assert loaded.num_channels == 1 and loaded.size.height == 64 and loaded.image_mean == 0.5
    array = _random_rgb()
    assert torch.equal(
        processor(array, return_tensors="pt")["pixel_values"], loaded(array, return_tensors="pt")["pixel_values"]
    )


def test_bad_inputs():
    for bad in (0, -3, True, "3", 2.0):
        with pytest.raises(ValueError, match=r"num_channels=.* must be a whole number >= 1, the model's"):
            DemsImageProcessor(num_channels=bad)
    with pytest.raises(ValueError, match=r"num_channels=0 must be a whole number >= 1"):
        DemsImageProcessor()(_random_rgb(), num_channels=0)
    for two_channels in (np.zeros((2, 16, 16), dtype=np.uint8), np.zeros((16, 16, 2), dtype=np.uint8)):
        with pytest.raises(ValueError, match=r"has no axis of 1, 3, 4 channels .* 2-channel array .* ambiguous"):
            DemsImageProcessor()(two_channels)
    # the default (ImageNet) statistics are three: a per-call num_channels of 1 needs its own
    with pytest.raises(ValueError, match=r"image_mean=\(0.485, 0.456, 0.406\) gives 3 values for images of 1 channels"):
        DemsImageProcessor()(_random_rgb(), num_channels=1)


def test_processor_for_a_model_config():
    from modeling_dems import DemsConfig

    config = DemsConfig(image_size=64, patch_size=2, num_channels=1)
    processor = DemsImageProcessor.from_model_config(config, image_mean=0.5, image_std=0.5)
    assert (processor.size.height, processor.size.width, processor.num_channels) == (64, 64, 1)
    pixels = processor(_random_rgb(), return_tensors="pt")["pixel_values"]
    assert pixels.shape == (1, 1, 64, 64)
    # an override wins over the config
    assert DemsImageProcessor.from_model_config(config, size={"height": 32, "width": 32}).size.height == 32


def _plain(**kwargs) -> DemsImageProcessor:
    """A processor that neither resizes (16x16 in, 16x16 out) nor normalises: its output is rescaled pixels."""
    return DemsImageProcessor(size={"height": 16, "width": 16}, do_normalize=False, **kwargs)


def _pixels(processor, image, **kwargs) -> np.ndarray:
    return processor(image, return_tensors="pt", **kwargs)["pixel_values"][0].numpy()


def test_a_16_bit_png_is_scaled_from_its_full_range(tmp_path):
    # The grey level k of an 8-bit image is k * 257 in 16 bits (65535 = 255 * 257). PIL's own convert("RGB") clips
    # I;16 at 255, which made this gradient 99.6% white.
    levels = np.arange(256).reshape(16, 16)
    Image.fromarray((levels * 257).astype(np.uint16)).save(tmp_path / "deep.png")
    with Image.open(tmp_path / "deep.png") as image:
        assert image.mode == "I;16"
        pixels = _pixels(_plain(), image)
    for channel in pixels:
        np.testing.assert_allclose(channel, levels / 255, rtol=0, atol=1e-6)
    # without a resize nothing is rounded to 8 bits: 1000 / 65535, not 4 / 255
    deep = np.full((16, 16), 1000, dtype=np.uint16)
    np.testing.assert_allclose(_pixels(_plain(), deep, do_resize=False), 1000 / 65535, rtol=1e-6)
    # 16-bit RGB arrays too, and a resize (to 32x32) keeps the scale: a flat image stays flat
    flat = np.full((16, 16, 3), 40000, dtype=np.uint16)
    np.testing.assert_allclose(_pixels(_plain(), flat, size={"height": 32, "width": 32}), round(40000 / 257) / 255)


def test_float_images_follow_do_rescale_and_get_transformers_warning(caplog):
    image = np.random.default_rng(1).random((16, 16, 3)).astype(np.float32)  # already in [0, 1]
    expected = image.transpose(2, 0, 1)
    np.testing.assert_allclose(_pixels(_plain(), image, do_rescale=False, do_resize=False), expected, rtol=1e-6)
    # do_rescale=True divides by 255 as transformers' processors do, and now says so
    transformers.utils.logging.warning_once.cache_clear()
    with caplog.at_level(logging.WARNING):
        rescaled = _pixels(_plain(), image, do_resize=False)
    assert "trying to rescale already rescaled images" in caplog.text and "do_rescale=False" in caplog.text
    np.testing.assert_allclose(rescaled, expected / 255, rtol=1e-6)
    # floats on the 0..255 scale are rescaled once, and resized after rounding to 8 bits (not refused)
    on_255_scale = np.full((16, 16, 3), 100.4, dtype=np.float32)
    np.testing.assert_allclose(_pixels(_plain(), on_255_scale, do_resize=False), 100.4 / 255, rtol=1e-6)
    np.testing.assert_allclose(_pixels(_plain(), on_255_scale), 100 / 255, rtol=1e-6)
    # a PIL float image (mode F) is read as floats, not clipped to 8 bits
    from_pil = _pixels(_plain(), Image.fromarray(image[..., 0]), do_rescale=False, do_resize=False)
    np.testing.assert_allclose(from_pil, expected[:1].repeat(3, axis=0), rtol=1e-6)


def test_bool_masks_are_black_and_white():
    mask = np.zeros((16, 16), dtype=bool)
    mask[4:12, 2:6] = True
    for image in (mask, torch.from_numpy(mask), Image.fromarray(mask)):
        pixels = _pixels(_plain(), image)
        for channel in pixels:  # True is 1.0 (white), not 1/255
            np.testing.assert_array_equal(channel, mask.astype(np.float32))


def test_wide_integer_images_are_8_bit_values_or_refused():
    array = _random_rgb(16, 16)
    np.testing.assert_array_equal(_pixels(_plain(), array.astype(np.int64)), _pixels(_plain(), array))
    with pytest.raises(ValueError, match=r"int32 image with values in \[65535, 65535\]: .* must lie in \[0, 255\]"):
        _plain()(np.full((16, 16), 65535, dtype=np.int32))
    with pytest.raises(ValueError, match=r"int32 image with values in \[300, 300\]: .* uint16"):
        _plain()(Image.fromarray(np.full((16, 16), 300, dtype=np.int32)))  # PIL mode I


@pytest.mark.parametrize(
    ("images", "message"),
    [
        (np.zeros((0, 0, 3), dtype=np.uint8), r"image of shape \(0, 0, 3\) is empty"),
        (np.zeros((16, 0), dtype=np.uint8), r"image of shape \(16, 0, 1\) is empty"),
        (Image.new("RGB", (0, 0)), r"image of size 0x0 is empty"),
        ([], r"images is an empty batch"),
        (np.zeros((0, 16, 16, 3), dtype=np.uint8), r"images is an empty batch"),
        (np.zeros(16, dtype=np.uint8), r"images of shape \(16,\): give one image"),
        (np.full((16, 16, 3), np.nan, dtype=np.float32), r"image holds NaN or infinite values"),
        (np.full((16, 16, 3), -1.5, dtype=np.float32), r"float image with values in \[-1.5, -1.5\]: with do_rescale"),
        (np.zeros((16, 16, 3), dtype=np.complex64), r"image of dtype complex64 holds no pixel values"),
    ],
)
def test_images_with_nothing_to_process_are_refused(images, message):
    # Neither may pass silently: an empty image would become a constant one, an empty list pixel_values of shape (0,).
    with pytest.raises(ValueError, match=message):
        _plain()(images)


def test_normalised_floats_pass_through_only_without_resizing():
    normalised = np.random.default_rng(2).normal(size=(3, 16, 16)).astype(np.float32)
    kept = _pixels(_plain(), normalised, do_rescale=False, do_resize=False)
    np.testing.assert_array_equal(kept, normalised)
    with pytest.raises(ValueError, match=r"float image with values in .* cannot be resized.*do_resize=False"):
        _plain()(normalised, do_rescale=False)

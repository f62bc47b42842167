import numpy as np
import pytest
import torch
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
    with pytest.raises(ValueError, match=r"num_channels=2 must be 1 \(grey\) or 3 \(RGB\)"):
        DemsImageProcessor(num_channels=2)
    with pytest.raises(ValueError, match=r"num_channels=4 must be 1 \(grey\) or 3 \(RGB\)"):
        DemsImageProcessor()(_random_rgb(), num_channels=4)
    two_channels = np.zeros((2, 16, 16), dtype=np.uint8)
    with pytest.raises(ValueError):
        DemsImageProcessor()(two_channels)


def test_processor_for_a_model_config():
    from modeling_dems import DemsConfig

    config = DemsConfig(image_size=64, patch_size=2, num_channels=1)
    processor = DemsImageProcessor.from_model_config(config, image_mean=0.5, image_std=0.5)
    assert (processor.size.height, processor.size.width, processor.num_channels) == (64, 64, 1)
    pixels = processor(_random_rgb(), return_tensors="pt")["pixel_values"]
    assert pixels.shape == (1, 1, 64, 64)
    # an override wins over the config
    assert DemsImageProcessor.from_model_config(config, size={"height": 32, "width": 32}).size.height == 32

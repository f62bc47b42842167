"""The processor and the model agree on channels: any count the model takes (1, 3, 4, 5...), from PIL images, NumPy
arrays and torch tensors, converted as PIL's `convert` would, or kept as they are with `do_convert_rgb=False`."""

import numpy as np
import pytest
import torch
from PIL import Image
from tiny_configs import make_tiny_config

from modeling_dems import DemsConfig, DemsForImageClassification, DemsImageProcessor


MODES = {1: "L", 3: "RGB", 4: "RGBA"}
SIDE = 16


def _rgba() -> np.ndarray:
    """(H, W, 4) uint8, alpha varying from transparent to opaque."""
    return np.random.default_rng(0).integers(0, 256, size=(SIDE, SIDE, 4), dtype=np.uint8)


def _source(channels: int) -> np.ndarray:
    """The test image with `channels` channels, (H, W, C), as PIL makes it from the RGBA one."""
    return np.array(Image.fromarray(_rgba(), mode="RGBA").convert(MODES[channels])).reshape(SIDE, SIDE, channels)


def _as(kind: str, image: np.ndarray):
    channels = image.shape[-1]
    if kind == "pil":
        return Image.fromarray(image[..., 0] if channels == 1 else image, mode=MODES[channels])
    if kind == "numpy":  # grey as (H, W), colour channels last
        return image[..., 0] if channels == 1 else image
    return torch.from_numpy(image).permute(2, 0, 1).contiguous()  # torch: channels first


def _plain(num_channels: int, **kwargs) -> DemsImageProcessor:
    """Neither resizes nor normalises: the output is the converted pixels / 255."""
    return DemsImageProcessor(num_channels=num_channels, do_resize=False, do_normalize=False, **kwargs)


@pytest.mark.parametrize("kind", ["pil", "numpy", "torch"])
@pytest.mark.parametrize("image_channels", [1, 3, 4])
@pytest.mark.parametrize("model_channels", [1, 3, 4])
def test_every_input_kind_is_converted_to_the_models_channels_as_pil_does(kind, image_channels, model_channels):
    source = _source(image_channels)
    pixels = _plain(model_channels)(_as(kind, source), return_tensors="pt")["pixel_values"]
    assert pixels.shape == (1, model_channels, SIDE, SIDE)
    mode = MODES[image_channels]
    expected = np.asarray(Image.fromarray(source.squeeze(-1) if image_channels == 1 else source, mode=mode).convert(
        MODES[model_channels]
    )).reshape(SIDE, SIDE, model_channels)
    expected = expected.transpose(2, 0, 1) / 255
    # PIL rounds its luma in fixed point, the arrays' path the float: at most one grey level apart
    tolerance = 1.01 / 255 if (kind != "pil" and model_channels == 1 and image_channels > 1) else 1e-6
    np.testing.assert_allclose(pixels[0].numpy(), expected, rtol=0, atol=tolerance)


def test_a_four_channel_model_keeps_alpha_and_gives_the_others_an_opaque_one():
    rgba = _rgba()
    processor = _plain(4)
    for image in (Image.fromarray(rgba, mode="RGBA"), rgba, torch.from_numpy(rgba).permute(2, 0, 1)):
        pixels = processor(image, return_tensors="pt")["pixel_values"][0].numpy()
        np.testing.assert_allclose(pixels, rgba.transpose(2, 0, 1) / 255, rtol=0, atol=1e-6)
    for rgb in (rgba[..., :3], Image.fromarray(rgba[..., :3])):
        assert (processor(rgb, return_tensors="pt")["pixel_values"][0, 3] == 1).all()
    # floats already in [0, 1] (do_rescale=False) get an alpha of 1.0, not 255
    floats = rgba[..., :3].astype(np.float32) / 255
    assert (processor(floats, do_rescale=False, return_tensors="pt")["pixel_values"][0, 3] == 1).all()


def test_channels_are_resized_independently():
    # PIL resizes RGBA with premultiplied alpha; here alpha is one more channel and does not leak into the colours
    rgba = _rgba()
    size = {"height": 32, "width": 32}
    four = DemsImageProcessor(num_channels=4, size=size, do_normalize=False)(rgba, return_tensors="pt")
    three = DemsImageProcessor(num_channels=3, size=size, do_normalize=False)(rgba[..., :3], return_tensors="pt")
    one = DemsImageProcessor(num_channels=1, size=size, do_normalize=False)(rgba[..., 3], return_tensors="pt")
    assert four["pixel_values"].shape == (1, 4, 32, 32)
    torch.testing.assert_close(four["pixel_values"][:, :3], three["pixel_values"], rtol=0, atol=0)
    torch.testing.assert_close(four["pixel_values"][:, 3:], one["pixel_values"], rtol=0, atol=0)


@pytest.mark.parametrize("model_channels", [1, 3, 4, 5])
def test_the_processor_for_a_model_config_feeds_that_model(model_channels):
    config = make_tiny_config(num_channels=model_channels)
    processor = DemsImageProcessor.from_model_config(config)
    assert processor.num_channels == model_channels
    # ImageNet's three statistics for RGB; 0.5 for every channel of any other count
    expected_mean = [0.485, 0.456, 0.406] if model_channels == 3 else 0.5
    assert processor.image_mean == pytest.approx(expected_mean)
    image = np.random.default_rng(1).integers(0, 256, size=(20, 24, model_channels), dtype=np.uint8)
    pixels = processor(image, return_tensors="pt")["pixel_values"]
    assert pixels.shape == (1, model_channels, config.image_size, config.image_size)
    with torch.no_grad():
        assert DemsForImageClassification(config).eval()(pixels).logits.shape == (1, config.num_labels)


def test_any_other_channel_count_takes_images_that_have_it():
    bands = np.random.default_rng(2).integers(0, 256, size=(5, 24, 20), dtype=np.uint8)
    processor = DemsImageProcessor(num_channels=5, size={"height": 16, "width": 16}, do_normalize=False)
    channels_first = processor(bands, return_tensors="pt")["pixel_values"]
    channels_last = processor(bands.transpose(1, 2, 0), return_tensors="pt")["pixel_values"]
    assert channels_first.shape == (1, 5, 16, 16)
    torch.testing.assert_close(channels_first, channels_last, rtol=0, atol=0)
    # each band resized as a grey image
    band = Image.fromarray(bands[2]).resize((16, 16), Image.Resampling.BICUBIC)
    np.testing.assert_allclose(channels_first[0, 2].numpy(), np.asarray(band) / 255, rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    ("num_channels", "image", "message"),
    [
        (5, _source(3), r"image with 3 channels .* does not fit num_channels=5, the model's"),
        (5, Image.fromarray(_rgba(), mode="RGBA"), r"image with 4 channels .* does not fit num_channels=5"),
        (3, np.zeros((5, 16, 16), dtype=np.uint8), r"has no axis of 1, 3, 4 channels .* num_channels=3"),
        (1, np.zeros((16, 16, 2), dtype=np.uint8), r"has no axis of 1, 3, 4 channels"),
    ],
)
def test_channels_that_do_not_fit_name_both_counts(num_channels, image, message):
    with pytest.raises(ValueError, match=message):
        _plain(num_channels)(image)


def test_do_convert_rgb_false_keeps_each_images_channels():
    rgba = _rgba()
    for processor in (_plain(4), _plain(3)):
        kept = processor(rgba, do_convert_rgb=False, return_tensors="pt")["pixel_values"][0].numpy()
        np.testing.assert_allclose(kept, rgba.transpose(2, 0, 1) / 255, rtol=0, atol=1e-6)  # alpha kept
    pil = _plain(3, do_convert_rgb=False)(Image.fromarray(rgba, mode="RGBA"), return_tensors="pt")["pixel_values"]
    assert pil.shape == (1, 4, SIDE, SIDE)
    # the flag is saved and loaded with the rest
    assert DemsImageProcessor.from_dict(_plain(3, do_convert_rgb=False).to_dict()).do_convert_rgb is False
    # a model of another channel count refuses what that makes, naming both counts
    pixels = _plain(3)(rgba, do_convert_rgb=False, return_tensors="pt")
    with pytest.raises(ValueError, match=r"pixel_values has 4 channels but config.num_channels=3.*do_convert_rgb"):
        DemsForImageClassification(make_tiny_config())(pixels["pixel_values"])
    # statistics per channel must match the channels the images keep
    with pytest.raises(ValueError, match=r"image_std=\(0.229, 0.224, 0.225\) gives 3 values for images of 4 channels"):
        DemsImageProcessor(image_mean=0.5)(rgba, do_convert_rgb=False)


def test_config_and_processor_agree_after_a_round_trip(tmp_path):
    config = DemsConfig(image_size=32, patch_size=2, num_channels=4, num_attention_heads=2, hidden_size=32)
    DemsImageProcessor.from_model_config(config).save_pretrained(tmp_path)
    loaded = DemsImageProcessor.from_pretrained(tmp_path)
    assert (loaded.num_channels, loaded.image_mean, loaded.image_std) == (4, 0.5, 0.5)

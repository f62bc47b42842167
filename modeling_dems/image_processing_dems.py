"""Image processor for DEMS-ViT on transformers' PIL/NumPy backend (no torchvision needed).

Self-contained (imports only numpy, PIL and transformers) so that it can be shipped as remote code.
"""

import numpy as np
from PIL import Image
from transformers.image_processing_backends import PilBackend
from transformers.image_utils import (
    IMAGENET_DEFAULT_MEAN,
    IMAGENET_DEFAULT_STD,
    PILImageResampling,
    infer_channel_dimension_format,
    is_scaled_image,
)
from transformers.processing_utils import ImagesKwargs
from transformers.utils import is_torch_tensor, logging


logger = logging.get_logger(__name__)

# ITU-R 601-2 luma, the weights PIL's convert("L") uses, so that NumPy and PIL inputs give the same grey.
_LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float64)
# PIL modes of more than 8 bits per pixel: PIL's convert("L"/"RGB") clips them at 255 instead of scaling them, so
# they are read as arrays and scaled by their dtype (_to_pixel_scale).
_WIDE_PIL_MODES = ("I", "F", "I;16", "I;16L", "I;16B", "I;16N")


class DemsImageProcessorKwargs(ImagesKwargs, total=False):
    """num_channels (`int`): channels the model takes, 1 (grey) or 3 (RGB); inputs are converted to it."""

    num_channels: int


class DemsImageProcessor(PilBackend):
    r"""
    Turns images into `pixel_values` for DEMS-ViT: converts them to `num_channels` channels, resizes to `size`
    (bicubic, as the reference), optionally centre-crops, rescales to [0, 1] and normalises with the ImageNet mean
    and standard deviation.

    Accepts a PIL image, a NumPy array or a torch tensor (`(H, W)`, `(H, W, C)` or `(C, H, W)`, C in 1, 3, 4),
    or a list of them. Grey images become RGB by repeating the channel and RGBA loses its alpha, as PIL's
    `convert("RGB")` does; with `num_channels=1` colour images become grey with PIL's luma weights.

    Pixel values are read by their type: uint8 as is; 16-bit images (uint16, PIL `I;16`) scaled from [0, 65535];
    bool masks as black and white; other integer types as 8-bit values (in [0, 255], else refused); floats as given
    (on the 0..255 scale when `do_rescale`, which, as in transformers, warns when they look already rescaled to
    [0, 1]). Empty images, an empty batch and arrays whose channel axis cannot be found are refused.

    Args:
        size (`dict[str, int]`, *optional*, defaults to `{"height": 32, "width": 32}`): output size; both sides
            must be multiples of the model's `8 * patch_size`.
        resample (`PILImageResampling`, *optional*, defaults to `BICUBIC`).
        num_channels (`int`, *optional*, defaults to 3): 1 or 3, the model's `config.num_channels`.
        do_center_crop / crop_size: e.g. the reference's Caltech101 evaluation, resize to 300 then crop 256.
        image_mean / image_std: default ImageNet's; the reference uses 0.5 / 0.5 for the MNIST family.

    Returns a `BatchFeature` with `pixel_values` of shape `(batch, num_channels, height, width)`.
    """

    valid_kwargs = DemsImageProcessorKwargs
    model_input_names = ["pixel_values"]
    resample = PILImageResampling.BICUBIC
    image_mean = IMAGENET_DEFAULT_MEAN
    image_std = IMAGENET_DEFAULT_STD
    size = {"height": 32, "width": 32}
    do_resize = True
    do_rescale = True
    do_normalize = True
    num_channels = 3

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._check_num_channels(self.num_channels)

    @classmethod
    def from_model_config(cls, config, **kwargs) -> "DemsImageProcessor":
        """The processor a model was built for: resize to `config.image_size`, `config.num_channels` channels;
        keyword arguments (e.g. `image_mean`, `do_center_crop`) override or add settings."""
        size = {"height": config.image_size, "width": config.image_size}
        return cls(**{"size": size, "num_channels": config.num_channels, **kwargs})

    @staticmethod
    def _check_num_channels(num_channels) -> None:
        if num_channels not in (1, 3):
            raise ValueError(
                f"DemsImageProcessor.num_channels={num_channels!r} must be 1 (grey) or 3 (RGB), the model's "
                "config.num_channels."
            )

    def _validate_preprocess_kwargs(self, num_channels=None, **kwargs):
        self._check_num_channels(num_channels)
        super()._validate_preprocess_kwargs(**kwargs)

    def _prepare_images_structure(self, images, expected_ndims: int = 3):
        # transformers batches arrays by their number of axes: a grey (H, W) array or tensor gains a channel axis
        # first, so that it counts as one image rather than as a batch of rows.
        if _is_grey_array(images):
            images = images[..., None]
        elif isinstance(images, (list, tuple)):
            images = [image[..., None] if _is_grey_array(image) else image for image in images]
        if getattr(images, "ndim", 3) not in (3, 4):
            raise ValueError(
                f"images of shape {tuple(images.shape)}: give one image, (H, W), (H, W, C) or (C, H, W), a batch "
                "(N, H, W, C) or (N, C, H, W), or a list of images."
            )
        images = super()._prepare_images_structure(images, expected_ndims=expected_ndims)
        if len(images) == 0:
            raise ValueError("images is an empty batch: pass at least one image.")
        return images

    def process_image(
        self, image, do_convert_rgb=None, input_data_format=None, num_channels=3, do_rescale=True, **kwargs
    ):
        """One image -> a channels-first NumPy array with `num_channels` channels (values not yet rescaled)."""
        if isinstance(image, Image.Image):
            if image.width == 0 or image.height == 0:
                raise ValueError(f"image of size {image.width}x{image.height} is empty: it needs at least one pixel.")
            if image.mode in _WIDE_PIL_MODES:
                image = np.asarray(image)
            else:  # PIL knows every 8-bit mode (P, LA, 1, CMYK, ...); let it do the conversion.
                image = image.convert("L" if num_channels == 1 else "RGB")
        if is_torch_tensor(image):
            image = image.detach().cpu()
            image = (image.float() if str(image.dtype) == "torch.bfloat16" else image).numpy()  # NumPy has no bf16
        if isinstance(image, np.ndarray):
            image = _to_pixel_scale(image, do_rescale)
            if input_data_format is None:
                _check_channel_axis(image)
        image = super().process_image(image, do_convert_rgb=False, input_data_format=input_data_format)
        return _to_num_channels(image, num_channels)

    def resize(self, image, size, resample=None, reducing_gap=None, **kwargs):
        # The PIL backend resizes 8-bit pixels and takes floats in [0, 1] there and back itself; floats on the 0..255
        # scale (e.g. a 16-bit image, scaled) go the same way, rounded, instead of being refused.
        if image.dtype.kind == "f" and not is_scaled_image(image):
            if image.min() < 0 or image.max() > 255:
                raise ValueError(
                    f"float image with values in [{image.min():g}, {image.max():g}] cannot be resized: the PIL "
                    "backend resizes pixels in [0, 1] or [0, 255]. Resize before normalising, or pass do_resize=False."
                )
            image = np.round(image).astype(np.uint8)
        return super().resize(image, size, resample=resample, reducing_gap=reducing_gap, **kwargs)


def to_8_bit(image: Image.Image) -> Image.Image:
    """A PIL image of more than 8 bits per pixel (`I;16`, `I`, `F`) as an 8-bit grey one, its pixels scaled as
    `DemsImageProcessor` scales them (PIL's own convert clips them at 255); any other image unchanged. For code that
    works on PIL images, such as the training transforms, so that training and the processor see the same pixels."""
    if image.mode not in _WIDE_PIL_MODES:
        return image
    return Image.fromarray(np.round(_to_pixel_scale(np.asarray(image), do_rescale=True)).astype(np.uint8))


def _to_pixel_scale(image: np.ndarray, do_rescale: bool) -> np.ndarray:
    """Pixel values of an array, by its dtype, on the scale the rest of the processing expects (0..255, or floats as
    given), or a ValueError naming the dtype, the values and the rule."""
    if image.size == 0:
        raise ValueError(f"image of shape {image.shape} is empty: it needs at least one pixel and one channel.")
    kind, bits = image.dtype.kind, 8 * image.dtype.itemsize
    if kind == "b":  # a mask: True is white, as in PIL's mode "1"
        return image.astype(np.uint8) * np.uint8(255)
    if kind == "u" and bits == 8:
        return image
    if kind == "u" and bits == 16:  # the full 16-bit range onto 0..255 (65535 = 255 * 257), kept as float
        return image.astype(np.float32) / 257
    if kind in "iu":
        low, high = image.min(), image.max()
        if low < 0 or high > 255:
            raise ValueError(
                f"{image.dtype} image with values in [{low}, {high}]: integer images other than uint8 and uint16 are "
                "read as 8-bit pixels and must lie in [0, 255]. Give 16-bit data as uint16 (scaled from [0, 65535]) "
                "or the image as floats."
            )
        return image.astype(np.uint8)
    if kind != "f":
        raise ValueError(f"image of dtype {image.dtype} holds no pixel values: give integers, floats or bools.")
    image = image.astype(np.float32)
    if not np.isfinite(image).all():
        raise ValueError("image holds NaN or infinite values.")
    if do_rescale and is_scaled_image(image):
        # transformers' warning, in its words: with do_rescale the pixels are divided by 255 whatever their range
        logger.warning_once(
            "It looks like you are trying to rescale already rescaled images. If the input images have pixel values "
            "between 0 and 1, set `do_rescale=False` to avoid rescaling them again."
        )
    elif do_rescale and (image.min() < 0 or image.max() > 255):
        raise ValueError(
            f"float image with values in [{image.min():g}, {image.max():g}]: with do_rescale=True pixels must be on "
            "the 0..255 scale. Pass do_rescale=False for an image already in [0, 1] (and do_normalize=False for one "
            "already normalised)."
        )
    return image


def _check_channel_axis(image: np.ndarray) -> None:
    if image.ndim == 2:  # grey
        return
    if image.ndim != 3:
        raise ValueError(f"image of shape {image.shape}: an image is (H, W), (H, W, C) or (C, H, W).")
    try:
        infer_channel_dimension_format(image, num_channels=(1, 3, 4))
    except ValueError:
        raise ValueError(
            f"image of shape {image.shape} has no axis of 1, 3 or 4 channels (grey, RGB, RGBA) at either end. A "
            "2-channel array is ambiguous (grey and alpha? two bands?): convert it to 1, 3 or 4 channels first, or "
            "pass a PIL image in mode 'LA'."
        ) from None


def _is_grey_array(image) -> bool:
    """A NumPy array or torch tensor of shape (H, W); PIL images have no `ndim`."""
    return getattr(image, "ndim", None) == 2


def _to_num_channels(image: np.ndarray, num_channels: int) -> np.ndarray:
    """Convert a channels-first array with 1, 3 or 4 channels to `num_channels` (1 or 3) channels."""
    channels = image.shape[0]
    if channels == 4:  # RGBA: drop alpha, as PIL's convert("RGB") does
        image, channels = image[:3], 3
    if channels == num_channels:
        return image
    if channels == 1 and num_channels == 3:
        return np.repeat(image, 3, axis=0)
    if channels == 3 and num_channels == 1:
        grey = np.tensordot(_LUMA_WEIGHTS, image.astype(np.float64), axes=1)[None]
        return grey.round().astype(image.dtype) if np.issubdtype(image.dtype, np.integer) else grey.astype(image.dtype)
    raise ValueError(
        f"image with {image.shape[0]} channels (shape {image.shape}, channels first) cannot be converted to "
        f"num_channels={num_channels}: give 1 (grey), 3 (RGB) or 4 (RGBA) channels."
    )


__all__ = ["DemsImageProcessor", "to_8_bit"]

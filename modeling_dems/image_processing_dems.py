"""Image processor for DEMS-ViT on transformers' PIL/NumPy backend (no torchvision needed).

Self-contained (imports only numpy, PIL and transformers) so that it can be shipped as remote code.
"""

import numpy as np
from PIL import Image
from transformers.image_processing_backends import PilBackend
from transformers.image_utils import (
    IMAGENET_DEFAULT_MEAN,
    IMAGENET_DEFAULT_STD,
    ChannelDimension,
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
# The 8-bit PIL mode of each channel count PIL has one for: PIL converts any 8-bit mode (P, 1, CMYK, ...) to these.
_PIL_MODE_FOR_CHANNELS = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}
# Without image_mean / image_std: ImageNet's statistics (the reference's) are per RGB channel; any other channel
# count gets 0.5 / 0.5 for every channel, the reference's statistics for its grey data sets.
_NEUTRAL_STATISTIC = 0.5


class DemsImageProcessorKwargs(ImagesKwargs, total=False):
    """num_channels (`int`): channels the model takes (its `config.num_channels`), any count >= 1; unless
    `do_convert_rgb=False`, images are converted to it where a conversion exists (1, 3 and 4 channels)."""

    num_channels: int


class DemsImageProcessor(PilBackend):
    r"""
    Turns images into `pixel_values` for DEMS-ViT: converts them to `num_channels` channels, resizes to `size`
    (bicubic, as the reference), optionally centre-crops, rescales to [0, 1] and normalises with the ImageNet mean
    and standard deviation.

    Accepts a PIL image, a NumPy array or a torch tensor (`(H, W)`, `(H, W, C)` or `(C, H, W)`, C in 1, 3, 4 or
    `num_channels`), or a list of them.

    Channels: images are converted to `num_channels` as PIL's `convert` does. For a 3-channel model grey images
    become RGB by repeating the channel and RGBA loses its alpha (`convert("RGB")`); for a 1-channel model colour
    becomes grey with PIL's luma weights (`convert("L")`); for a 4-channel model RGBA keeps its alpha and grey and RGB
    images get an opaque one (`convert("RGBA")`: 255, or 1.0 for floats with `do_rescale=False`). Any other count
    takes images that already have it (arrays, tensors); an image whose channels cannot be converted is refused with
    both counts named. `do_convert_rgb=False` converts nothing: each image keeps its own channels (an RGBA image its
    alpha), and the model refuses pixel values whose channels differ from its `config.num_channels`. Channels are
    resized independently of each other (PIL resizes RGBA with its colours premultiplied by alpha; a model reads
    alpha as one more channel).

    Pixel values are read by their type: uint8 as is; 16-bit images (uint16, PIL `I;16`) scaled from [0, 65535];
    bool masks as black and white; other integer types as 8-bit values (in [0, 255], else refused); floats as given
    (on the 0..255 scale when `do_rescale`, which, as in transformers, warns when they look already rescaled to
    [0, 1]). Empty images, an empty batch and arrays whose channel axis cannot be found are refused.

    Args:
        size (`dict[str, int]`, *optional*, defaults to `{"height": 32, "width": 32}`): output size; both sides
            must be multiples of the model's `8 * patch_size`.
        resample (`PILImageResampling`, *optional*, defaults to `BICUBIC`).
        num_channels (`int`, *optional*, defaults to 3): the model's `config.num_channels`, any count >= 1.
        do_convert_rgb (`bool`, *optional*): `False` keeps each image's channels as they are (see above); by
            default images are converted to `num_channels`.
        do_center_crop / crop_size: e.g. the reference's Caltech101 evaluation, resize to 300 then crop 256.
        image_mean / image_std: one value per channel or one for all. By default ImageNet's for 3 channels, 0.5 for
            any other count; the reference uses 0.5 / 0.5 for the MNIST family.

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
        num_channels = kwargs.get("num_channels", type(self).num_channels)
        self._check_num_channels(num_channels)
        if num_channels != 3:
            # ImageNet's statistics are three, one per RGB channel: they fit no other channel count.
            for name in ("image_mean", "image_std"):
                if kwargs.get(name) is None:
                    kwargs[name] = _NEUTRAL_STATISTIC
        super().__init__(**kwargs)

    @classmethod
    def from_model_config(cls, config, **kwargs) -> "DemsImageProcessor":
        """The processor a model was built for: resize to `config.image_size`, `config.num_channels` channels;
        keyword arguments (e.g. `image_mean`, `do_center_crop`) override or add settings."""
        size = {"height": config.image_size, "width": config.image_size}
        return cls(**{"size": size, "num_channels": config.num_channels, **kwargs})

    @staticmethod
    def _check_num_channels(num_channels) -> None:
        if isinstance(num_channels, bool) or not isinstance(num_channels, int) or num_channels < 1:
            raise ValueError(
                f"DemsImageProcessor.num_channels={num_channels!r} must be a whole number >= 1, the model's "
                "config.num_channels (1 grey, 3 RGB, 4 RGBA, or any other count of bands)."
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
        self,
        image,
        do_convert_rgb=None,
        input_data_format=None,
        num_channels=3,
        do_rescale=True,
        do_normalize=False,
        image_mean=None,
        image_std=None,
        **kwargs,
    ):
        """One image -> a channels-first NumPy array with `num_channels` channels (values not yet rescaled), or,
        with `do_convert_rgb=False`, with its own channels."""
        convert = do_convert_rgb is not False
        if isinstance(image, Image.Image):
            if image.width == 0 or image.height == 0:
                raise ValueError(f"image of size {image.width}x{image.height} is empty: it needs at least one pixel.")
            if convert and image.mode not in _WIDE_PIL_MODES and num_channels in _PIL_MODE_FOR_CHANNELS:
                # PIL knows every 8-bit mode (P, LA, 1, CMYK, ...); let it do the conversion.
                image = image.convert(_PIL_MODE_FOR_CHANNELS[num_channels])
            image = np.asarray(image)  # (H, W) or (H, W, C)
            input_data_format = ChannelDimension.LAST
        if is_torch_tensor(image):
            image = image.detach().cpu()
            image = (image.float() if str(image.dtype) == "torch.bfloat16" else image).numpy()  # NumPy has no bf16
        if not isinstance(image, np.ndarray):
            raise TypeError(f"image of type {type(image).__name__}: give a PIL image, a NumPy array or a torch tensor.")
        image = _to_pixel_scale(image, do_rescale)
        if image.ndim == 2:
            image = image[None]
        else:
            if input_data_format is None:
                input_data_format = _channel_axis(image, num_channels)
            if ChannelDimension(input_data_format) == ChannelDimension.LAST:
                image = np.moveaxis(image, -1, 0)
        if convert:
            image = _to_num_channels(image, num_channels, do_rescale)
        elif image.shape[0] != num_channels:
            logger.warning_once(
                f"do_convert_rgb=False keeps images of {image.shape[0]} channels as they are, but num_channels="
                f"{num_channels}: a model whose config.num_channels is {num_channels} refuses them."
            )
        if do_normalize:
            for name, values in (("image_mean", image_mean), ("image_std", image_std)):
                if isinstance(values, (list, tuple)) and len(values) != image.shape[0]:
                    raise ValueError(
                        f"{name}={tuple(values)} gives {len(values)} values for images of {image.shape[0]} "
                        "channels: give one value per channel, or one number for all."
                    )
        return image

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
        if image.shape[0] not in (1, 3):
            # PIL has no mode for most channel counts, and resizes RGBA with its colours premultiplied by alpha:
            # each channel is resized on its own, as grey.
            return np.concatenate(
                [super(DemsImageProcessor, self).resize(c[None], size, resample, reducing_gap, **kwargs) for c in image]
            )
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


def _channel_axis(image: np.ndarray, num_channels: int) -> ChannelDimension:
    """Where the channels of a 3-D array are: first or last, whichever axis has 1, 3, 4 (grey, RGB, RGBA) or
    `num_channels` entries (first when both do), or a ValueError."""
    if image.ndim != 3:
        raise ValueError(f"image of shape {image.shape}: an image is (H, W), (H, W, C) or (C, H, W).")
    counts = sorted({1, 3, 4, num_channels})
    try:
        return infer_channel_dimension_format(image, num_channels=tuple(counts))
    except ValueError:
        names = ", ".join(str(c) for c in counts)
        raise ValueError(
            f"image of shape {image.shape} has no axis of {names} channels at either end (1, 3, 4: grey, RGB, RGBA; "
            f"num_channels={num_channels}: the model's). A 2-channel array for a model of other channels is "
            "ambiguous (grey and alpha? two bands?): convert it first, or pass a PIL image in mode 'LA'."
        ) from None


def _is_grey_array(image) -> bool:
    """A NumPy array or torch tensor of shape (H, W); PIL images have no `ndim`."""
    return getattr(image, "ndim", None) == 2


def _to_num_channels(image: np.ndarray, num_channels: int, do_rescale: bool) -> np.ndarray:
    """A channels-first array converted to `num_channels` channels as PIL's `convert` would: alpha dropped (4 -> 3,
    4 -> 1), grey repeated (1 -> 3), luma (3 -> 1), an opaque alpha added (1 or 3 -> 4: 255 on the 0..255 scale, 1.0
    for floats that `do_rescale=False` says are in [0, 1]); or a ValueError naming both counts when there is no such
    conversion."""
    channels = image.shape[0]
    if channels == num_channels:
        return image
    if channels == 4 and num_channels in (1, 3):  # RGBA: drop alpha, as PIL's convert("RGB"/"L") does
        image, channels = image[:3], 3
    if channels == 1 and num_channels in (3, 4):
        image, channels = np.repeat(image, 3, axis=0), 3
    if channels == 3 and num_channels == 1:
        grey = np.tensordot(_LUMA_WEIGHTS, image.astype(np.float64), axes=1)[None]
        return grey.round().astype(image.dtype) if np.issubdtype(image.dtype, np.integer) else grey.astype(image.dtype)
    if channels == 3 and num_channels == 4:
        opaque = 255 if do_rescale or np.issubdtype(image.dtype, np.integer) else 1.0
        return np.concatenate([image, np.full_like(image[:1], opaque)])
    if channels == num_channels:
        return image
    raise ValueError(
        f"image with {image.shape[0]} channels (shape {image.shape}, channels first) does not fit num_channels="
        f"{num_channels}, the model's: the processor converts only between 1 (grey), 3 (RGB) and 4 (RGBA) channels. "
        f"Give images of {num_channels} channels."
    )


__all__ = ["DemsImageProcessor", "to_8_bit"]

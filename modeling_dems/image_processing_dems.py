"""Image processor for DEMS-ViT on transformers' PIL/NumPy backend (no torchvision needed).

Self-contained (imports only numpy, PIL and transformers) so that it can be shipped as remote code.
"""

import numpy as np
from PIL import Image
from transformers.image_processing_backends import PilBackend
from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, PILImageResampling
from transformers.processing_utils import ImagesKwargs


# ITU-R 601-2 luma, the weights PIL's convert("L") uses, so that NumPy and PIL inputs give the same grey.
_LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float64)


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
        return super()._prepare_images_structure(images, expected_ndims=expected_ndims)

    def process_image(self, image, do_convert_rgb=None, input_data_format=None, num_channels=3, **kwargs):
        """One image -> a channels-first NumPy array with `num_channels` channels (values not yet rescaled)."""
        if isinstance(image, Image.Image):
            # PIL knows every mode (P, LA, I;16, CMYK, ...); let it do the conversion.
            image = image.convert("L" if num_channels == 1 else "RGB")
        image = super().process_image(image, do_convert_rgb=False, input_data_format=input_data_format)
        return _to_num_channels(image, num_channels)


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


__all__ = ["DemsImageProcessor"]

"""Per-image operations of the CPU input pipeline, on uint8 images, each the same computation as the PIL operation
it stands for and faster:

- resizing a crop runs in torch's uint8 antialiased kernels (PIL's filters, vectorised) for all but small images;
- brightness, contrast and saturation are Pillow's own blends (ImageEnhance), without ImageStat's Python loop (and
  for saturation without ImageEnhance's L -> RGB conversion);
  brightness and contrast on large images as a 256-entry table made by that blend and applied by Image.point;
- the hue shift is PIL's 8-bit HSV round trip, bit for bit, from tables made by PIL's own conversions (PIL's float
  conversions themselves for small images);
- greyscale can hand over its luma plane as a tensor (broadcast to three channels);
- solarize is one XOR with a 0/255 mask on the uint8 pixels;
- tensors and PIL images swap planes (bands packed by PIL / Image.merge) at large sizes, not torch's byte-wise
  transpose;
- the conversion to a float tensor and the normalisation are two float32 passes (no float64, no NumPy float).
"""

import functools
import random

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageChops, ImageEnhance


# Resampling filters torch's antialiased uint8 kernels compute as PIL does (PIL's bicubic is a = -0.5, as torch's
# antialiased bicubic). Both work in fixed point, with weights of different precision: results agree within one level
# of 255, but for a few bicubic pixels in a million that differ by two (tests/training/test_train_image_ops.py).
TORCH_RESAMPLING = {Image.Resampling.BILINEAR: "bilinear", Image.Resampling.BICUBIC: "bicubic"}
# Below this many output pixels PIL's resize is cheaper than the tensor round trip torch's kernels need.
TORCH_RESIZE_MIN_PIXELS = 64 * 64


def pil_to_tensor(image: Image.Image) -> torch.Tensor:
    """A uint8 (C, H, W) tensor holding a copy of the image's pixels, laid out as PIL's (H, W, C): transposing
    bytes costs more than the float conversion that does it on the way (`Normalizer`)."""
    array = np.array(image)  # a writable copy: torch.from_numpy warns on PIL's read-only buffer
    if array.ndim == 2:
        array = array[:, :, None]
    return torch.from_numpy(array).permute(2, 0, 1)


def planar_tensor(image: Image.Image) -> torch.Tensor:
    """An "RGB" image as a contiguous uint8 (3, H, W) tensor, one plane per band: costs about what `pil_to_tensor`
    does, and the float conversion (`Normalizer`) then runs twice as fast as on interleaved pixels."""
    out = torch.empty((3, image.height, image.width), dtype=torch.uint8)
    planes = out.numpy().reshape(3, -1)
    # Each band packed by PIL into bytes, then copied into its plane: half the cost of Image.split + np.asarray,
    # which copy twice before this copy.
    for plane, band in zip(planes, "RGB", strict=True):
        plane[...] = np.frombuffer(image.tobytes("raw", band), np.uint8)
    return out


def tensor_to_pil(pixels: torch.Tensor) -> Image.Image:
    """A uint8 (C, H, W) tensor, C in 1 or 3, as an "L" or "RGB" image. Contiguous planes are handed to PIL without
    a copy and interleaved by Image.merge: a third of the cost of torch's permute + contiguous, which moves one byte
    at a time."""
    if pixels.shape[0] == 3 and pixels.is_contiguous():
        size = (pixels.shape[2], pixels.shape[1])
        return Image.merge("RGB", [Image.frombuffer("L", size, plane.numpy(), "raw", "L", 0, 1) for plane in pixels])
    array = pixels.permute(1, 2, 0).contiguous().numpy()
    return Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)


def as_pil(picture: Image.Image | torch.Tensor) -> Image.Image:
    return picture if isinstance(picture, Image.Image) else tensor_to_pil(picture)


def as_tensor(picture: Image.Image | torch.Tensor) -> torch.Tensor:
    """uint8 (C, H, W): planes for large "RGB" images (cheaper to normalise), else `pil_to_tensor`'s view of the
    interleaved pixels (fewer calls: cheaper for small images)."""
    if isinstance(picture, torch.Tensor):
        return picture
    if picture.mode == "RGB" and picture.width * picture.height >= TORCH_RESIZE_MIN_PIXELS:
        return planar_tensor(picture)
    return pil_to_tensor(picture)


def resize_crop(image: Image.Image, box: tuple | None, size: tuple[int, int], resample) -> Image.Image | torch.Tensor:
    """Cut out `box` (left, top, right, bottom; None: the whole image) and resize it to `size` (height, width).
    Large bilinear and bicubic outputs come from torch's uint8 kernels as a uint8 (C, height, width) tensor; small
    ones, and other filters, from PIL as an image (`as_tensor` / `as_pil` convert when the next step needs to)."""
    if box is not None:
        image = image.crop(box)
    height, width = size
    mode = TORCH_RESAMPLING.get(resample)
    if image.size == (width, height):
        return image
    if mode is None or height * width < TORCH_RESIZE_MIN_PIXELS:
        return image.resize((width, height), resample)
    return F.interpolate(pil_to_tensor(image)[None], size=(height, width), mode=mode, antialias=True)[0]


class Normalizer:
    """uint8 (C, H, W) -> contiguous float32 (C, H, W), (pixel / 255 - mean) / std, in two float32 passes: a
    multiply by 1 / (255 std) that converts (and transposes) into the output, then a subtract of mean / std."""

    def __init__(self, mean, std):
        mean, std = _per_channel(mean), _per_channel(std)
        if len(mean) != len(std) or len(mean) not in (1, 3):
            raise ValueError(f"image_mean={mean} and image_std={std} must both have 1 or 3 values.")
        if min(std) <= 0:
            raise ValueError(f"image_std={std} must be positive.")
        self.mean, self.std = mean, std
        self.scale = torch.tensor([1.0 / (255.0 * s) for s in std], dtype=torch.float32).view(-1, 1, 1)
        self.shift = torch.tensor([m / s for m, s in zip(mean, std, strict=True)], dtype=torch.float32).view(-1, 1, 1)

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        channels = pixels.shape[0]
        out = torch.empty(pixels.shape, dtype=torch.float32)
        return torch.mul(pixels, self.scale[:channels], out=out).sub_(self.shift[:channels])

    def normalize_batch(self, images: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) floats in [0, 1], on any device, normalised in place (per channel with Python numbers: no
        constant tensor to copy to a GPU at every batch)."""
        for channel in range(images.shape[1]):
            index = channel if len(self.mean) > 1 else 0
            images[:, channel].sub_(self.mean[index]).div_(self.std[index])
        return images


def _per_channel(value) -> tuple[float, ...]:
    """A mean or std as a tuple: one number stands for every channel (e.g. the processor's `image_mean=0.5`)."""
    if isinstance(value, (int, float)):
        return (float(value),)
    return tuple(float(v) for v in value)


# Brightness and contrast blend every byte with a constant (black, or the mean grey level): Pillow's blend is a
# function of the byte alone, so running it once on the 256 levels gives a table that Image.point applies to every
# band, bit for bit what the blend gives, in less time. Making and applying the table has a fixed cost (Image.point
# rounds the 768 entries in Python), so small images blend directly (the crossover: benchmarks/RESULTS.md).
BLEND_TABLE_MIN_PIXELS = 176 * 176
_RAMP = Image.frombytes("L", (256, 1), bytes(range(256)))  # the 256 levels


def _blend_with_level(image: Image.Image, level: int, factor: float) -> Image.Image:
    """`Image.blend(flat, image, factor)`, flat an image of `level` in every byte."""
    if image.width * image.height < BLEND_TABLE_MIN_PIXELS:
        bands = len(image.getbands())
        flat = Image.new(image.mode, image.size, level if bands == 1 else (level,) * bands)
        return Image.blend(flat, image, factor)
    table = Image.blend(Image.new("L", _RAMP.size, level), _RAMP, factor).tobytes()
    return image.point(list(table) * len(image.getbands()))


def adjust_brightness(image: Image.Image, factor: float) -> Image.Image:
    """`ImageEnhance.Brightness(image).enhance(factor)`: a blend with black."""
    return _blend_with_level(image, 0, factor)


_LEVELS = np.arange(256, dtype=np.int64)


def adjust_contrast(image: Image.Image, factor: float) -> Image.Image:
    """`ImageEnhance.Contrast(image).enhance(factor)`: a blend with the grey level of the image's mean luma, rounded
    as Pillow rounds it. The mean comes from the luma histogram in integers (ImageStat sums it in Python)."""
    grey = image if image.mode == "L" else image.convert("L")
    histogram = np.asarray(grey.histogram(), dtype=np.int64)
    level = int(int(histogram @ _LEVELS) / int(histogram.sum()) + 0.5)
    return _blend_with_level(image, level, factor)


def adjust_saturation(image: Image.Image, factor: float) -> Image.Image:
    """`ImageEnhance.Color(image).enhance(factor)`: a blend with the image's own grey version. For "RGB" that grey
    version is the luma plane merged into three bands, the bytes ImageEnhance's convert("L").convert("RGB") gives (the
    L -> RGB conversion copies the level into each band) at a third of that conversion's cost."""
    if image.mode != "RGB":
        return ImageEnhance.Color(image).enhance(factor)
    grey = image.convert("L")
    return Image.blend(Image.merge("RGB", (grey, grey, grey)), image, factor)


# --- hue shift: PIL's 8-bit HSV round trip, from lookup tables -------------------------------------------------
#
# PIL's RGB -> HSV -> RGB (libImaging/Convert.c, rgb2hsv and hsv2rgb) is float work per pixel, slow in hsv2rgb. Every
# piece of it is a function of few 8-bit values, so tables made by running PIL's own conversions once reproduce it
# bit for bit (tests/training/test_train_image_ops.py checks all 16.7M colours against the frozen baseline's PIL round
# trip, benchmarks/baseline_transforms.py):
# - H depends on the differences (g - r, b - r) only (rgb2hsv divides differences by max - min);
# - S and V on (max, min); the output's largest value is V and its smallest p(S, V);
# - the third output value x(H', S, V) takes, over the 256 H', one of 43 columns: q with f equals t with 1 - f, so it
#   depends on the distance from H' to the nearest edge between a q sextant and a t sextant, H' = 0, 85, 170 or 255
#   (255 / 3 = 85: each edge of that kind is a whole H'); x is a table of (max, min) rows by those columns;
# - which output channel gets V, p or x is the sextant of H', floor(6 H' / 255) modulo 6 (a switch in hsv2rgb).

# Output roles (V, p, x) of (R, G, B) in sextants 0..5, as hsv2rgb's switch assigns (v, t, p), (q, v, p),
# (p, v, t), (p, q, v), (t, p, v), (v, p, q): 0 = V, 1 = p, 2 = x (t or q).
_HSV_ROLES = ((0, 2, 1), (2, 0, 1), (1, 0, 2), (1, 2, 0), (2, 1, 0), (0, 1, 2))
# Offset of (g - r, b - r) in the hue table, laid out as (g - r + 255) * 512 + (b - r + 255).
_HUE_KEY_OFFSET = 255 * 512 + 255


class _HueTables:
    """The tables (1.7 MB), built once per process on first use, each from PIL's conversions."""

    def __init__(self):
        # hue[(g - r) * 512 + (b - r) + offset]: PIL's H of a pixel with those differences (unreachable keys: 0).
        diff = np.arange(-255, 256)
        dg, db = (a.ravel() for a in np.meshgrid(diff, diff, indexing="ij"))
        red = np.maximum(0, np.maximum(-dg, -db))
        ok = np.maximum(dg, db) - np.minimum(0, np.minimum(dg, db)) <= 255  # the spread fits in 0..255
        pixels = np.stack([red, red + dg, red + db], axis=-1)[ok].astype(np.uint8)
        self.hue = np.zeros(512 * 512, dtype=np.uint8)
        self.hue[(dg * 512 + db + _HUE_KEY_OFFSET)[ok]] = _pil_convert(pixels, "RGB", "HSV")[:, 0]

        # Rows: the 32,896 (max, min) pairs with min <= max, row = max (max + 1) / 2 + min; S from PIL.
        top, low = np.divmod(np.arange(256 * 256), 256)
        pairs = low <= top
        top, low = top[pairs], low[pairs]
        saturation = _pil_convert(np.stack([top, low, low], axis=-1).astype(np.uint8), "RGB", "HSV")[:, 1]
        # Every (H', S, V) a row can meet, back to RGB through PIL, a few thousand rows at a time (a few MB at once):
        # the value that takes each role, by row and H'.
        rows = len(top)
        roles = np.array(_HSV_ROLES)[(np.arange(256) * 6 // 255) % 6]  # (256 H', 3 channels)
        levels, at = np.arange(256), [np.argmax(roles == role, axis=1) for role in range(3)]
        third = np.empty((256, rows), dtype=np.uint8)  # by H' then row
        self.low = np.empty(rows, dtype=np.uint8)  # p by row
        kept = True
        for start in range(0, rows, 4096):
            chunk = slice(start, min(start + 4096, rows))
            hsv = np.empty((chunk.stop - start, 256, 3), dtype=np.uint8)
            hsv[..., 0], hsv[..., 1], hsv[..., 2] = levels, saturation[chunk, None], top[chunk, None]
            rgb = _pil_convert(hsv.reshape(-1, 3), "HSV", "RGB").reshape(hsv.shape)
            low_out = rgb[:, levels, at[1]]
            kept &= bool((rgb[:, levels, at[0]] == top[chunk, None]).all() and (low_out == low_out[:, :1]).all())
            self.low[chunk], third[:, chunk] = low_out[:, 0], rgb[:, levels, at[2]].T
        if not kept:
            raise RuntimeError("This Pillow's HSV -> RGB does not keep V and p(S, V): shift_hue's tables do not hold.")
        # x's column for each H': the distance `_hue_column` computes in a few uint8 passes in shift_hue. H' = column
        # itself (in sextant 0) stands for each column; every other H' must give the same x as its column's.
        self.column = _hue_column(levels.astype(np.uint8))
        self.columns = int(self.column.max()) + 1
        if not np.array_equal(third, third[self.column]):
            raise RuntimeError("This Pillow's HSV -> RGB is not symmetric about H' = 0, 85, 170, 255: shift_hue's "
                               "tables do not hold.")
        self.third = np.ascontiguousarray(third[: self.columns].T).ravel()  # x[row * columns + column]


def _hue_column(hues: np.ndarray) -> np.ndarray:
    """uint8 H' -> its distance to the nearest of 0, 85, 170, 255 (0..42), in uint8 passes: fold H' about 127.5
    (min(H', 255 - H'), which maps 170 to 85 and 255 to 0), then the distance to 0 or 85 of the folded value
    (0..127, so that value - 85 fits in int8)."""
    folded = np.subtract(np.uint8(255), hues)
    np.minimum(folded, hues, out=folded)
    to_85 = np.subtract(folded.view(np.int8), np.int8(85))
    np.abs(to_85, out=to_85)
    return np.minimum(folded, to_85.view(np.uint8), out=folded)


def _pil_convert(pixels: np.ndarray, mode: str, to: str) -> np.ndarray:
    """(N, 3) uint8 pixels in `mode` converted by PIL to `to`: (N, 3)."""
    image = Image.frombuffer(mode, (len(pixels), 1), np.ascontiguousarray(pixels).tobytes(), "raw", mode, 0, 1)
    return np.asarray(image.convert(to)).reshape(-1, 3)


@functools.cache
def _hue_tables() -> _HueTables:
    return _HueTables()


def shift_hue(image: Image.Image, hue: float) -> Image.Image:
    """Rotate the hue by `hue` of a turn (torchvision's adjust_hue) in PIL's 8-bit HSV: H moves by
    round(255 hue) steps of 1/255 of a turn, modulo 256 (PIL spans a turn over 255 steps but H wraps at 256).
    Bit-exact with PIL's HSV round trip: from the tables above in uint8/int16/int32 passes on planar channels, or, for
    small images (where the passes' fixed cost would dominate), in PIL with the shift as one C addition."""
    shift = int(round(hue * 255)) % 256
    if image.width * image.height < HUE_TABLES_MIN_PIXELS or image.mode != "RGB":
        return ImageChops.add_modulo(image.convert("HSV"), Image.new("HSV", image.size, (shift, 0, 0))).convert("RGB")
    tables = _hue_tables()
    # One plane per band straight from PIL's packer: one copy each, where split + asarray makes two.
    red, green, blue = (np.frombuffer(image.tobytes("raw", band), np.uint8).reshape(image.height, -1) for band in "RGB")
    value = np.maximum(np.maximum(red, green), blue)
    low = np.minimum(np.minimum(red, green), blue)
    # Differences in int16 (a cheaper cast inside the subtraction than to int32), widened once for the key.
    key = np.subtract(green, red, dtype=np.int16).astype(np.int32)
    key <<= 9
    key += np.subtract(blue, red, dtype=np.int16)
    key += _HUE_KEY_OFFSET
    hues = tables.hue.take(key)
    hues += np.uint8(shift)  # wraps modulo 256, as PIL's H does
    # Row of (max, min): max (max + 1) / 2 + min. In uint16, half the bytes of int32: max (max + 1) is at most
    # 255 * 256 = 65,280 and the row at most 32,895.
    row = value.astype(np.uint16)
    row *= row + 1
    row >>= 1
    row += low
    p = tables.low.take(row)
    # Times the row length (past uint16), plus the column of the shifted H (arithmetic: cheaper than a take).
    cell = row.astype(np.int32)
    cell *= tables.columns
    cell += _hue_column(hues)
    x = tables.third.take(cell)
    # Each output channel is V, p or x as H' falls in cyclic intervals (the sextants). With masks m_V and m_p of 0
    # or 255 and p <= x <= V, min(max(x, V & m_V), p | ~m_p) picks it: uint8 passes over (3, H, W) at once.
    is_value = np.less(hues - _VALUE_START, _VALUE_LENGTH).view(np.uint8)
    np.negative(is_value, out=is_value)  # 1 -> 255
    not_low = np.greater_equal(hues - _LOW_START, _LOW_LENGTH).view(np.uint8)
    np.negative(not_low, out=not_low)
    np.bitwise_and(is_value, value, out=is_value)
    bands = np.maximum(is_value, x, out=is_value)
    np.minimum(bands, np.bitwise_or(not_low, p, out=not_low), out=bands)
    # Planes shared with PIL without a copy; merge copies them into the RGB image.
    return Image.merge("RGB", [Image.frombuffer("L", image.size, band, "raw", "L", 0, 1) for band in bands])


# Below this many pixels PIL's float conversions cost less than the table passes' fixed cost (benchmarks/RESULTS.md).
HUE_TABLES_MIN_PIXELS = 42 * 42
# H' intervals [start, start + length) modulo 256 where channel R, G, B (rows) is V, and where it is p. Sextant s
# covers the H' with floor(6 H' / 255) = s: 0..42, 43..84, 85..127, 128..169, 170..212, 213..254; H' = 255 gives
# 6, taken modulo 6: sextant 0. V: R in sextants 5, 0; G in 1, 2; B in 3, 4. p: R in 2, 3; G in 4, 5; B in 0, 1.
_VALUE_START = np.array([213, 43, 128], dtype=np.uint8).reshape(3, 1, 1)
_VALUE_LENGTH = np.array([86, 85, 85], dtype=np.uint8).reshape(3, 1, 1)
_LOW_START = np.array([85, 170, 255], dtype=np.uint8).reshape(3, 1, 1)
_LOW_LENGTH = np.array([85, 85, 86], dtype=np.uint8).reshape(3, 1, 1)


def grayscale(image: Image.Image, tensor: bool = False) -> Image.Image | torch.Tensor:
    """Luma (ITU-R 601-2, PIL's weights), kept in the image's mode; with `tensor`, as a uint8 (C, H, W) tensor whose
    C channels are one luma plane broadcast (no RGB image to build, and no copy of it to a tensor)."""
    grey = image.convert("L")
    if not tensor:
        return grey.convert(image.mode)
    plane = torch.from_numpy(np.array(grey))  # np.array: a writable copy (PIL's buffer is read-only)
    return plane.expand(len(image.getbands()), *plane.shape)


def solarize(pixels: torch.Tensor, threshold: int = 128) -> torch.Tensor:
    """`ImageOps.solarize` on uint8 pixels: every value at or above `threshold` is inverted. For uint8, 255 - v is
    v XOR 255, so this is one XOR with a mask of 0 or 255. In NumPy, on the tensor's memory in whatever layout it
    has: torch's comparison of uint8 with a number, and torch.where more so, are slower."""
    array = pixels.numpy()
    mask = np.greater_equal(array, threshold).view(np.uint8)
    np.negative(mask, out=mask)  # True (1) -> 255
    return torch.from_numpy(np.bitwise_xor(array, mask, out=mask))


def color_jitter(image: Image.Image, brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1) -> Image.Image:
    """torchvision's ColorJitter: the four adjustments in random order, factors uniform in [1-x, 1+x] (hue in
    [-x, x]). Saturation and hue leave a grey image alone. The random draws are the shuffle, then one factor per
    adjustment as it runs: a seeded run draws the same augmentation as the frozen baseline
    (benchmarks/baseline_transforms.py), which the tests compare it with."""
    ops = [
        lambda im: adjust_brightness(im, random.uniform(1 - brightness, 1 + brightness)),
        lambda im: adjust_contrast(im, random.uniform(1 - contrast, 1 + contrast)),
    ]
    if image.mode == "RGB":
        ops.append(lambda im: adjust_saturation(im, random.uniform(1 - saturation, 1 + saturation)))
        ops.append(lambda im: shift_hue(im, random.uniform(-hue, hue)))
    random.shuffle(ops)
    for op in ops:
        image = op(image)
    return image

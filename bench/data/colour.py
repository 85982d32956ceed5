"""Colour corruptions: the CIFAR-10-C recipe (Hendrycks & Dietterich, ICLR 2019) at its 5 severities.

Each function follows ``make_cifar_c.py`` of hendrycks/robustness, with its parameters, on a
whole batch of images ``(n, h, w, 3)`` in [0, 1], drawing every random choice from the
generator it is given; ``corrupt_colour`` truncates to uint8 as the official script does
(``np.uint8``). Where the original is deterministic the port computes the same function
(OpenCV's kernels rebuilt with scipy: ``defocus_blur``, ``elastic_transform``'s affine warp);
where it is random it draws from the same distributions, so the outputs match in statistics,
not bit for bit. The original's 32-pixel constants follow the image size.

Deviations, stated: ``motion_blur`` and ``snow`` use ImageMagick's motion blur in the
original; here it is the numpy port of ``bench.data.corruptions.blur_along`` (a one-sided
Gaussian of whole-pixel shifts), not bit-identical to ImageMagick. ``frost`` blends each image
with a random crop of one of five frost photographs (frost1.png to frost5.jpg; ``randint(5)``
never draws frost6.jpg) that ship with the official code, not with this harness. When the
``torch-uncertainty-assets`` wheel is installed (the ``frost`` extra), they are its JPEGs of the
official photographs (``FROST_FILES``), read with Pillow and resized as the original does, so
the port is the original's but for the JPEG re-encoding of frost1.png and frost2.png. Without
it, each is a synthetic texture with that photograph's mean R, G and B and luma standard
deviation after the original's 0.2 resize (``FROST_PHOTOS``: 164 of 255 on average, bluish,
B > G > R), so the corrupted images match the original's in those statistics, not in the
photographs' exact crystals. ``frost_photographs`` says which, for provenance and caching.
"""

from __future__ import annotations

import functools
import importlib.metadata
import io
import zlib
from collections.abc import Callable
from importlib import resources

import numpy as np
from scipy import ndimage

from bench.data.corruptions import blur_along, plasma_fractal
from bench.errors import BenchError

SEVERITIES = 5
CHUNK = 1000  # images corrupted at once when a variant is generated (part of the recipe: the draws depend on it)


def gaussian_noise(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    scale = [0.04, 0.06, 0.08, 0.09, 0.10][severity - 1]
    return x + rng.normal(size=x.shape, scale=scale)


def shot_noise(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    photons = [500, 250, 100, 75, 50][severity - 1]
    return rng.poisson(x * photons) / photons


def impulse_noise(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    from skimage.util import random_noise

    return random_noise(x, mode="s&p", amount=[0.01, 0.02, 0.03, 0.05, 0.07][severity - 1], rng=rng)


def _gaussian_taps(sigma: float) -> np.ndarray:
    """OpenCV's 3-tap Gaussian kernel (``getGaussianKernel(3, sigma)``)."""
    taps = np.exp(-np.arange(-1, 2) ** 2 / (2 * sigma**2))
    return taps / taps.sum()


def disk(radius: float, alias_blur: float) -> np.ndarray:
    """The original's antialiased disk: a 17x17 (or larger) indicator, normalised, then a 3x3 Gaussian
    blur with OpenCV's default border (reflect-101, scipy's ``mirror``)."""
    extent = 8 if radius <= 8 else int(radius)
    grid = np.arange(-extent, extent + 1)
    rows, cols = np.meshgrid(grid, grid)
    aliased = (rows**2 + cols**2 <= radius**2).astype(np.float64)
    aliased /= aliased.sum()
    taps = _gaussian_taps(alias_blur)
    aliased = ndimage.correlate1d(aliased, taps, axis=0, mode="mirror")
    return ndimage.correlate1d(aliased, taps, axis=1, mode="mirror")


def defocus_blur(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    radius, alias_blur = [(0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)][severity - 1]
    kernel = disk(radius, alias_blur)
    return ndimage.correlate(x, kernel[None, :, :, None], mode="mirror")  # OpenCV's filter2D, per channel


def _blur(x: np.ndarray, sigma: float) -> np.ndarray:
    """skimage's ``gaussian(..., multichannel=True)``: rows and columns, nearest edges, truncate 4."""
    return ndimage.gaussian_filter(x, sigma=(0, sigma, sigma, 0), mode="nearest", truncate=4.0)


def glass_blur(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Blur, move pixels locally in the original's order (offsets in {-delta .. delta - 1}), blur again.

    The original's swap ``x[h, w], x[h', w'] = x[h', w'], x[h, w]`` acts on views of an RGB
    image, so it copies the neighbour into (h, w) and leaves the neighbour as it was; so does this.
    """
    sigma, delta, iterations = [(0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)][severity - 1]
    images = (_blur(x, sigma) * 255).astype(np.uint8)
    n, height, width, _ = images.shape
    every = np.arange(n)
    for _ in range(iterations):
        for h in range(height - delta, delta, -1):
            for w in range(width - delta, delta, -1):
                dx, dy = rng.integers(-delta, delta, size=(2, n))
                images[every, h, w] = images[every, h + dy, w + dx]
    return _blur(images / 255.0, sigma)


def motion_blur(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    radius, sigma = [(6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)][severity - 1]
    angles = np.deg2rad(rng.uniform(-45, 45, size=len(x)))
    channels = x.transpose(0, 3, 1, 2).reshape(-1, *x.shape[1:3])
    blurred = blur_along(channels, np.repeat(angles, 3), radius=radius, sigma=sigma)
    return blurred.reshape(len(x), 3, *x.shape[1:3]).transpose(0, 2, 3, 1)


def clipped_zoom(x: np.ndarray, factor: float) -> np.ndarray:
    """Zoom the centre of every image (axes 1 and 2) by ``factor`` and crop back to its size (bilinear)."""
    height, width = x.shape[1:3]
    crop_h, crop_w = int(np.ceil(height / factor)), int(np.ceil(width / factor))
    top, left = (height - crop_h) // 2, (width - crop_w) // 2
    zoomed = ndimage.zoom(x[:, top:top + crop_h, left:left + crop_w], (1, factor, factor, 1), order=1)
    trim_h, trim_w = (zoomed.shape[1] - height) // 2, (zoomed.shape[2] - width) // 2
    return zoomed[:, trim_h:trim_h + height, trim_w:trim_w + width]


def zoom_blur(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    factors = np.arange(1, [1.06, 1.11, 1.16, 1.21, 1.26][severity - 1], 0.01)
    x = x.astype(np.float32)
    total = np.zeros_like(x)
    for factor in factors:
        total += clipped_zoom(x, factor)
    return (x + total) / (len(factors) + 1)


def _luma(x: np.ndarray) -> np.ndarray:
    """OpenCV's RGB2GRAY: 0.299 R + 0.587 G + 0.114 B."""
    return x @ np.array([0.299, 0.587, 0.114], dtype=x.dtype)


def snow(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    loc, scale, zoom, threshold, radius, sigma, keep = [
        (0.1, 0.2, 1, 0.6, 8, 3, 0.95), (0.1, 0.2, 1, 0.5, 10, 4, 0.9), (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
        (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85), (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8)][severity - 1]
    x = x.astype(np.float32)
    layer = clipped_zoom(rng.normal(size=x.shape[:3], loc=loc, scale=scale)[..., None], zoom)[..., 0]
    layer[layer < threshold] = 0
    layer = (np.clip(layer, 0, 1) * 255).astype(np.uint8) / 255.0  # the original goes through an 8-bit PNG
    layer = blur_along(layer, np.deg2rad(rng.uniform(-135, -45, size=len(x))), radius=radius, sigma=sigma)[..., None]
    x = keep * x + (1 - keep) * np.maximum(x, _luma(x)[..., None] * 1.5 + 0.5)
    return x + layer + np.rot90(layer, k=2, axes=(1, 2))


# The five photographs the original draws from, after its 0.2 resize (OpenCV's bilinear ``resize``, which at
# 0.2 samples every fifth pixel from the third, ``_resized_frost``): mean R, G, B and the standard deviation of the
# luma, in gray levels (frost2.png and frost3.png are the same photograph).
FROST_PHOTOS = np.array([(77.5, 149.0, 165.7, 18.3), (200.8, 205.4, 214.5, 21.9), (200.8, 205.4, 214.5, 21.9),
                         (138.0, 153.2, 165.6, 29.1), (112.3, 123.3, 134.7, 43.3)])


def _standardise(x: np.ndarray) -> np.ndarray:
    x = x - x.mean(axis=(1, 2), keepdims=True)
    return x / x.std(axis=(1, 2), keepdims=True)


def frost_textures(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """One synthetic frost texture (h, w, 3) in [0, 1] per row of ``FROST_PHOTOS``, with its statistics.

    Ice needles (sparse seeds blurred along a random direction and the two at 60 degrees to it, as
    ice branches), thin veins along the zero lines of smoothed noise at two scales, grain and a soft
    shading, weighted so that the mean neighbour difference (about 0.67 of the standard deviation)
    and the contrast within a 32-pixel crop (about 0.86 of it) are in the range of the photographs'
    (0.59-0.75 and 0.79-0.89); the crystals brighten all channels alike, toward white. 8-bit, as a photograph.
    """
    count = len(FROST_PHOTOS)

    def smooth(sigma: float) -> np.ndarray:
        return _standardise(ndimage.gaussian_filter(rng.normal(size=(count, *shape)), (0, sigma, sigma), mode="wrap"))

    shading = smooth(shape[0] / 8)
    veins = _standardise(sum(np.exp(-(smooth(sigma) / 0.3) ** 2) for sigma in (3, 1.5)))
    angles = (rng.uniform(0, np.pi, size=count)[:, None] + np.deg2rad([0, 60, -60])).ravel()
    seeds = (rng.random((3 * count, *shape)) < 0.04).astype(np.float64)
    needles = _standardise(blur_along(seeds, angles, radius=6, sigma=3).reshape(count, 3, *shape).sum(axis=1))
    grain = rng.normal(size=(count, *shape))
    field = _standardise(shading + needles + 0.4 * veins + 0.3 * grain)[..., None]
    texture = FROST_PHOTOS[:, None, None, :3] + FROST_PHOTOS[:, None, None, 3:] * field
    return np.round(np.clip(texture, 0, 255)) / 255


def frost_blend(x: np.ndarray, texture: np.ndarray, severity: int) -> np.ndarray:
    """The original's blend, ``clip(c0 x + c1 frost)``, of images and frost crops of the same shape in [0, 1]."""
    image_weight, frost_weight = [(1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)][severity - 1]
    return np.clip(image_weight * x + frost_weight * texture, 0, 1)


# The official five draws by their names in the torch-uncertainty-assets wheel: it ships frost1.png and frost2.png of
# hendrycks/robustness re-encoded as frost1.jpg and frost2.jpg, and frost4.jpg to frost6.jpg byte for byte as frost3.jpg
# to frost5.jpg; the official frost3.png is frost2.png pixel for pixel, so its draw reads frost2.jpg too.
FROST_FILES = ("frost1.jpg", "frost2.jpg", "frost2.jpg", "frost3.jpg", "frost4.jpg")
SYNTHETIC_FROST = "frost synthetic textures"


@functools.cache
def _resized_frost(version: str) -> tuple[np.ndarray, ...]:
    """The wheel's photographs of ``FROST_FILES``, RGB in [0, 1], after the original's 0.2 resize.

    OpenCV's bilinear ``resize`` by 0.2 maps output pixel i to input (i + 0.5) / 0.2 - 0.5 = 5 i + 2 with weight 1
    (no antialiasing), into round(0.2 n) pixels: every fifth pixel from the third, which ``[2::5, 2::5]`` is exactly
    (checked equal to ``cv2.resize`` on these photographs and on random sizes)."""
    from PIL import Image

    def read(name: str) -> np.ndarray:
        with (resources.files("torch_uncertainty_assets") / "frost" / name).open("rb") as handle:
            return np.asarray(Image.open(handle).convert("RGB"))[2::5, 2::5] / 255.0

    return tuple(read(name) for name in FROST_FILES)


def frost_photographs(shape: tuple[int, int]) -> tuple[tuple[np.ndarray, ...] | None, str]:
    """The frost photographs ``frost`` crops for images of ``shape`` (h, w), and the line naming the frost used.

    The official photographs when the torch-uncertainty-assets wheel is installed and every one holds a crop of that
    shape (up to 62 x 96 after the resize); otherwise None: the synthetic textures (``frost_textures``)."""
    try:
        import torch_uncertainty_assets  # noqa: F401

        version = importlib.metadata.version("torch-uncertainty-assets")  # PackageNotFoundError is an ImportError
    except ImportError:
        return None, SYNTHETIC_FROST
    photos = _resized_frost(version)
    if any(photo.shape[0] <= shape[0] or photo.shape[1] <= shape[1] for photo in photos):
        return None, f"{SYNTHETIC_FROST} (the resized photographs hold no {shape[0]}x{shape[1]} crop)"
    return photos, f"frost photographs: torch-uncertainty-assets {version}"


def frost(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Blend every image with a crop of a random frost photograph (or texture) at a random offset: the original's
    ``randint``s, the crop's top below the photograph's height less the image's, its left likewise."""
    n, height, width = x.shape[:3]
    photos = frost_photographs((height, width))[0]
    if photos is None:
        photos = frost_textures((3 * height, 4 * width), rng)  # about the size of the resized photographs
    pick = rng.integers(len(photos), size=n)
    room = np.array([photo.shape[:2] for photo in photos])[pick] - (height, width)
    top, left = rng.integers(0, room[:, 0]), rng.integers(0, room[:, 1])
    crops = np.empty(x.shape)
    for i, (k, a, b) in enumerate(zip(pick, top, left)):
        crops[i] = photos[k][a:a + height, b:b + width]
    return frost_blend(x, crops, severity)


def fog(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    amount, decay = [(0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)][severity - 1]
    size = 1 << int(np.ceil(np.log2(max(x.shape[1:3]))))  # the original's 32: a power of two covering the image
    plasma = plasma_fractal(len(x), rng, size=size, decay=decay)[:, :x.shape[1], :x.shape[2], None]
    brightest = x.max(axis=(1, 2, 3), keepdims=True)
    return (x + amount * plasma) * brightest / (brightest + amount)


def _hsv_channel(x: np.ndarray, channel: int, change: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    from skimage.color import hsv2rgb, rgb2hsv

    hsv = rgb2hsv(x)
    hsv[..., channel] = np.clip(change(hsv[..., channel]), 0, 1)
    return hsv2rgb(hsv)


def brightness(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    amount = [0.05, 0.1, 0.15, 0.2, 0.3][severity - 1]
    return _hsv_channel(x, 2, lambda value: value + amount)


def contrast(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    factor = [0.75, 0.5, 0.4, 0.3, 0.15][severity - 1]
    means = x.mean(axis=(1, 2), keepdims=True)  # per image and channel
    return (x - means) * factor + means


def elastic_transform(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """A random affine warp of three points (OpenCV's ``warpAffine``, bilinear, reflect-101), then a smooth
    random displacement field (bilinear, reflect)."""
    height, width = x.shape[1:3]
    size = min(height, width)
    alpha, smooth, jitter = (size * f for f in [(0, 0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06, 0.06),
                                                (0.1, 0.04, 0.05), (0.1, 0.03, 0.03)][severity - 1])
    centre = np.array([width // 2, height // 2], dtype=np.float64)  # (x, y), as OpenCV's points
    square = size // 3
    source = np.array([centre + square, [centre[0] + square, centre[1] - square], centre - square])
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    out = np.empty_like(x, dtype=np.float32)
    for i, image in enumerate(x.astype(np.float32)):
        target = source + rng.uniform(-jitter, jitter, size=source.shape)
        forward = np.linalg.solve(np.c_[source, np.ones(3)], target).T  # (x, y) -> (x', y'), OpenCV's getAffineTransform
        inverse = np.linalg.inv(np.r_[forward, [[0, 0, 1]]])  # warpAffine pulls each output pixel from its source
        matrix = inverse[:2, :2][::-1, ::-1]  # in (row, col)
        offset = inverse[:2, 2][::-1]
        warped = np.stack([ndimage.affine_transform(image[..., c], matrix, offset, order=1, mode="mirror")
                           for c in range(3)], axis=-1)
        dx = ndimage.gaussian_filter(rng.uniform(-1, 1, size=(height, width)), smooth, mode="reflect", truncate=3) * alpha
        dy = ndimage.gaussian_filter(rng.uniform(-1, 1, size=(height, width)), smooth, mode="reflect", truncate=3) * alpha
        out[i] = np.stack([ndimage.map_coordinates(warped[..., c], [rows + dy, cols + dx], order=1, mode="reflect")
                           for c in range(3)], axis=-1)
    return out


def _pil(x: np.ndarray, transform: Callable) -> np.ndarray:
    from PIL import Image

    images = (np.clip(x, 0, 1) * 255).astype(np.uint8)
    return np.stack([np.asarray(transform(Image.fromarray(image))) for image in images]) / 255.0


def pixelate(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    from PIL import Image

    factor = [0.95, 0.9, 0.85, 0.75, 0.65][severity - 1]
    height, width = x.shape[1:3]
    small = (int(width * factor), int(height * factor))
    return _pil(x, lambda image: image.resize(small, Image.BOX).resize((width, height), Image.BOX))


def jpeg_compression(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    from PIL import Image

    quality = [80, 65, 58, 50, 40][severity - 1]

    def compress(image):
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=quality)
        return Image.open(buffer)

    return _pil(x, compress)


# The 15 benchmark corruptions of CIFAR-10-C, in the official order.
COLOUR_CORRUPTIONS: dict[str, Callable[[np.ndarray, int, np.random.Generator], np.ndarray]] = {
    "gaussian_noise": gaussian_noise, "shot_noise": shot_noise, "impulse_noise": impulse_noise,
    "defocus_blur": defocus_blur, "glass_blur": glass_blur, "motion_blur": motion_blur, "zoom_blur": zoom_blur,
    "snow": snow, "frost": frost, "fog": fog, "brightness": brightness, "contrast": contrast,
    "elastic_transform": elastic_transform, "pixelate": pixelate, "jpeg_compression": jpeg_compression,
}


def corrupt_colour(images: np.ndarray, name: str, severity: int, seed: int, chunk: int = 0) -> np.ndarray:
    """Corrupt uint8 images (n, 3, h, w) at ``severity`` (1-5); uint8 out, truncated as the official script does.

    The random draws are a function of (seed, name, severity, chunk): a long split is corrupted
    ``CHUNK`` images at a time, chunk 0, 1, ..., so memory stays bounded."""
    if name not in COLOUR_CORRUPTIONS:
        raise BenchError(f"unknown colour corruption {name!r}; known: {', '.join(COLOUR_CORRUPTIONS)}")
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise BenchError(f"corrupt_colour() takes uint8 images of shape (n, 3, h, w), got {images.dtype} {images.shape}")
    if severity not in range(1, SEVERITIES + 1):
        raise BenchError(f"severity {severity} is not one of 1 to {SEVERITIES}")
    rng = np.random.default_rng([seed, zlib.crc32(name.encode()), severity, chunk])
    corrupted = COLOUR_CORRUPTIONS[name](images.transpose(0, 2, 3, 1) / 255.0, severity, rng)
    return (np.clip(corrupted, 0, 1) * 255).astype(np.uint8).transpose(0, 3, 1, 2)

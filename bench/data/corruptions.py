"""The MNIST-C corruptions (Mu & Gilmer 2019), re-implemented with numpy and scipy.

Each corruption follows the published recipe of google-research/mnist-c ``corruptions.py``
at the severity the static dataset uses, with the pitfalls of a literal port avoided
(see ``reference/methods.md`` section 2): the transforms build skimage's legacy affine
matrices explicitly, and brightness reduces exactly to ``clip(x + 0.5)`` on gray images.
The functions work on a whole batch of 28x28 images in [0, 1] and draw every random
choice from the generator they are given, so the output is a function of the seed. The
results follow the recipe but are not byte-identical to the official release, which was
drawn from numpy's global random state.
"""

from __future__ import annotations

import functools
import zlib
from typing import Callable

import numpy as np
from scipy import ndimage

from bench.errors import BenchError

Corruption = Callable[[np.ndarray, np.random.Generator], np.ndarray]

CENTRE = 13.5  # the centre of a 28x28 image, in pixel coordinates, kept fixed by the transforms


def shot_noise(x: np.ndarray, rng: np.random.Generator, photons: float = 3.0) -> np.ndarray:
    """Poisson noise at ``photons`` counts per unit intensity (severity 5)."""
    return np.clip(rng.poisson(x * photons) / photons, 0, 1)


def impulse_noise(x: np.ndarray, rng: np.random.Generator, amount: float = 0.17) -> np.ndarray:
    """Salt and pepper: a fraction ``amount`` of pixels set to 0 or 1 with equal odds (severity 4)."""
    hit = rng.random(x.shape) < amount
    salt = rng.random(x.shape) < 0.5
    return np.where(hit, salt.astype(x.dtype), x)


def _blur(x: np.ndarray, sigma: tuple[float, float]) -> np.ndarray:
    """Gaussian blur of every image along (rows, cols), as skimage's ``gaussian`` (nearest edges, truncate 4)."""
    return ndimage.gaussian_filter(x, sigma=(0, *sigma), mode="nearest", truncate=4.0)


def shuffle_locally(images: np.ndarray, swapping: np.ndarray, offsets: np.ndarray, delta: int) -> np.ndarray:
    """Glass blur's pixel swaps, in the original's order, each step applied to the whole batch.

    For h, w from 28 - delta down to delta + 1, where ``swapping[i, j]`` says so, the pixel
    (h, w) swaps with (h + dy, w + dx), ``offsets[i, j] = (dx, dy)`` per image. In place.
    """
    positions = range(28 - delta, delta, -1)
    every = np.arange(len(images))
    for i, h in enumerate(positions):
        for j, w in enumerate(positions):
            chosen = every[swapping[i, j]]
            rows, cols = h + offsets[i, j, chosen, 1], w + offsets[i, j, chosen, 0]
            here = images[chosen, h, w].copy()
            images[chosen, h, w] = images[chosen, rows, cols]
            images[chosen, rows, cols] = here
    return images


def glass_blur(x: np.ndarray, rng: np.random.Generator, sigma: float = 0.7, delta: int = 1, iterations: int = 2) -> np.ndarray:
    """Blur, shuffle pixels locally, blur again (severity 1).

    The original blurs with skimage's ``gaussian(..., multichannel=True)`` on a 2-D image,
    which takes the columns for colour channels and blurs along the rows only; so does this.
    The first blur is truncated to uint8, as there.
    """
    images = np.floor(_blur(x, (sigma, 0)) * 255).astype(np.uint8)
    steps = 28 - 2 * delta
    for _ in range(iterations):
        swapping = rng.random((steps, steps, len(x))) < 0.5
        offsets = rng.integers(-delta, delta, size=(steps, steps, len(x), 2))  # (dx, dy); the high end is excluded
        shuffle_locally(images, swapping, offsets, delta)
    return np.clip(_blur(images / 255.0, (sigma, 0)), 0, 1)


def blur_along(x: np.ndarray, angle: np.ndarray, radius: int = 10, sigma: float = 3.0) -> np.ndarray:
    """Motion blur of each image along its own ``angle`` (radians).

    A numpy port of ImageMagick's MotionBlurImage after bethgelab/imagecorruptions: a
    one-sided Gaussian kernel of width 2 * radius + 1, each tap a whole-pixel shift along the
    direction, with edge replication. Not bit-identical to ImageMagick.
    """
    width = 2 * radius + 1
    kernel = np.exp(-np.arange(width) ** 2 / (2 * sigma**2))
    kernel /= kernel.sum()
    padded = np.pad(x, ((0, 0), (width, width), (width, width)), mode="edge")
    every = np.arange(len(x))[:, None, None]
    blurred = np.zeros_like(x)
    for i, weight in enumerate(kernel):
        dy = -np.ceil(i * np.sin(angle) - 0.5).astype(int)  # the content moves by (dy, dx)
        dx = -np.ceil(i * np.cos(angle) - 0.5).astype(int)
        rows = (width - dy)[:, None] + np.arange(x.shape[1])
        cols = (width - dx)[:, None] + np.arange(x.shape[2])
        blurred += weight * padded[every, rows[:, :, None], cols[:, None, :]]
    return blurred


def motion_blur(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Blur along a random direction in [-45, 45] degrees, radius 10, sigma 3 (severity 1), without ImageMagick."""
    return np.clip(blur_along(x, np.deg2rad(rng.uniform(-45, 45, size=len(x)))), 0, 1)


def _warp(x: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Resample every image through an inverse map given in skimage's (col, row) coordinates.

    ``matrix`` is the 2x2 linear part; the translation that keeps the image centre fixed is
    added here, as the original code does, and sampling is bilinear with zeros outside.
    """
    offset_xy = CENTRE * (1 - matrix.sum(axis=1))
    to_rows_cols = np.array([[0, 1], [1, 0]])  # swap (x, y) <-> (row, col)
    linear = to_rows_cols @ matrix @ to_rows_cols
    volume_matrix = np.eye(3)
    volume_matrix[1:, 1:] = linear
    offset = np.concatenate([[0.0], offset_xy[::-1]])
    return ndimage.affine_transform(x, volume_matrix, offset=offset, order=1, mode="grid-constant", cval=0.0)


def _warp_with_random_sign(x: np.ndarray, rng: np.random.Generator, matrix_for: Callable[[float], np.ndarray]) -> np.ndarray:
    """Apply ``matrix_for(+1)`` or ``matrix_for(-1)`` to each image, one batched call per sign."""
    signs = rng.choice([-1.0, 1.0], size=len(x))
    out = np.empty_like(x)
    for sign in (-1.0, 1.0):
        chosen = signs == sign
        if chosen.any():
            out[chosen] = _warp(x[chosen], matrix_for(sign))
    return np.clip(out, 0, 1)


def shear(x: np.ndarray, rng: np.random.Generator, amount: float = 0.4) -> np.ndarray:
    """Shear by +-``amount`` radians with skimage's legacy matrix [[1, -sin s], [0, cos s]] (severity 2)."""
    return _warp_with_random_sign(
        x, rng, lambda sign: np.array([[1.0, -np.sin(sign * amount)], [0.0, np.cos(sign * amount)]])
    )


def scale(x: np.ndarray, rng: np.random.Generator, factor: float = 0.7) -> np.ndarray:
    """Shrink the digit to ``factor`` of its size about the centre (severity 3)."""
    return np.clip(_warp(x, np.eye(2) / factor), 0, 1)


def rotate(x: np.ndarray, rng: np.random.Generator, angle: float = 0.4) -> np.ndarray:
    """Rotate by +-``angle`` radians about the centre (severity 2, about 23 degrees)."""

    def rotation(sign: float) -> np.ndarray:
        c, s = np.cos(sign * angle), np.sin(sign * angle)
        return np.array([[c, -s], [s, c]])

    return _warp_with_random_sign(x, rng, rotation)


def brightness(x: np.ndarray, rng: np.random.Generator, amount: float = 0.5) -> np.ndarray:
    """Raise the HSV value by ``amount``; on a gray image this is exactly ``clip(x + amount)`` (severity 5)."""
    return np.clip(x + amount, 0, 1)


def _shift(image: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Move the content of (n, h, w) images by whole pixels, filling with zeros."""
    out = np.zeros_like(image)
    h, w = image.shape[1:]
    out[:, max(rows, 0) : h + min(rows, 0), max(cols, 0) : w + min(cols, 0)] = image[
        :, max(-rows, 0) : h + min(-rows, 0), max(-cols, 0) : w + min(-cols, 0)
    ]
    return out


def translate(x: np.ndarray, rng: np.random.Generator, pixels: int = 3) -> np.ndarray:
    """Move each digit by ``pixels`` along both axes, with random signs: always diagonally (severity 3)."""
    moves = pixels * rng.choice([-1, 1], size=(len(x), 2))
    out = np.empty_like(x)
    for rows, cols in {tuple(m) for m in moves.tolist()}:
        chosen = (moves[:, 0] == rows) & (moves[:, 1] == cols)
        out[chosen] = _shift(x[chosen], rows, cols)
    return out


def stripe(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Invert columns 0-6 and 21-27."""
    out = x.copy()
    out[:, :, :7] = 1 - out[:, :, :7]
    out[:, :, 21:] = 1 - out[:, :, 21:]
    return out


def plasma_fractal(n: int, rng: np.random.Generator, size: int = 256, decay: float = 1.4) -> np.ndarray:
    """``n`` diamond-square height maps of ``size`` x ``size`` in [0, 1], as the original's ``plasma_fractal``.

    The original draws the noise as ``wibble * uniform(-wibble, wibble)``, so its scale is wibble squared.
    """
    heights = np.zeros((n, size, size))
    step, wibble = size, 100.0

    def noisy_mean(total: np.ndarray) -> np.ndarray:
        return total / 4 + wibble * rng.uniform(-wibble, wibble, total.shape)

    while step >= 2:
        half = step // 2
        corners = heights[:, 0:size:step, 0:size:step]
        squares = corners + np.roll(corners, -1, axis=1)
        squares += np.roll(squares, -1, axis=2)
        heights[:, half:size:step, half:size:step] = noisy_mean(squares)
        centres = heights[:, half:size:step, half:size:step]
        corners = heights[:, 0:size:step, 0:size:step]
        heights[:, 0:size:step, half:size:step] = noisy_mean(
            centres + np.roll(centres, 1, axis=1) + corners + np.roll(corners, -1, axis=2))
        heights[:, half:size:step, 0:size:step] = noisy_mean(
            centres + np.roll(centres, 1, axis=2) + corners + np.roll(corners, -1, axis=1))
        step //= 2
        wibble /= decay
    heights -= heights.min(axis=(1, 2), keepdims=True)
    return heights / heights.max(axis=(1, 2), keepdims=True)


def fog(x: np.ndarray, rng: np.random.Generator, amount: float = 3.0, decay: float = 1.4, chunk: int = 128) -> np.ndarray:
    """Add the top-left 28x28 corner of a plasma fractal, rescaled to keep the brightest pixel (severity 5)."""
    out = np.empty_like(x)
    for start in range(0, len(x), chunk):  # 256x256 maps: a chunk at a time bounds the memory
        images = x[start : start + chunk]
        plasma = plasma_fractal(len(images), rng, decay=decay)[:, : x.shape[1], : x.shape[2]]
        brightest = images.max(axis=(1, 2), keepdims=True)
        out[start : start + chunk] = np.clip((images + amount * plasma) * brightest / (brightest + amount), 0, 1)
    return out


def spatter(x: np.ndarray, rng: np.random.Generator, mean: float = 0.65, std: float = 0.3, sigma: float = 1.0,
            threshold: float = 0.65, mask_sigma: float = 1.5) -> np.ndarray:
    """Mud spatter: blurred Gaussian noise thresholded into blobs of gray 63/255 (severity 4)."""
    liquid = _blur(rng.normal(mean, std, size=x.shape), (sigma, sigma))
    liquid[liquid < threshold] = 0
    mask = _blur((liquid > threshold).astype(np.float64), (mask_sigma, mask_sigma))
    mask[mask < 0.8] = 0
    return np.clip(x * (1 - mask) + 63 / 255 * mask, 0, 1)


def _line(c0: float, r0: float, c1: float, r1: float, size: int = 28) -> np.ndarray:
    """The original's ``line_from_points``: a line profile log(1 - d/2.3) + 1, clipped, between columns c0 and c1."""
    if c1 == c0:
        return np.zeros((size, size))
    rows, cols = np.meshgrid(np.arange(size, dtype=np.float64), np.arange(size, dtype=np.float64), indexing="ij")
    distance = np.clip(np.abs(rows - ((r1 - r0) / (c1 - c0) * (cols - c0) + r0)), 0, 2.3 - 1e-10)
    line = np.clip(np.log(1 - distance / 2.3) + 1, 0, 1)
    line[:, : int(np.floor(c0))] = 0
    line[:, int(np.ceil(c1)) :] = 0
    return line


@functools.lru_cache(maxsize=None)
def _dotted_line(r0: int, r1: int) -> np.ndarray:
    line = _line(0, r0, 27, r1)
    for block in range(0, 28, 4):  # every other 2-column block is off, starting with columns 0-1
        line[:, block : block + 2] = 0
    return line


def dotted_line(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Add a dashed line from column 0 to 27 between random rows."""
    ends = rng.integers(0, 27, size=(len(x), 2))
    return np.clip(x + np.stack([_dotted_line(r0, r1) for r0, r1 in ends.tolist()]), 0, 1)


@functools.lru_cache(maxsize=None)
def _zigzag(r0: int, r1: int, length: float = 2.0, width: float = 2.0, c0: int = 2, c1: int = 25) -> np.ndarray:
    """The sum of the zigzag's segments; the original clips after each one, which equals clipping the sum."""
    theta = np.arctan((r1 - r0) / (c1 - c0))
    d = (c1 - c0) / np.cos(theta)
    ends = [(0.0, 0.0)]
    for i in range(int((d - length) // (2 * length)) + 1):
        ends.append(((2 * i + 1) * length, (-1) ** i * width))
    last_full = 2 * length * (d // (2 * length))
    if d != last_full:  # the original's closing point, kept as it is
        ends.append((d, ends[-1][1] / (2 * (d - last_full))))
    rotation = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    cols, rows = rotation @ np.array(ends).T
    cols, rows = cols + c0, rows + r0
    return sum(_line(cols[i - 1], rows[i - 1], cols[i], rows[i]) for i in range(1, len(cols)))


def zigzag(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Add a zigzag line from column 2 to 25, starting at a random row and drifting up to 5 rows."""
    r0 = rng.integers(0, 27, size=len(x))
    r1 = r0 + rng.integers(-5, 5, size=len(x))
    return np.clip(x + np.stack([_zigzag(a, b) for a, b in zip(r0.tolist(), r1.tolist())]), 0, 1)


def canny_edges(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The binary edge map of skimage's Canny detector at its defaults."""
    from skimage.feature import canny

    return np.stack([canny(image) for image in x]).astype(np.float64)


# The 15 MNIST-C corruptions, in the order of the official list.
CORRUPTIONS: dict[str, Corruption] = {
    "shot_noise": shot_noise,
    "impulse_noise": impulse_noise,
    "glass_blur": glass_blur,
    "motion_blur": motion_blur,
    "shear": shear,
    "scale": scale,
    "rotate": rotate,
    "brightness": brightness,
    "translate": translate,
    "stripe": stripe,
    "fog": fog,
    "spatter": spatter,
    "dotted_line": dotted_line,
    "zigzag": zigzag,
    "canny_edges": canny_edges,
}


def corrupt(images: np.ndarray, name: str, seed: int) -> np.ndarray:
    """Corrupt uint8 images (n, 28, 28) with the named corruption; uint8 out, rounded as MNIST-C's notebook does."""
    if name not in CORRUPTIONS:
        raise BenchError(f"unknown corruption {name!r}; known: {', '.join(CORRUPTIONS)}")
    if images.dtype != np.uint8 or images.ndim != 3:
        raise BenchError(f"corrupt() takes uint8 images of shape (n, h, w), got {images.dtype} {images.shape}")
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    corrupted = CORRUPTIONS[name](images.astype(np.float64) / 255.0, rng)
    return np.round(np.clip(corrupted, 0, 1) * 255).astype(np.uint8)

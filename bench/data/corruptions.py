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


# The MNIST-C corruptions implemented so far, in the order of the official list.
CORRUPTIONS: dict[str, Corruption] = {
    "shot_noise": shot_noise,
    "impulse_noise": impulse_noise,
    "shear": shear,
    "scale": scale,
    "rotate": rotate,
    "brightness": brightness,
    "translate": translate,
    "stripe": stripe,
}


def corrupt(images: np.ndarray, name: str, seed: int) -> np.ndarray:
    """Corrupt uint8 images (n, 28, 28) with the named corruption; uint8 out, rounded as MNIST-C's notebook does."""
    if name not in CORRUPTIONS:
        raise BenchError(f"unknown corruption {name!r}; known: {', '.join(CORRUPTIONS)}")
    if images.dtype != np.uint8 or images.ndim != 3:
        raise BenchError(f"corrupt() takes uint8 images of shape (n, h, w), got {images.dtype} {images.shape}")
    rng = np.random.default_rng([seed, list(CORRUPTIONS).index(name)])
    corrupted = CORRUPTIONS[name](images.astype(np.float64) / 255.0, rng)
    return np.round(np.clip(corrupted, 0, 1) * 255).astype(np.uint8)

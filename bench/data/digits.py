"""``digits-c``: the embedded default dataset, needing no download.

scikit-learn's bundled 8x8 handwritten digits (1797 images), upsampled to a 20x20 box and
centred in 28x28 as MNIST digits are, split 70/30 with a fixed seed, and the test split
corrupted by every MNIST-C corruption.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage

from bench.data.dataset import Dataset, Split
from bench.data.corruptions import CORRUPTIONS, corrupt

SPLIT_SEED = 0  # the train/test split and the corruptions are fixed, like a published dataset
TEST_FRACTION = 0.3


def mnist_like(images: np.ndarray) -> np.ndarray:
    """8x8 images in [0, 16] -> uint8 28x28: bilinear upsampling to 20x20, padded by 4 pixels."""
    upsampled = ndimage.zoom(images / 16.0, (1, 2.5, 2.5), order=1, mode="nearest", grid_mode=True)
    padded = np.pad(upsampled, ((0, 0), (4, 4), (4, 4)))
    return np.round(np.clip(padded, 0, 1) * 255).astype(np.uint8)


# Bilinear upsampling is linear: before rounding, every clean image lies in the 64-dimensional span of the
# upsampled pixel images (61 dimensions once the 3 pixels that are zero in every digit are left out).
CAVEAT = ("digits-c's clean images are upsampled 8x8 digits: before rounding they lie in a 61-dimensional linear "
          "subspace of the 784 pixels, and any corruption leaves it, so detectors on pixels (kpca, ae, docc, kde, "
          "pca ...) separate the corruptions trivially. Their OoD rows here measure nothing about OoD detection; "
          "digits-c exercises the pipeline quickly. Use mnist-c for OoD results.")


def load_digits_c(roots: list[Path] | None = None) -> Dataset:
    import sklearn
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = mnist_like(digits.images)
    labels = digits.target.astype(np.int64)
    train_x, test_x, train_y, test_y = train_test_split(
        images, labels, test_size=TEST_FRACTION, stratify=labels, random_state=SPLIT_SEED
    )
    ood = {name: Split(corrupt(test_x, name, SPLIT_SEED), test_y, paired_with_test=True) for name in CORRUPTIONS}
    source = f"scikit-learn {sklearn.__version__} digits; corruptions generated in memory (seed {SPLIT_SEED})"
    return Dataset("digits-c", 10, Split(train_x, train_y), Split(test_x, test_y), ood, source=source)


load_digits_c.caveat = CAVEAT  # printed with every table of results on digits-c

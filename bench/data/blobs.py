"""``two-blobs``: the VoG paper's toy (its Fig. 1), two 2-D Gaussians whose Bayes boundary is known.

Two isotropic Gaussians of unit variance centred at (-1.5, 0) and (1.5, 0), the classes equally
likely: the Bayes classifier's boundary is the line x0 = 0, and an example's distance to it is
|x0|, recorded per example (``Split.boundary_distance``) for the boundary task. The Bayes error is
Φ(-1.5) = 6.7%: enough points near the boundary to rank, classes that mostly separate. (The
official toy script draws scikit-learn blobs around random centres and merges two of three into a
class, so it has no boundary to measure against.) 500 training and 500 test points, drawn once
with a fixed seed; each point is a one-channel 1x2 "image" of float32, as bench feeds models.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.data.dataset import Dataset, Split

CENTRE = 1.5  # the blobs' distance from the boundary, in standard deviations
SIZE = 500  # points per split
SEED = 0


def blobs(n: int, rng: np.random.Generator) -> Split:
    """``n`` points, half of each class in random order, with their distances to the Bayes boundary."""
    labels = rng.permutation(np.arange(n) % 2)
    points = rng.normal(size=(n, 2)) + np.array([[-CENTRE, 0.0], [CENTRE, 0.0]])[labels]
    return Split(points[:, None].astype(np.float32), labels.astype(np.int64),
                 boundary_distance=np.abs(points[:, 0].astype(np.float32)).astype(np.float64))


def load_two_blobs(roots: list[Path] | None = None) -> Dataset:
    rng = np.random.default_rng(SEED)
    train, test = blobs(SIZE, rng), blobs(SIZE, rng)
    source = f"two-blobs: unit Gaussians at (±{CENTRE}, 0), {SIZE} training and {SIZE} test points (seed {SEED})"
    return Dataset("two-blobs", 2, train, test, source=source)

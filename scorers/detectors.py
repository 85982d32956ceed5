"""Outlier detectors fitted on in-distribution training features, as thin adapters over PyOD.

The VoG paper's Table 1 compares VoG with the detectors of Ruff et al. (2021); each adapter
here names the row it stands for. PyOD is imported when a detector is fitted, not when the
registry is listed.
"""

from __future__ import annotations

import numpy as np

from bench.api import PIXELS, Detector
from bench.registry import register


class PyODDetector(Detector):
    """Adapter: subclasses build the PyOD estimator; fitting and scoring are PyOD's."""

    def estimator(self):
        raise NotImplementedError

    def fit(self, X: np.ndarray, y: np.ndarray | None = None) -> "PyODDetector":
        self.estimator_ = self.estimator()
        self.estimator_.fit(X)
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        return self.estimator_.decision_function(X)


@register
class KDE(PyODDetector):
    """Gaussian kernel density; the score is the negative log density.

    The density is summed over one leaf holding every training point: exact, and faster than
    the tree at this size. (With scikit-learn 1.9's trees in 784 dimensions the log density
    depends on ``leaf_size``, off by up to 28 nats at PyOD's default of 30.)
    """

    name = "kde"
    reference = "Ruff et al., Proc. IEEE 2021 (KDE row of VoG Table 1); pyod.models.kde.KDE"

    def __init__(self, features: str = PIXELS, bandwidth: float = 1.0) -> None:
        super().__init__(features)
        self.bandwidth = bandwidth

    def estimator(self):
        from pyod.models.kde import KDE as PyODKDE

        return PyODKDE(bandwidth=self.bandwidth, leaf_size=self.n_train_)

    def fit(self, X: np.ndarray, y: np.ndarray | None = None) -> "KDE":
        self.n_train_ = len(X)
        return super().fit(X, y)

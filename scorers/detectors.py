"""Outlier detectors fitted on in-distribution training features, as thin adapters over PyOD.

The VoG paper's Table 1 compares VoG with the detectors of Ruff et al. (2021); each adapter
here names the row it stands for. PyOD is imported when a detector is fitted, not when the
registry is listed.

Detectors whose cost grows with the training set or the dimension say how they are made
affordable in their parameters: ``fit_size`` training rows drawn at random (seed 0) and a
projection on the ``pca`` leading principal components of those rows (``none`` for all rows
or no projection).
"""

from __future__ import annotations

import numpy as np

from bench.api import PIXELS, Detector
from bench.registry import register


class PyODDetector(Detector):
    """Adapter: subclasses build the PyOD estimator; fitting and scoring are PyOD's."""

    def __init__(self, features: str = PIXELS, fit_size: int | None = None, pca: int | None = None) -> None:
        super().__init__(features)
        self.fit_size = fit_size
        self.pca = pca

    def estimator(self):
        raise NotImplementedError

    def _reduce(self, X: np.ndarray) -> np.ndarray:
        return X if self.projection_ is None else self.projection_.transform(X)

    def fit(self, X: np.ndarray, y: np.ndarray | None = None) -> "PyODDetector":
        if self.fit_size is not None and self.fit_size < len(X):
            X = X[np.sort(np.random.default_rng(0).choice(len(X), self.fit_size, replace=False))]
        self.projection_ = None
        if self.pca is not None and self.pca < X.shape[1]:
            from sklearn.decomposition import PCA

            self.projection_ = PCA(n_components=self.pca, svd_solver="full").fit(X)
        self.estimator_ = self.estimator()
        self.estimator_.fit(self._reduce(X))
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        return self.estimator_.decision_function(self._reduce(X))


@register
class KDE(PyODDetector):
    """Gaussian kernel density; the score is the negative log density.

    The density is summed over one leaf holding every fitted point: exact, and faster than
    the tree at this size. (With scikit-learn 1.9's trees in 784 dimensions the log density
    depends on ``leaf_size``, off by up to 28 nats at PyOD's default of 30.) Scoring costs
    fitted points x scored points x dimensions, hence 1000 fitted points by default
    (about 3 minutes for the 220,000 images of MNIST-C on two cores).
    """

    name = "kde"
    reference = "Ruff et al., Proc. IEEE 2021 (KDE row of VoG Table 1); pyod.models.kde.KDE"

    def __init__(self, features: str = PIXELS, fit_size: int | None = 1000, pca: int | None = None,
                 bandwidth: float = 1.0) -> None:
        super().__init__(features, fit_size, pca)
        self.bandwidth = bandwidth

    def estimator(self):
        from pyod.models.kde import KDE as PyODKDE

        return PyODKDE(bandwidth=self.bandwidth, leaf_size=self.n_train_)

    def fit(self, X: np.ndarray, y: np.ndarray | None = None) -> "KDE":
        self.n_train_ = min(len(X), self.fit_size or len(X))
        return super().fit(X, y)

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

import contextlib
import io
from abc import abstractmethod
from typing import Iterator

import numpy as np
import torch

from bench.api import EMBEDDING, PIXELS, Detector, register


@contextlib.contextmanager
def seeded(seed: int = 0) -> Iterator[None]:
    """Seed numpy's and torch's global generators for a fit, and restore them afterwards."""
    state = np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        np.random.seed(seed)
        torch.manual_seed(seed)
        try:
            yield
        finally:
            np.random.set_state(state)


class PyODDetector(Detector):
    """Adapter: subclasses build the PyOD estimator; fitting and scoring are PyOD's."""

    def __init__(self, features: str = PIXELS, fit_size: int | None = None, pca: int | None = None) -> None:
        super().__init__(features)
        self.fit_size = fit_size
        self.pca = pca

    @abstractmethod
    def estimator(self, n_features: int):
        """A new, unfitted PyOD detector for data of ``n_features`` columns."""

    def _reduce(self, X: np.ndarray) -> np.ndarray:
        return X if self.projection_ is None else self.projection_.transform(X)

    def fit(self, X: np.ndarray, y: np.ndarray | None = None) -> "PyODDetector":
        if self.fit_size is not None and self.fit_size < len(X):
            X = X[np.sort(np.random.default_rng(0).choice(len(X), self.fit_size, replace=False))]
        self.projection_ = None
        if self.pca is not None and self.pca < X.shape[1]:
            from sklearn.decomposition import PCA

            self.projection_ = PCA(n_components=self.pca, svd_solver="full").fit(X)
        X = self._reduce(X)
        with seeded(0):
            self.estimator_ = self.estimator(X.shape[1])
            self.estimator_.fit(X)
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        with seeded(0):
            return np.asarray(self.estimator_.decision_function(self._reduce(X)), dtype=np.float64)


ONE_LEAF = 2**31 - 1  # a tree leaf size larger than any dataset: every point in one leaf


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

    def estimator(self, n_features: int):
        from pyod.models.kde import KDE as PyODKDE

        return PyODKDE(bandwidth=self.bandwidth, leaf_size=ONE_LEAF)


@register
class PCADetector(PyODDetector):
    """PyOD's PCA detector: distances to the eigenvectors, weighted by their explained variance (Shyu et al. 2003).

    ``n_components`` keeps the eigenvectors explaining that fraction of the variance (or that
    many): PyOD divides by each one's variance, and images have pixels that never vary, whose
    eigenvalues of exactly zero would make every score infinite.
    """

    name = "pca"
    reference = "Ruff et al., Proc. IEEE 2021 (PCA row of VoG Table 1); pyod.models.pca.PCA"

    def __init__(self, features: str = PIXELS, fit_size: int | None = None, pca: int | None = None,
                 n_components: float = 0.99) -> None:
        super().__init__(features, fit_size, pca)
        self.n_components = n_components

    def estimator(self, n_features: int):
        from pyod.models.pca import PCA

        return PCA(n_components=self.n_components, svd_solver="full", random_state=0)


@register
class KPCA(PyODDetector):
    """Kernel PCA (RBF) reconstruction error in feature space; the kernel matrix grows with the square of fit_size."""

    name = "kpca"
    reference = "Ruff et al., Proc. IEEE 2021 (kPCA row of VoG Table 1); Hoffmann 2007; pyod.models.kpca.KPCA"

    def __init__(self, features: str = PIXELS, fit_size: int | None = 1000, pca: int | None = None) -> None:
        super().__init__(features, fit_size, pca)

    def estimator(self, n_features: int):
        from pyod.models.kpca import KPCA as PyODKPCA

        return PyODKPCA(kernel="rbf", random_state=0)


@register
class SVDD(PyODDetector):
    """Support vector data description as a one-class SVM with an RBF kernel (equivalent for that kernel)."""

    name = "svdd"
    reference = "Ruff et al., Proc. IEEE 2021 (SVDD row of VoG Table 1); Tax & Duin 2004; pyod.models.ocsvm.OCSVM"

    def __init__(self, features: str = PIXELS, fit_size: int | None = 2000, pca: int | None = None) -> None:
        super().__init__(features, fit_size, pca)

    def estimator(self, n_features: int):
        from pyod.models.ocsvm import OCSVM

        return OCSVM(kernel="rbf")


@register
class MVE(PyODDetector):
    """Minimum volume ellipsoid as the minimum covariance determinant estimator's robust Mahalanobis distance.

    Pixel covariance is singular (constant border pixels), so the data are projected on their
    leading principal components first.
    """

    name = "mve"
    reference = "Ruff et al., Proc. IEEE 2021 (MVE row of VoG Table 1); Rousseeuw 1984; pyod.models.mcd.MCD"

    def __init__(self, features: str = PIXELS, fit_size: int | None = 5000, pca: int | None = 30) -> None:
        super().__init__(features, fit_size, pca)

    def estimator(self, n_features: int):
        from pyod.models.mcd import MCD

        return MCD(random_state=0)


@register
class DOCC(PyODDetector):
    """Deep one-class classification (Deep SVDD): a network mapping the data close to a centre; the distance scores."""

    name = "docc"
    reference = "Ruff et al., ICML 2018 (DOCC row of VoG Table 1); pyod.models.deep_svdd.DeepSVDD"

    def __init__(self, features: str = PIXELS, fit_size: int | None = 10000, pca: int | None = None,
                 epochs: int = 20) -> None:
        super().__init__(features, fit_size, pca)
        self.epochs = epochs

    def estimator(self, n_features: int):
        from pyod.models.deep_svdd import DeepSVDD

        return DeepSVDD(n_features=n_features, hidden_neurons=[128, 64], epochs=self.epochs,
                        batch_size=128, verbose=0, random_state=0)


@register
class AE(PyODDetector):
    """Autoencoder reconstruction error (fully connected, 128-64-128)."""

    name = "ae"
    reference = "Ruff et al., Proc. IEEE 2021 (AE row of VoG Table 1); pyod.models.auto_encoder.AutoEncoder"

    def __init__(self, features: str = PIXELS, fit_size: int | None = None, pca: int | None = None,
                 epochs: int = 10) -> None:
        super().__init__(features, fit_size, pca)
        self.epochs = epochs

    def estimator(self, n_features: int):
        from pyod.models.auto_encoder import AutoEncoder

        return AutoEncoder(hidden_neuron_list=[128, 64], epoch_num=self.epochs, batch_size=128, verbose=0,
                           random_state=0)


@register
class AEGAN(PyODDetector):
    """A GAN-based detector: SO-GAAL, whose discriminator learns to tell the data from generated outliers.

    The score is 1 - D(x), the paper's outlier score; PyOD returns D(x), the probability of
    being data, which ranks outliers lowest (yzhao062/pyod#119, measured here: AUROC 0.00 on
    planted outliers). PyOD's other GAN detectors did not do: ALAD scored at chance on digits,
    and AnoGAN's scoring runs under ``no_grad``, so it never searches the latent space.
    """

    name = "aegan"
    reference = ("VoG Table 1 AEGAN row (Ruff et al. 2021's GAN-based detector); Liu et al., TKDE 2019 SO-GAAL; "
                 "pyod.models.so_gaal.SO_GAAL")

    def __init__(self, features: str = PIXELS, fit_size: int | None = 10000, pca: int | None = None) -> None:
        super().__init__(features, fit_size, pca)

    def estimator(self, n_features: int):
        from pyod.models.so_gaal import SO_GAAL

        return SO_GAAL()

    def fit(self, X: np.ndarray, y: np.ndarray | None = None) -> "AEGAN":
        with contextlib.redirect_stdout(io.StringIO()):  # PyOD prints every epoch
            return super().fit(X, y)

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        return 1.0 - super().decision_function(X)


@register
class Gaussian(Detector):
    """Class-conditional Gaussians with a shared covariance: the smallest Mahalanobis distance to a class mean.

    Fitted on the training labels (Lee et al. 2018), on the final model's embedding by default.
    The shared covariance is estimated with Ledoit-Wolf shrinkage, so that pixels with no
    variance do not make it singular.
    """

    name = "gaussian"
    reference = "Ruff et al., Proc. IEEE 2021 (Gaussian row of VoG Table 1); Lee et al., NeurIPS 2018"

    def __init__(self, features: str = EMBEDDING) -> None:
        super().__init__(features)

    def fit(self, X: np.ndarray, y: np.ndarray | None = None) -> "Gaussian":
        from sklearn.covariance import LedoitWolf

        if y is None:
            raise ValueError("gaussian needs the training labels to fit one mean per class")
        X = np.asarray(X, dtype=np.float64)
        self.classes_ = np.unique(y)
        self.means_ = np.stack([X[y == c].mean(axis=0) for c in self.classes_])
        centred = X - self.means_[np.searchsorted(self.classes_, y)]
        self.precision_ = LedoitWolf(assume_centered=True).fit(centred).precision_
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        distances = [np.sum(((X - mean) @ self.precision_) * (X - mean), axis=1) for mean in self.means_]
        return np.min(distances, axis=0)

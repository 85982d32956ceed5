"""Outlier detectors fitted on in-distribution training features, as thin adapters over PyOD.

The VoG paper's Table 1 compares VoG with the detectors of Ruff et al. (2021); each adapter
here names the row it stands for. PyOD is imported when a detector is fitted, not when the
registry is listed.

Detectors whose cost grows with the training set or the dimension say how they are made
affordable in their parameters: ``fit_size`` training rows drawn at random (seed 0) and a
projection on the ``pca`` leading principal components of those rows (``none`` for all rows
or no projection).

The kernel and distance detectors (``kde``, ``kpca``, ``svdd``, ``pca``: ``ScoredHere``) are
fitted as PyOD fits them but scored here, with the formulas of PyOD's ``decision_function``
written as matrix products over chunks of ``CHUNK`` rows: PyOD's take a Python loop per example
(kPCA), a pairwise loop (``cdist``, libsvm) or a tree walk, 5 to 20 times slower on the 220,000
images of MNIST-C. They compute in float64, and agree with PyOD given float64 input to float64
rounding (``tests/test_detectors.py``). The principal axes of ``pca`` and ``pca-reconstruction``
come from the eigendecomposition of the 784 x 784 covariance of the centred rows
(``principal_axes``), not from a full SVD of the 60,000 rows: the same axes, and scores within
1e-10 of the largest (measured on MNIST-C: 2e-15 for ``pca``, 2e-13 for ``pca-reconstruction``).

The deep detectors (``ae``, ``docc``, ``aegan``) train PyOD's networks in loops written here that
take PyOD's steps and random draws exactly, on batches cut from one tensor in the order PyOD's
``DataLoader`` draws them (``Batches``), instead of rows indexed and stacked one at a time: the
same scores as PyOD's own ``fit``, bit for bit. ``aegan``'s loop leaves out SO-GAAL's wasted
passes (the discriminator's loss backpropagated into the generator, each generated batch made
twice, the generator's loss computed after it stops training). Each is held to a plain PyTorch
loop of the same training by ``python -m benchmarks detectors``.
"""

from __future__ import annotations

import contextlib
import copy
from abc import abstractmethod
from collections.abc import Callable
from typing import Iterator

import numpy as np
import torch
from scipy.special import logsumexp

from bench.api import EMBEDDING, PIXELS, Detector, at_least, register


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


CHUNK = 1024  # rows scored at once: their kernel values against 1,000 fitted points are 8 MB of float64


def by_chunks(score: Callable[[np.ndarray], np.ndarray], X: np.ndarray) -> np.ndarray:
    """``score`` of the rows of ``X`` (as float64), ``CHUNK`` rows at a time, so memory does not grow with ``X``."""
    X = np.asarray(X, dtype=np.float64)
    return np.concatenate([score(X[start:start + CHUNK]) for start in range(0, len(X), CHUNK)] or [np.empty(0)])


def squared_distances(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """|x - y|^2 for every row pair, as |x|^2 + |y|^2 - 2 x.y (one matrix product; clipped at 0 where rounding
    makes a distance to itself a little negative)."""
    return np.maximum(np.einsum("ij,ij->i", X, X)[:, None] + np.einsum("ij,ij->i", Y, Y)[None] - 2 * X @ Y.T, 0.0)


def rbf(X: np.ndarray, Y: np.ndarray, gamma: float) -> np.ndarray:
    return np.exp(-gamma * squared_distances(X, Y))


def check_components(scorer: str, n_components: float) -> None:
    """PCA's ``n_components`` as scikit-learn takes it: a fraction of the variance in (0, 1), or a count of 1 or more."""
    if not (0 < n_components < 1 or (isinstance(n_components, int) and n_components >= 1)):
        raise ValueError(f"{scorer}: n_components={n_components} is neither a fraction of the variance in (0, 1) nor a "
                         "count of 1 or more; e.g. 0.99, or 50")


def principal_axes(X: np.ndarray, n_components: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The mean of the float64 rows ``X``, their leading principal axes (one per row) and each axis's fraction of the
    variance: scikit-learn's ``PCA(n_components, svd_solver="full")`` (``mean_``, ``components_``,
    ``explained_variance_ratio_``), from the eigendecomposition of the centred rows' covariance (d x d) instead of an
    SVD of the rows (n x d), a fifteenth of the arithmetic at n = 60,000, d = 784.

    Kept: the leading axes whose fractions first add up to more than ``n_components`` (a fraction), or that many
    (a count). Each axis's sign makes its coordinate of largest magnitude positive, as scikit-learn's does.
    """
    if n_components > min(X.shape):
        raise ValueError(f"n_components={n_components} is more than the {min(X.shape)} axes of {X.shape[0]} rows "
                         f"of {X.shape[1]} columns")
    mean = X.mean(axis=0)
    centred = X - mean
    variances, vectors = np.linalg.eigh(centred.T @ centred / (len(X) - 1))  # ascending
    variances = np.maximum(variances[::-1], 0.0)  # rounding leaves the zero ones a little negative
    fractions = variances / variances.sum()
    kept = n_components if n_components >= 1 else int(np.searchsorted(np.cumsum(fractions), n_components, "right")) + 1
    axes = np.ascontiguousarray(vectors[:, ::-1][:, :kept].T)
    axes *= np.sign(axes[np.arange(kept), np.abs(axes).argmax(axis=1)])[:, None]
    return mean, axes, fractions[:kept]


class PyODDetector(Detector):
    """Adapter: subclasses build the PyOD estimator; fitting and scoring are PyOD's."""

    def __init__(self, features: str = PIXELS, fit_size: int | None = None, pca: int | None = None) -> None:
        super().__init__(features)
        at_least(self.name, "fit_size", fit_size, 1, "every training row")
        at_least(self.name, "pca", pca, 1, "no projection")
        self.fit_size = fit_size
        self.pca = pca

    @abstractmethod
    def estimator(self, n_features: int):
        """A new, unfitted PyOD detector for data of ``n_features`` columns."""

    def _reduce(self, X: np.ndarray) -> np.ndarray:
        return X if self.projection_ is None else self.projection_.transform(X)

    def _training_rows(self, X: np.ndarray) -> np.ndarray:
        """The ``fit_size`` rows fitted on, projected on their ``pca`` leading components (fitted here)."""
        if self.fit_size is not None and self.fit_size < len(X):
            X = X[np.sort(np.random.default_rng(0).choice(len(X), self.fit_size, replace=False))]
        self.projection_ = None
        if self.pca is not None and self.pca < X.shape[1]:
            from sklearn.decomposition import PCA

            self.projection_ = PCA(n_components=self.pca, svd_solver="full").fit(X)
        return self._reduce(X)

    def fit(self, X: np.ndarray, y: np.ndarray | None = None) -> "PyODDetector":
        X = self._training_rows(X)
        with seeded(0):
            self.estimator_ = self.estimator(X.shape[1])
            self.estimator_.fit(X)
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        with seeded(0):
            return np.asarray(self.estimator_.decision_function(self._reduce(X)), dtype=np.float64)


class ScoredHere(PyODDetector):
    """A PyOD detector whose ``decision_function`` is written here as matrix products; it fits on float64
    rows (PyOD keeps float32 input as float32, whose rounding the differences of kPCA's scores magnify)."""

    def fit(self, X: np.ndarray, y: np.ndarray | None = None) -> "ScoredHere":
        return super().fit(np.asarray(X, dtype=np.float64), y)

    @abstractmethod
    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """PyOD's score of the fitted estimator, computed in chunks."""


STANDARDISING_EPS = 1e-8  # what PyOD's TorchDataset adds to every pixel's std


class Batches:
    """The batches a ``DataLoader`` over the rows of ``X`` yields (PyOD's ``TorchDataset`` of standardised rows, a
    ``TensorDataset``), cut from the one tensor instead of indexed and stacked one row at a time: with ``shuffle``,
    in a permutation drawn as torch's ``RandomSampler`` draws it (after the seed every ``DataLoader`` iterator
    draws); without, in order. ``drop_last`` leaves out a last batch smaller than ``batch_size``."""

    def __init__(self, X: torch.Tensor, batch_size: int, shuffle: bool, drop_last: bool = False) -> None:
        self.X, self.batch_size, self.shuffle, self.drop_last = X, batch_size, shuffle, drop_last

    def __iter__(self) -> Iterator[torch.Tensor]:
        torch.empty((), dtype=torch.int64).random_()  # the iterator's base seed, drawn though no worker uses it
        order = None
        if self.shuffle:
            seed = int(torch.empty((), dtype=torch.int64).random_().item())
            order = torch.randperm(len(self.X), generator=torch.Generator().manual_seed(seed))
        end = len(self.X) - len(self.X) % self.batch_size if self.drop_last else len(self.X)
        for start in range(0, end, self.batch_size):
            rows = slice(start, min(start + self.batch_size, end))
            yield self.X[rows] if order is None else self.X[order[rows]]


ONE_LEAF = 2**31 - 1  # a tree leaf size larger than any dataset: every point in one leaf


@register
class KDE(ScoredHere):
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
        if bandwidth <= 0:
            raise ValueError(f"kde: bandwidth={bandwidth} is not positive; give the Gaussian kernel's width, e.g. 1.0")
        self.bandwidth = bandwidth

    def estimator(self, n_features: int):
        from pyod.models.kde import KDE as PyODKDE

        return PyODKDE(bandwidth=self.bandwidth, leaf_size=ONE_LEAF)

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """-log p(x), p(x) = mean_i N(x; x_i, h^2 I): logsumexp_i(-|x - x_i|^2 / 2h^2) - log n - d/2 log(2 pi h^2)."""
        points = np.asarray(self.estimator_.kde_.tree_.get_arrays()[0])
        n, d = points.shape
        h2 = self.bandwidth ** 2
        constant = np.log(n) + d / 2 * np.log(2 * np.pi * h2)
        return by_chunks(lambda x: constant - logsumexp(-squared_distances(x, points) / (2 * h2), axis=1),
                         self._reduce(X))


@register
class PCADetector(ScoredHere):
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
        check_components(self.name, n_components)
        self.n_components = n_components

    def estimator(self, n_features: int):
        from pyod.models.pca import PCA

        return PCA(n_components=self.n_components, svd_solver="full", random_state=0)

    def fit(self, X: np.ndarray, y: np.ndarray | None = None) -> "PCADetector":
        """PyOD's fit (standardise, PCA, keep every component and its explained variance ratio as its weight),
        with the principal axes from the covariance (``principal_axes``) and without scoring the training rows,
        which PyOD does and nobody reads here."""
        from sklearn.preprocessing import StandardScaler

        X = self._training_rows(np.asarray(X, dtype=np.float64))
        self.scaler_ = StandardScaler().fit(X)
        _, self.components_, self.weights_ = principal_axes(self.scaler_.transform(X), self.n_components)
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """sum_k |x - v_k| / w_k over the eigenvectors v_k (as points) and their weights, on standardised x."""
        return by_chunks(lambda x: (np.sqrt(squared_distances(self.scaler_.transform(x), self.components_))
                                    / self.weights_).sum(axis=1), self._reduce(X))


@register
class KPCA(ScoredHere):
    """Kernel PCA (RBF) reconstruction error in feature space; the kernel matrix grows with the square of fit_size."""

    name = "kpca"
    reference = "Ruff et al., Proc. IEEE 2021 (kPCA row of VoG Table 1); Hoffmann 2007; pyod.models.kpca.KPCA"

    def __init__(self, features: str = PIXELS, fit_size: int | None = 1000, pca: int | None = None) -> None:
        super().__init__(features, fit_size, pca)

    def estimator(self, n_features: int):
        from pyod.models.kpca import KPCA as PyODKPCA

        return PyODKPCA(kernel="rbf", random_state=0)

    def fit(self, X: np.ndarray, y: np.ndarray | None = None) -> "KPCA":
        """PyOD's fit, then the kept components' coefficients, as scikit-learn's ``transform`` scales them:
        eigenvectors over the square root of their eigenvalue, those of zero eigenvalues left 0."""
        super().fit(X, y)
        kpca, kept = self.estimator_.kpca, self.estimator_.n_selected_components_
        values, vectors = kpca.eigenvalues_[:kept], kpca.eigenvectors_[:, :kept]
        self.alphas_ = np.zeros_like(vectors)
        nonzero = np.flatnonzero(values)
        self.alphas_[:, nonzero] = vectors[:, nonzero] / np.sqrt(values[nonzero])
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """The squared distance in feature space between x and its projection on the kept components:
        k(x, x) - 2 mean_i k(x, x_i) + mean_ij k(x_i, x_j) - |projection|^2, with k(x, x) = 1 for the RBF kernel."""
        kpca = self.estimator_.kpca
        centerer, gamma = kpca.get_centerer, kpca.gamma_

        def score(x: np.ndarray) -> np.ndarray:
            kernel = rbf(x, kpca.X_fit_, gamma)
            projection = centerer.transform(kernel) @ self.alphas_
            return 1.0 - 2 * kernel.mean(axis=1) + centerer.K_fit_all_ - np.einsum("ij,ij->i", projection, projection)

        return by_chunks(score, self._reduce(X))


@register
class SVDD(ScoredHere):
    """Support vector data description as a one-class SVM with an RBF kernel (equivalent for that kernel)."""

    name = "svdd"
    reference = "Ruff et al., Proc. IEEE 2021 (SVDD row of VoG Table 1); Tax & Duin 2004; pyod.models.ocsvm.OCSVM"

    def __init__(self, features: str = PIXELS, fit_size: int | None = 2000, pca: int | None = None) -> None:
        super().__init__(features, fit_size, pca)

    def estimator(self, n_features: int):
        from pyod.models.ocsvm import OCSVM

        return OCSVM(kernel="rbf")

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """-(sum_j a_j k(x, s_j) + b) over the support vectors s_j: minus the one-class SVM's decision value."""
        svm = self.estimator_.detector_
        gamma = 1.0 / svm.n_features_in_  # PyOD's gamma="auto"
        return by_chunks(lambda x: -(rbf(x, svm.support_vectors_, gamma) @ svm.dual_coef_[0] + svm.intercept_[0]),
                         self._reduce(X))


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
        at_least(self.name, "epochs", epochs, 1)
        self.epochs = epochs

    def estimator(self, n_features: int):
        from pyod.models.deep_svdd import DeepSVDD

        return DeepSVDD(n_features=n_features, hidden_neurons=[128, 64], epochs=self.epochs,
                        batch_size=128, verbose=0, random_state=0)

    def fit(self, X: np.ndarray, y: np.ndarray | None = None) -> "DOCC":
        """PyOD's ``DeepSVDD.fit``, step for step and draw for draw (the same weights, bit for bit): standardise;
        the centre, from the new network's outputs on a shuffled copy (PyOD shuffles it for a validation split it
        never makes, and the centre's mean sums in that order); Adam on the mean squared distance to the centre
        plus 1e-6 times the sum of the weights' norms; the weights of the epoch of least summed loss. Batches are
        cut from one tensor (``Batches``) instead of a ``DataLoader`` stacking rows one at a time, and the
        training rows are not scored."""
        from pyod.models.deep_svdd import InnerDeepSVDD, optimizer_dict
        from sklearn.preprocessing import StandardScaler
        from sklearn.utils import check_array

        X = check_array(self._training_rows(X))
        with seeded(0):
            svdd = self.estimator_ = self.estimator(X.shape[1])
            svdd._set_n_classes(None)
            svdd.scaler_ = StandardScaler()
            shuffled = svdd.scaler_.fit_transform(X)
            np.random.shuffle(shuffled)
            network = svdd.model_ = InnerDeepSVDD(
                svdd.n_features, use_ae=svdd.use_ae, hidden_neurons=svdd.hidden_neurons,
                hidden_activation=svdd.hidden_activation, output_activation=svdd.output_activation,
                dropout_rate=svdd.dropout_rate, l2_regularizer=svdd.l2_regularizer)
            centre = svdd.c_ = network._init_c(torch.tensor(shuffled, dtype=torch.float32))
            rows = torch.tensor(svdd.scaler_.transform(X), dtype=torch.float32)
            steps = optimizer_dict[svdd.optimizer](network.parameters(), lr=svdd.learning_rate,
                                                   weight_decay=svdd.l2_regularizer)
            least, best = float("inf"), None
            for _ in range(svdd.epochs):
                network.train()
                summed = 0.0
                for batch in Batches(rows, svdd.batch_size, shuffle=True):
                    steps.zero_grad()
                    loss = torch.sum((network(batch) - centre) ** 2, dim=-1).mean()
                    loss = loss + 1e-6 * sum([torch.linalg.norm(w) for w in network.parameters()])
                    loss.backward()
                    steps.step()
                    summed += loss.item()
                if summed < least:
                    least, best = summed, copy.deepcopy(network.state_dict())
            network.load_state_dict(best)
        return self


@register
class AE(PyODDetector):
    """Autoencoder reconstruction error (fully connected, 128-64-128)."""

    name = "ae"
    reference = "Ruff et al., Proc. IEEE 2021 (AE row of VoG Table 1); pyod.models.auto_encoder.AutoEncoder"

    def __init__(self, features: str = PIXELS, fit_size: int | None = None, pca: int | None = None,
                 epochs: int = 10) -> None:
        super().__init__(features, fit_size, pca)
        at_least(self.name, "epochs", epochs, 1)
        self.epochs = epochs

    def estimator(self, n_features: int):
        from pyod.models.auto_encoder import AutoEncoder

        return AutoEncoder(hidden_neuron_list=[128, 64], epoch_num=self.epochs, batch_size=128, verbose=0,
                           random_state=0)

    def _standardised(self, X: np.ndarray) -> torch.Tensor:
        ae = self.estimator_
        return torch.as_tensor((X - ae.X_mean) / (ae.X_std + STANDARDISING_EPS), dtype=torch.float32)

    def fit(self, X: np.ndarray, y: np.ndarray | None = None) -> "AE":
        """PyOD's ``AutoEncoder.fit`` on ``Batches``, without scoring the training rows (nobody reads them here)."""
        from sklearn.utils import check_array

        X = check_array(self._training_rows(X))
        with seeded(0):
            ae = self.estimator_ = self.estimator(X.shape[1])
            ae._set_n_classes(None)
            ae.data_num, ae.feature_size = X.shape
            ae.build_model()
            ae.training_prepare()
            ae.X_mean, ae.X_std = np.mean(X, axis=0), np.std(X, axis=0)
            ae.train(Batches(self._standardised(X), ae.batch_size, shuffle=True, drop_last=True))
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """PyOD's ``decision_function`` with ``batch_size=CHUNK``: in eval mode each row's score does not depend on
        its batch (bit for bit against PyOD's batches of 128, ``tests/test_detectors.py``), and 8 times fewer
        batches take 8 times fewer calls of each layer."""
        from sklearn.utils import check_array

        ae = self.estimator_
        with seeded(0):
            scores = ae.evaluate(Batches(self._standardised(check_array(self._reduce(X))), CHUNK, shuffle=False))
        return np.asarray(ae.decision_function_update(scores), dtype=np.float64)


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
        """PyOD's ``SO_GAAL.fit``, step for step and draw for draw (the same weights, bit for bit), without its
        wasted passes: the discriminator's loss reads the generated points detached (PyOD backpropagates it
        into the generator too, a gradient it then clears), the generator's step reuses those points (PyOD
        generates them again from the same noise and weights), and once the generator stops training (after
        ``stop_epochs`` + 1 epochs, as PyOD counts) its points are made without a graph and its loss, which
        nothing reads, is not computed. Batches are cut from one tensor (``Batches``), and the training rows
        are not scored."""
        from pyod.models.so_gaal import Discriminator, Generator
        from sklearn.utils import check_array

        X = check_array(self._training_rows(X))
        n, d = X.shape
        with seeded(0):
            gaal = self.estimator_ = self.estimator(d)
            gaal._set_n_classes(None)
            discriminator = gaal.discriminator = Discriminator(d, n)
            generator = gaal.generator = Generator(d)
            discriminator_steps = torch.optim.SGD(discriminator.parameters(), lr=gaal.lr_d, momentum=gaal.momentum)
            generator_steps = torch.optim.SGD(generator.parameters(), lr=gaal.lr_g, momentum=gaal.momentum)
            loss, rows = torch.nn.BCELoss(), torch.tensor(X, dtype=torch.float32)
            for epoch in range(3 * gaal.stop_epochs):
                generator_trains = epoch <= gaal.stop_epochs
                for real in Batches(rows, min(500, n), shuffle=True):
                    noise = torch.rand(len(real), d)
                    with torch.set_grad_enabled(generator_trains):
                        generated = generator(noise)
                    data, outlier = torch.ones(len(real), 1), torch.zeros(len(real), 1)
                    discriminator_steps.zero_grad()
                    (loss(discriminator(real), data) + loss(discriminator(generated.detach()), outlier)).backward()
                    discriminator_steps.step()
                    if generator_trains:
                        generator_steps.zero_grad()
                        loss(discriminator(generated), data).backward()
                        generator_steps.step()
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        return 1.0 - super().decision_function(X)


class ClassGaussians(Detector):
    """Class-conditional Gaussians with one shared covariance (Lee et al. 2018): the smallest squared Mahalanobis
    distance to a class mean. The covariance is fitted on the class-centred training rows by ``covariance``."""

    @abstractmethod
    def covariance(self):
        """A new, unfitted scikit-learn covariance estimator; its ``precision_`` is the shared precision."""

    def fit(self, X: np.ndarray, y: np.ndarray | None = None) -> "ClassGaussians":
        if y is None:
            raise ValueError(f"{self.name} needs the training labels to fit one mean per class")
        X, y = np.asarray(X, dtype=np.float64), np.asarray(y)
        self.classes_ = np.unique(y)
        self.means_ = np.stack([X[y == c].mean(axis=0) for c in self.classes_])
        centred = X - self.means_[np.searchsorted(self.classes_, y)]
        self.precision_ = self.covariance().fit(centred).precision_
        return self

    @staticmethod
    def distances(X: np.ndarray, mean: np.ndarray, precision: np.ndarray) -> np.ndarray:
        """(x - mean)' precision (x - mean) for each row x of X."""
        return np.sum(((X - mean) @ precision) * (X - mean), axis=1)

    def nearest_class(self, X: np.ndarray) -> np.ndarray:
        """The distance of each row to its nearest class mean."""
        return np.min([self.distances(X, mean, self.precision_) for mean in self.means_], axis=0)

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        return by_chunks(self.nearest_class, X)


@register
class Gaussian(ClassGaussians):
    """Class-conditional Gaussians with a shared covariance: the smallest Mahalanobis distance to a class mean.

    Fitted on the training labels (Lee et al. 2018), on the final model's embedding by default.
    The shared covariance is estimated with Ledoit-Wolf shrinkage, so that pixels with no
    variance do not make it singular (``mds`` is the same model with the empirical covariance).
    """

    name = "gaussian"
    reference = "Ruff et al., Proc. IEEE 2021 (Gaussian row of VoG Table 1); Lee et al., NeurIPS 2018"

    def __init__(self, features: str = EMBEDDING) -> None:
        super().__init__(features)

    def covariance(self):
        from sklearn.covariance import LedoitWolf

        return LedoitWolf(assume_centered=True)


@register
class Mahalanobis(Detector):
    """One Gaussian fitted to every training example: the squared Mahalanobis distance to its mean.

    The Gaussian row of the VoG paper's Table 1 in its own form (Ruff et al. 2021: one Gaussian
    on the pixels, the empirical covariance). Pixels that never vary make that covariance
    singular; its pseudo-inverse (scikit-learn's) leaves those directions out, so ink added
    where the training digits never have any is not seen. ``gaussian`` is the class-conditional
    detector of Lee et al. on the embedding, under its own name.
    """

    name = "mahalanobis"
    reference = "Ruff et al., Proc. IEEE 2021 (Gaussian row of VoG Table 1); sklearn.covariance.EmpiricalCovariance"

    def __init__(self, features: str = PIXELS) -> None:
        super().__init__(features)

    def fit(self, X: np.ndarray, y: np.ndarray | None = None) -> "Mahalanobis":
        from sklearn.covariance import EmpiricalCovariance

        self.gaussian_ = EmpiricalCovariance().fit(np.asarray(X, dtype=np.float64))
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """(x - mean)' precision (x - mean), as a matrix product (scikit-learn's ``mahalanobis`` loops per pair)."""
        gaussian = self.gaussian_

        def distance(x: np.ndarray) -> np.ndarray:
            centred = x - gaussian.location_
            return np.einsum("ij,ij->i", centred @ gaussian.precision_, centred)

        return by_chunks(distance, X)


@register
class PCAReconstruction(Detector):
    """The squared reconstruction error from the leading principal components of the training data.

    The PCA row of the VoG paper's Table 1 in its own form (Ruff et al. 2021: reconstruction
    error), beside ``pca``, PyOD's weighted distance to the eigenvectors. ``n_components``
    keeps the components explaining that fraction of the variance (or that many): 0.99, the
    ``pca`` detector's, chosen before any MNIST-C score was seen.
    """

    name = "pca-reconstruction"
    reference = "Ruff et al., Proc. IEEE 2021 (PCA row of VoG Table 1); sklearn.decomposition.PCA"

    def __init__(self, features: str = PIXELS, n_components: float = 0.99) -> None:
        super().__init__(features)
        check_components(self.name, n_components)
        self.n_components = n_components

    def fit(self, X: np.ndarray, y: np.ndarray | None = None) -> "PCAReconstruction":
        self.mean_, self.components_, _ = principal_axes(np.asarray(X, dtype=np.float64), self.n_components)
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """|c - c V'V|^2 = |c|^2 - |c V'|^2 (V's rows, the kept axes, are orthonormal), c = x - mean: one matrix
        product instead of scikit-learn's two (project, map back); clipped at 0 where rounding makes a point on the
        plane a little negative."""
        def error(x: np.ndarray) -> np.ndarray:
            centred = x - self.mean_
            projected = centred @ self.components_.T
            return np.maximum(np.einsum("ij,ij->i", centred, centred) - np.einsum("ij,ij->i", projected, projected), 0)

        return by_chunks(error, X)

"""The detectors' cost parameters, by behaviour: ``fit_size`` fits on that many training rows, ``pca`` on that many
leading principal components of them. Detectors are built from their classes, not from the registry."""

import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.metrics import roc_auc_score

from scorers.detectors import KDE, KPCA, MVE, PCADetector

CLASSES = [KDE, PCADetector, KPCA, MVE]


def recording(cls, **params):
    """A ``cls`` detector whose PyOD estimator keeps the X it is fitted on (``fitted_on``) and the
    ``n_features`` it was built for (``built_for``)."""

    class Recording(cls):
        def estimator(self, n_features):
            estimator = super().estimator(n_features)
            fit = estimator.fit

            def record(X, y=None):
                self.fitted_on, self.built_for = np.array(X, copy=True), n_features
                return fit(X, y)

            estimator.fit = record
            return estimator

    return Recording(**params)


def row_ids(rows, X):
    """The index in X of each row; a KeyError if one is not a row of X."""
    index = {row.tobytes(): i for i, row in enumerate(X)}
    return np.array([index[row.tobytes()] for row in rows])


@pytest.fixture
def X():
    return np.random.default_rng(0).normal(size=(120, 5))


@pytest.mark.parametrize("cls", CLASSES)
def test_fit_uses_exactly_fit_size_distinct_training_rows_drawn_at_random(cls, X):
    """The estimator sees exactly fit_size rows, each a row of X, none twice, from across X (not a prefix or
    suffix); PyOD's own record of the training scores agrees on the count."""
    detector = recording(cls, fit_size=40, pca=None).fit(X)
    ids = row_ids(detector.fitted_on, X)
    assert detector.fitted_on.shape == (40, 5)
    assert len(np.unique(ids)) == 40
    assert ids.min() < 60 <= ids.max()
    assert len(detector.estimator_.decision_scores_) == 40


def test_the_draw_is_deterministic_whatever_the_global_seed(X):
    """Two fits draw the same rows, whatever numpy's global generator holds and whichever detector draws."""
    np.random.seed(1)
    first = row_ids(recording(KDE, fit_size=40).fit(X).fitted_on, X)
    np.random.seed(2)
    again = row_ids(recording(KDE, fit_size=40).fit(X).fitted_on, X)
    other = row_ids(recording(MVE, fit_size=40, pca=None).fit(X).fitted_on, X)
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(first, other)


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("fit_size", [None, 120, 500])
def test_no_fit_size_or_one_at_least_the_data_uses_every_row(cls, fit_size, X):
    """fit_size=None, or not smaller than the data, fits on every training row once."""
    detector = recording(cls, fit_size=fit_size, pca=None).fit(X)
    np.testing.assert_array_equal(np.sort(row_ids(detector.fitted_on, X)), np.arange(len(X)))
    assert len(detector.estimator_.decision_scores_) == len(X)


def test_kde_fitted_on_one_row_finds_the_other_cluster_outlying():
    """Two far-apart clusters: fitted on one row, KDE scores every point of the other cluster above every
    point of the drawn row's own cluster; fitted on all rows, the clusters score alike."""
    rng = np.random.default_rng(0)
    cluster = np.repeat([0, 1], 50)
    X = np.array([[-10.0, 0.0], [10.0, 0.0]])[cluster] + rng.normal(size=(100, 2))
    one = recording(KDE, fit_size=1).fit(X)
    assert one.fitted_on.shape == (1, 2)
    other = cluster != cluster[row_ids(one.fitted_on, X)[0]]
    assert roc_auc_score(other, one.decision_function(X)) == 1.0
    assert abs(roc_auc_score(other, KDE(fit_size=None).fit(X).decision_function(X)) - 0.5) < 0.2


@pytest.mark.parametrize("cls", [KDE, MVE])
def test_projection_has_pca_components_fitted_on_the_drawn_rows_only(cls):
    """With fit_size=50 and pca=3 the estimator is built for and fitted on 3 columns: the drawn rows' projection on
    their own 3 leading principal components (not those of all rows); scoring goes through the same projection.
    pca not below the dimension projects nothing."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 10)) * np.linspace(3, 0.5, 10) + 5 * (np.arange(120) >= 60)[:, None]
    rows = np.sort(row_ids(recording(cls, fit_size=50, pca=None).fit(X).fitted_on, X))
    detector = recording(cls, fit_size=50, pca=3).fit(X)
    projection, reference = detector.projection_, PCA(n_components=3).fit(X[rows])
    assert detector.fitted_on.shape == (50, 3) and detector.built_for == 3
    assert projection.n_components_ == 3 and projection.n_samples_ == 50
    np.testing.assert_allclose(projection.mean_, X[rows].mean(axis=0))
    assert not np.allclose(projection.mean_, X.mean(axis=0))
    np.testing.assert_allclose(np.abs(projection.components_ @ reference.components_.T), np.eye(3), atol=1e-8)
    np.testing.assert_allclose(detector.fitted_on, projection.transform(X[rows]))
    test = rng.normal(size=(20, 10))
    np.testing.assert_allclose(detector.decision_function(test),
                               detector.estimator_.decision_function(projection.transform(test)))
    full = recording(cls, fit_size=50, pca=10).fit(X)
    assert full.projection_ is None
    np.testing.assert_array_equal(full.fitted_on, X[rows])


def gapped(rng, n, outliers=False, noise_dims=100):
    """Four clusters at (+-2.5, +-2.5) (spread 0.3) in the first two coordinates, then standard normal noise.
    Outliers differ only in coordinate 0: they sit in the gap between the clusters, at 0."""
    signal = 2.5 * rng.choice([-1.0, 1.0], size=(n, 2)) + rng.normal(0, 0.3, (n, 2))
    if outliers:
        signal[:, 0] = rng.normal(0, 0.3, n)
    return np.hstack([signal, rng.normal(size=(n, noise_dims))])


def test_pca_reduced_kde_finds_a_gap_that_the_full_kde_cannot_see():
    """The two signal coordinates have variance 6.3, each noise direction about 1 (sample eigenvalues up to
    about 2.5), so pca=2 keeps the signal plane, where the outliers are 2.5 bandwidths from every cluster. In all
    102 coordinates that gap (6.25 in squared distance) drowns in the noise's squared norm (sd about 14): the full
    KDE ranks at chance (measured 0.48), the reduced one almost perfectly (measured 1.00). A pca silently
    ignored fails the first assertion."""
    rng = np.random.default_rng(0)
    train, test = gapped(rng, 300), np.vstack([gapped(rng, 100), gapped(rng, 100, outliers=True)])
    outlier = np.repeat([False, True], 100)
    reduced = roc_auc_score(outlier, KDE(fit_size=200, pca=2).fit(train).decision_function(test))
    full = roc_auc_score(outlier, KDE(fit_size=200, pca=None).fit(train).decision_function(test))
    assert reduced > 0.95
    assert full < 0.65

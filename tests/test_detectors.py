"""The detectors' cost parameters, by behaviour: ``fit_size`` fits on that many training rows, ``pca`` on that many
leading principal components of them. Detectors are built from their classes, not from the registry."""

import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.metrics import roc_auc_score

from scorers.detectors import AE, AEGAN, DOCC, KDE, KPCA, MVE, SVDD, PCADetector, PCAReconstruction, seeded

CLASSES = [KDE, PCADetector, KPCA, MVE]


def recording(cls, **params):
    """A ``cls`` detector that keeps the rows it is fitted on (``fitted_on``) and their number of columns
    (``built_for``), and checks that its PyOD estimator, if it has one, is built for that many."""

    class Recording(cls):
        def _training_rows(self, X):
            rows = super()._training_rows(X)
            self.fitted_on, self.built_for = np.array(rows, copy=True), rows.shape[1]
            return rows

        def estimator(self, n_features):
            assert n_features == self.built_for
            return super().estimator(n_features)

    return Recording(**params)


def fitted_by_pyod(detector):
    """The PyOD estimator's own record of its training scores, where PyOD fitted it (PCA is fitted here)."""
    return getattr(detector, "estimator_", None)


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
    if fitted_by_pyod(detector):
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
    if fitted_by_pyod(detector):
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


@pytest.mark.parametrize("cls", [KDE, KPCA, SVDD])
def test_the_scores_computed_here_are_pyods_to_float64_rounding(cls):
    """kde, kpca and svdd score with matrix products in chunks, not PyOD's loops: the same scores as PyOD's
    ``decision_function`` of the same fit, over more rows than a chunk. A score is a sum of a few hundred terms
    of products of 30 numbers, so float64 rounding is about 1e-13 of its size; 1e-9 leaves room for that, while
    a wrong constant, kernel width or term shows at 1e-3 or more."""
    from scorers.detectors import CHUNK

    rng = np.random.default_rng(0)
    train, test = rng.normal(size=(400, 30)), rng.normal(0.3, 1.3, size=(CHUNK + 100, 30))
    detector = cls(fit_size=300).fit(train)
    ours, theirs = detector.decision_function(test), detector.estimator_.decision_function(test)
    assert np.abs(ours - theirs).max() <= 1e-9 * np.abs(theirs).max()
    assert np.corrcoef(ours, rng.permutation(theirs))[0, 1] < 0.5  # the comparison can fail: scores differ by row


def test_the_autoencoder_fed_whole_batches_is_pyods_bit_for_bit():
    """Batches cut from one standardised array, in the order PyOD's DataLoader draws them, and scored a chunk at a
    time: PyOD's own ``fit`` and ``decision_function`` (batches of 128) give the same scores exactly."""
    from scorers.detectors import CHUNK

    rng = np.random.default_rng(0)
    train, test = rng.random((300, 20)).astype(np.float32), rng.random((CHUNK + 100, 20)).astype(np.float32)
    ours = AE(epochs=2).fit(train).decision_function(test)
    with seeded(0):
        pyod = AE(epochs=2).estimator(20)
        pyod.fit(train)
        theirs = pyod.decision_function(test)
    np.testing.assert_array_equal(ours, theirs)


def test_mahalanobis_is_the_distance_under_the_empirical_covariance_blind_where_nothing_varies():
    """Against numpy's closed form (x - mean)' inverse(cov) (x - mean), ddof 0; a column that never varies in
    training is left out by the pseudo-inverse, so moving a test point along it changes nothing."""
    from scorers.detectors import Mahalanobis

    rng = np.random.default_rng(0)
    train, test = rng.normal(size=(300, 4)) @ rng.normal(size=(4, 4)), rng.normal(size=(20, 4))
    mean, precision = train.mean(axis=0), np.linalg.inv(np.cov(train, rowvar=False, ddof=0))
    expected = np.einsum("ij,jk,ik->i", test - mean, precision, test - mean)
    np.testing.assert_allclose(Mahalanobis().fit(train).decision_function(test), expected, rtol=1e-9)
    flat = np.hstack([train, np.zeros((300, 1))])
    detector = Mahalanobis().fit(flat)
    moved = np.hstack([test, np.full((20, 1), 5.0)])
    np.testing.assert_allclose(detector.decision_function(moved), expected, rtol=1e-6)


def test_pca_reconstruction_error_is_the_squared_distance_to_the_principal_plane():
    """Training points on a plane through (1, 1, 1, 1, 1), spanned by the first two axes: a point 3 off the plane
    along the third axis scores 9, points on it 0."""
    from scorers.detectors import PCAReconstruction

    rng = np.random.default_rng(0)
    train = np.ones((200, 5))
    train[:, :2] += rng.normal(size=(200, 2)) * [3.0, 1.0]
    test = np.ones((3, 5))
    test[:, :2] = [[2.0, -1.0], [0.0, 4.0], [1.0, 1.0]]
    test[2, 2] += 3.0
    scores = PCAReconstruction(n_components=2).fit(train).decision_function(test)
    np.testing.assert_allclose(scores, [0.0, 0.0, 9.0], atol=1e-9)


def correlated(rng, n, shift=0.0):
    """Rows of 30 correlated columns (a rotated Gaussian whose standard deviations fall from 1 to 0.01) around 3:
    standardising the columns does not undo the spread of the variances, and 0.99 of the variance keeps 16 axes
    whose variances span a factor of 75 (measured)."""
    rotation = np.linalg.qr(np.random.default_rng(1).normal(size=(30, 30)))[0]
    return (rng.normal(size=(n, 30)) * np.logspace(0, -2, 30)) @ rotation + 3.0 + shift


@pytest.mark.parametrize("n_components", [0.99, 0.5, 7])
def test_pca_from_the_covariance_scores_as_pyod_fitted_by_svd(n_components):
    """``pca`` takes its axes from the eigendecomposition of the covariance, PyOD from an SVD of the standardised
    rows: the same axes (count, order, and sign, on which PyOD's distance to each axis as a point depends) and
    the same scores to rounding. The covariance route rounds each variance to about 2e-16 of the largest (an
    SVD, to 2e-16 of each), so the smallest kept axis's weight and direction are off by up to about 2e-16 x 75
    (the spread of the kept variances) x 400 (the rows summed) = 6e-12 of the score; measured 7e-16. 1e-10
    leaves room for that, while a flipped axis, a wrong weight or an axis too many shows at 1e-3 or more."""
    rng = np.random.default_rng(0)
    train, test = correlated(rng, 400), correlated(rng, 1200, shift=0.01)
    detector = PCADetector(n_components=n_components).fit(train)
    pyod = detector.estimator(30).fit(train)
    assert len(detector.weights_) == pyod.n_components_
    ours, theirs = detector.decision_function(test), pyod.decision_function(test)
    assert np.abs(ours - theirs).max() <= 1e-10 * np.abs(theirs).max()
    assert np.corrcoef(ours, rng.permutation(theirs))[0, 1] < 0.5  # the comparison can fail: scores differ by row


@pytest.mark.parametrize("n_components", [0.99, 0.5, 7])
def test_pca_reconstruction_from_the_covariance_is_scikit_learns_by_svd(n_components):
    """The same principal plane as scikit-learn's ``PCA(svd_solver="full")``, by the same rule for a fraction or a
    count: the same number of axes and the same reconstruction errors to rounding (measured 1.4e-13 of the
    largest, |c|^2 - |c V'|^2 cancelling; the tolerance as for ``pca``)."""
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(0)
    train, test = correlated(rng, 400), correlated(rng, 1200, shift=0.01)
    detector = PCAReconstruction(n_components=n_components).fit(train)
    reference = PCA(n_components, svd_solver="full").fit(train)
    assert len(detector.components_) == reference.n_components_
    expected = np.sum((test - reference.inverse_transform(reference.transform(test))) ** 2, axis=1)
    assert np.abs(detector.decision_function(test) - expected).max() <= 1e-10 * expected.max()


def test_more_components_than_axes_is_refused_with_the_count():
    """A count above min(rows, columns) fails, as scikit-learn's PCA does, naming the count of axes."""
    with pytest.raises(ValueError, match="more than the 30 axes"):
        PCAReconstruction(n_components=31).fit(np.random.default_rng(0).normal(size=(100, 30)))


def test_the_deep_svdd_fed_whole_batches_is_pyods_bit_for_bit():
    """docc's own loop over PyOD's network (batches cut from one tensor, a last partial batch of 44 rows): PyOD's
    ``DeepSVDD.fit`` and ``decision_function`` give the same scores exactly."""
    rng = np.random.default_rng(0)
    train, test = rng.random((300, 20)).astype(np.float32), rng.random((50, 20)).astype(np.float32)
    ours = DOCC(fit_size=None, epochs=3).fit(train).decision_function(test)
    with seeded(0):
        pyod = DOCC(epochs=3).estimator(20).fit(train)
        theirs = pyod.decision_function(test)
    np.testing.assert_array_equal(ours, theirs)


def test_the_gan_detector_without_wasted_passes_is_pyods_bit_for_bit():
    """aegan's own loop over PyOD's networks (the generated points reused and detached, no generator loss once
    it stops training, a last partial batch of 100 rows): PyOD's ``SO_GAAL.fit`` gives the same scores exactly
    (``1 - D(x)`` from PyOD's ``D(x)``)."""
    rng = np.random.default_rng(0)
    train, test = rng.random((1100, 20)).astype(np.float32), rng.random((50, 20)).astype(np.float32)
    ours = AEGAN(fit_size=None).fit(train).decision_function(test)
    with seeded(0):
        pyod = AEGAN().estimator(20).fit(train)
        theirs = 1.0 - pyod.decision_function(test).astype(np.float64)
    np.testing.assert_array_equal(ours, theirs)

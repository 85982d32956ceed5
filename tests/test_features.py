"""The embedding detectors (scorers/features.py) against pytorch-ood 0.4.0 on the same features, on two model
shapes (an MLP, and a ResNet-20 with BatchNorm in eval mode), against hand-computed cases, and through the probe.

pytorch-ood scores are larger = more OoD, as ours. Its Mahalanobis and RMD use the scatter
not divided by N, plus 1e-6 I: they are ours / 2N and ours / N, up to that ridge.
"""

import copy

import numpy as np
import pytest
import torch
from scipy.special import logsumexp
from scipy.stats import spearmanr

from bench import registry
from bench.api import Head, validation_rows
from bench.config import Recipe
from bench.models import MLP, resnet20
from bench.probe import Probe, ProbeSplit
from bench.training import train
from oracles import pytorch_ood_detectors
from scorers.features import ASH, DICE, KNN, MDS, RMDS, ReAct, ViM

N_TRAIN, N_TEST, CLASSES = 600, 300, 10
AGREE = 0.9999  # the least Spearman correlation with the reference where the two differ beyond rounding


class Case:
    """A model's embedding of random images (float32, as the probe hands it to detectors): ``train`` rows with
    labels 0..9, ``rows`` = train then test, and the model's last layer."""

    def __init__(self, shape: str) -> None:
        torch.manual_seed(0)
        size = 8 if shape == "mlp" else 16  # 8x8 leaves a dead channel in this ResNet-20's embedding
        images = torch.randn(N_TRAIN + N_TEST, 3, size, size)
        model = MLP((3, size, size), CLASSES, hidden=(48,)) if shape == "mlp" else resnet20((3, size, size), CLASSES)
        with torch.no_grad():
            model.train()  # batch-norm statistics of these images, then eval mode
            for batch in images[:N_TRAIN].split(100):
                model(batch)
            model.eval()
            self.rows = model.embed(images).numpy()
        self.train, self.labels = self.rows[:N_TRAIN], np.arange(N_TRAIN) % CLASSES
        self.head = Head(model.head.weight.detach().double().numpy(), model.head.bias.detach().double().numpy())
        self.width = self.rows.shape[1]

    def tensor(self, rows: np.ndarray) -> torch.Tensor:
        """Rows for pytorch-ood, in float64 (the same numbers), so that it computes in float64 where it follows
        its input's dtype."""
        return torch.as_tensor(rows, dtype=torch.float64)

    def head_of_maps(self, maps: torch.Tensor) -> torch.Tensor:
        """The head over B x D x 1 x 1 maps, as pytorch-ood's ReAct and ASH take it."""
        return maps.flatten(1) @ torch.as_tensor(self.head.weight).T + torch.as_tensor(self.head.bias)


@pytest.fixture(scope="module", params=["mlp", "resnet20"])
def case(request):
    case = Case(request.param)
    centred = case.train - case.train.mean(axis=0)
    # full rank: a dead dimension makes pytorch-ood's ridge + inverse and the pseudo-inverse disagree
    assert np.linalg.matrix_rank(centred.astype(np.float64)) == case.width
    return case


@pytest.fixture(scope="module")
def po():
    return pytorch_ood_detectors()


@pytest.fixture
def float64_torch():
    """pytorch-ood's Mahalanobis allocates its means and scatter in the default dtype."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    return spearmanr(a, b)[0]


@pytest.mark.parametrize("scale", [1.0, 1000.0])
def test_mds_is_pytorch_ood_mahalanobis_times_2n(case, po, float64_torch, scale):
    """Unscaled, the ridge moves pytorch-ood's distances by up to 2e-4 of their size; scaled by 1000 (the
    distances do not change, the ridge shrinks 1e6 times beside the scatter) the two are one number."""
    train, rows = case.train * scale, case.rows * scale
    ours = MDS().fit(train, case.labels).decision_function(rows)
    theirs = po.Mahalanobis(None).fit_features(case.tensor(train), torch.as_tensor(case.labels))
    theirs = 2 * N_TRAIN * theirs.predict_features(case.tensor(rows)).numpy()
    assert spearman(ours, theirs) >= AGREE
    np.testing.assert_allclose(ours, theirs, rtol=1e-3 if scale == 1 else 1e-8)


@pytest.mark.parametrize("scale", [1.0, 1000.0])
def test_rmds_is_pytorch_ood_rmd_times_n(case, po, float64_torch, scale):
    train, rows = case.train * scale, case.rows * scale
    ours = RMDS().fit(train, case.labels).decision_function(rows)
    theirs = po.RMD(None).fit_features(case.tensor(train), torch.as_tensor(case.labels))
    theirs = N_TRAIN * theirs.predict_features(case.tensor(rows)).numpy()
    assert spearman(ours, theirs) >= AGREE
    assert np.abs(ours - theirs).max() <= (1e-3 if scale == 1 else 1e-8) * np.abs(ours).max()


def test_knn_is_pytorch_ood_knn_training_rows_their_own_first_neighbours(case, po):
    ours = KNN(k=50).fit(case.train).decision_function(case.rows)
    theirs = po.KNN(None, k=50, normalize=True).fit_features(case.tensor(case.train), torch.as_tensor(case.labels))
    np.testing.assert_allclose(ours, theirs.predict_features(case.tensor(case.rows)).numpy(), rtol=1e-12)


def separated_dim(case: Case) -> int:
    """The principal dimension in [D/4, 3D/4] with the largest ratio between the eigenvalues on either side of it:
    pytorch-ood's float32 eigenvectors split the spectrum there as float64 ones do. (At D/2 the ResNet's two
    eigenvalues differ by 6%, and float32 rounding mixes the subspaces: Spearman 0.9996.)"""
    origin = -np.linalg.pinv(case.head.weight) @ case.head.bias
    centred = case.train.astype(np.float64) - origin
    values = np.linalg.eigvalsh(centred.T @ centred)[::-1]
    dims = np.arange(case.width // 4, 3 * case.width // 4)
    return int(dims[np.argmax(values[dims - 1] / values[dims])])


def test_vim_is_pytorch_ood_vim(case, po):
    dim = separated_dim(case)
    ours = ViM(dim=dim).fit(case.train, case.labels, head=case.head).decision_function(case.rows)
    theirs = po.ViM(None, dim, torch.as_tensor(case.head.weight), torch.as_tensor(case.head.bias))
    theirs = theirs.fit_features(torch.as_tensor(case.train), torch.as_tensor(case.labels))
    theirs = theirs.predict_features(torch.as_tensor(case.rows)).numpy()  # float32 throughout
    assert spearman(ours, theirs) >= AGREE
    assert np.abs(ours - theirs).max() <= 1e-4 * np.abs(ours).max()


def test_vim_dim_none_is_half_the_width(case):
    default = ViM().fit(case.train, case.labels, head=case.head)
    half = ViM(dim=case.width // 2).fit(case.train, case.labels, head=case.head)
    assert default.residual_.shape == (case.width, case.width - case.width // 2)
    np.testing.assert_array_equal(default.decision_function(case.rows), half.decision_function(case.rows))


def test_react_is_pytorch_ood_react_fitted_on_the_same_validation_rows(case, po):
    ours = ReAct(val_size=200).fit(case.train, case.labels, head=case.head)
    rows = validation_rows(N_TRAIN, 200)
    theirs = po.ReAct(lambda maps: maps, case.head_of_maps, percentile=0.9)
    theirs.fit_feature_maps(case.tensor(case.train[rows])[:, :, None, None], torch.as_tensor(case.labels[rows]))
    assert ours.threshold_ == theirs.threshold
    np.testing.assert_allclose(ours.decision_function(case.rows),
                               theirs.predict_feature_maps(case.tensor(case.rows)[:, :, None, None]).numpy(), rtol=1e-12)


@pytest.mark.parametrize("variant", ["ash-p", "ash-b", "ash-s"])
@pytest.mark.parametrize("percentile", [65, 90])
def test_ash_is_pytorch_ood_ash_on_the_embedding_as_a_map(case, po, variant, percentile):
    ours = ASH(variant=variant, percentile=percentile).fit(case.train, case.labels, head=case.head)
    theirs = po.ASH(lambda maps: maps, case.head_of_maps, variant=variant, percentile=percentile / 100)
    np.testing.assert_allclose(ours.decision_function(case.rows),
                               theirs.predict_feature_maps(case.tensor(case.rows)[:, :, None, None]).numpy(), rtol=1e-12)


def test_dice_is_pytorch_ood_dice(case, po):
    """pytorch-ood fits the mask on float32 contributions, here float64: the masks are the same."""
    ours = DICE(p=90).fit(case.train, case.labels, head=case.head)
    theirs = po.DICE(None, torch.as_tensor(case.head.weight), torch.as_tensor(case.head.bias), p=0.9)
    theirs.fit_features(torch.as_tensor(case.train), torch.as_tensor(case.labels))
    np.testing.assert_array_equal(ours.weight_ != 0, theirs.masked_w.numpy() != 0)
    np.testing.assert_allclose(ours.decision_function(case.rows),
                               theirs.predict_features(case.tensor(case.rows)).numpy(), rtol=1e-12)


# ---------- hand-computed cases ----------

LINE = np.array([[-1.0], [1.0], [3.0], [5.0]]), np.array([0, 0, 1, 1])  # class means 0 and 4, variance 1 about them


def test_mds_and_rmds_on_a_line():
    """Centred about their classes the rows are -1, 1, -1, 1: variance 1. About their mean 2: variance 5."""
    X, y = LINE
    points = np.array([[2.0], [0.0], [-3.0]])
    np.testing.assert_allclose(MDS().fit(X, y).decision_function(points), [4.0, 0.0, 9.0])
    np.testing.assert_allclose(RMDS().fit(X, y).decision_function(points), [4.0, 0.0 - 4 / 5, 9.0 - 25 / 5])


def test_knn_is_the_distance_to_the_kth_normalised_training_row():
    train = np.array([[3.0, 0.0], [0.0, 0.5], [-2.0, 0.0]])  # normalised: (1, 0), (0, 1), (-1, 0)
    knn = KNN(k=2).fit(train)
    np.testing.assert_allclose(knn.decision_function(np.array([[5.0, 0.0], [0.0, -1.0]])), [np.sqrt(2), np.sqrt(2)])
    np.testing.assert_allclose(KNN(k=3).fit(train).decision_function(np.array([[1.0, 0.0]])), [2.0])
    np.testing.assert_allclose(KNN(k=1).fit(train).decision_function(train), 0, atol=1e-7)  # each its own neighbour


def test_vim_by_hand():
    """Head = identity, so the origin is 0; the covariance is diag(4, 1): the residual is the second coordinate.
    Max logits 2, -1, 2, 1 (mean 1) and residual norms all 1: alpha = 1."""
    train = np.array([[2.0, 1.0], [-2.0, -1.0], [2.0, -1.0], [-2.0, 1.0]])
    vim = ViM(dim=1).fit(train, head=Head(np.eye(2), np.zeros(2)))
    assert vim.alpha_ == pytest.approx(1.0)
    np.testing.assert_allclose(vim.decision_function(np.array([[0.0, 3.0], [5.0, 0.0]])),
                               [3.0 - logsumexp([0.0, 3.0]), -logsumexp([5.0, 0.0])])


def test_react_clips_at_the_percentile_of_the_validation_rows():
    train = np.array([[0.0, 4.0], [1.0, 5.0], [2.0, 3.0]])  # values 0..5: the 50th percentile is 2.5
    head = Head(np.array([[1.0, 0.0], [0.0, 2.0]]), np.array([0.5, 0.0]))
    react = ReAct(percentile=50).fit(train, head=head)
    assert react.threshold_ == 2.5
    np.testing.assert_allclose(react.decision_function(np.array([[1.0, 9.0]])), [-logsumexp([1.5, 5.0])])
    assert ReAct(percentile=100, val_size=1).fit(train, head=head).threshold_ == 3.0  # row 2 alone (seed 0)


@pytest.mark.parametrize("variant, shaped", [
    ("ash-p", [0, 4, 0, 3]),
    ("ash-b", [0, 5, 0, 5]),  # the sum, 10, over the 2 kept
    ("ash-s", np.array([0, 4, 0, 3]) * np.exp(10 / 7)),  # sums 10 before, 7 after
])
def test_ash_keeps_the_largest_values_of_each_row(variant, shaped):
    """Width 4 at percentile 50: 2 values pruned, the 2 largest kept."""
    ash = ASH(variant=variant, percentile=50).fit(np.zeros((1, 4)), head=Head(np.eye(4), np.zeros(4)))
    x = np.array([[1.0, 4.0, 2.0, 3.0]])
    np.testing.assert_allclose(ash.shaped(x), [shaped])
    np.testing.assert_allclose(ash.decision_function(x), [-logsumexp(shaped)])


def test_dice_keeps_the_weights_contributing_above_the_percentile():
    """Mean activation (1, 2) times W = [[1, -1], [3, 0.5]]: contributions -2, 1, 1, 3, median 1: only 3 is above."""
    train = np.array([[0.0, 1.0], [2.0, 3.0]])
    dice = DICE(p=50).fit(train, head=Head(np.array([[1.0, -1.0], [3.0, 0.5]]), np.array([0.25, -1.0])))
    np.testing.assert_array_equal(dice.weight_, [[0.0, 0.0], [3.0, 0.0]])
    np.testing.assert_allclose(dice.decision_function(np.array([[2.0, 7.0]])), [-logsumexp([0.25, 5.0])])


# ---------- parameters, metadata, the probe ----------

@pytest.mark.parametrize("build, message", [
    (lambda: KNN(k=0), "k=0"),
    (lambda: ViM(dim=0), "dim=0"),
    (lambda: ReAct(percentile=101), "percentile=101"),
    (lambda: ReAct(percentile=-1), "percentile=-1"),
    (lambda: ReAct(val_size=0), "val_size=0"),
    (lambda: ASH(variant="ash-x"), "variant='ash-x'"),
    (lambda: ASH(percentile=120), "percentile=120"),
    (lambda: DICE(p=-5), "p=-5"),
    (lambda: MDS(features="pixels"), "features='pixels'"),
    (lambda: KNN(k=4).fit(np.ones((3, 2))), "k=4 is more than the 3 training rows"),
    (lambda: ViM(dim=2).fit(np.ones((5, 2)), head=Head(np.eye(2), np.zeros(2))), "dim=2 leaves no residual"),
    (lambda: ViM().fit(np.ones((5, 2))), "head=Head"),
    (lambda: ASH(percentile=100).fit(np.ones((5, 4)), head=Head(np.eye(4), np.zeros(4))), "prunes all 4"),
    (lambda: ASH(percentile=90).fit(np.ones((5, 4)), head=Head(np.eye(4), np.zeros(4))), "prunes all 4"),
    (lambda: MDS().fit(np.ones((5, 2))), "labels"),
])
def test_bad_parameters_are_refused_naming_them(build, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("[", r"\[")):
        build()


def test_registered_on_the_embedding_as_feature_based_detectors():
    for name, head in [("mds", False), ("rmds", False), ("knn", False), ("vim", True), ("react", True),
                       ("ash", True), ("dice", True)]:
        detector = registry.create(name)
        assert (detector.features, detector.family, detector.uses_head) == ("embedding", "feature-based", head), name


def test_detectors_that_read_the_head_get_the_final_models_last_layer_through_the_probe(two_blobs):
    """ASH-P keeping every value scores the energy of the model's own logits; ViM equals one fitted here on the
    final model's embedding and last layer; MDS, which reads no head, runs beside them."""
    inputs, labels = two_blobs
    torch.manual_seed(0)
    model = MLP((2,), 2, hidden=(16,))
    split = ProbeSplit(torch.as_tensor(inputs), torch.as_tensor(labels), trusted_labels=True)
    specs = ["ash[variant=ash-p,percentile=0]", "vim", "mds"]
    probe = Probe({"train": split}, [registry.create(spec) for spec in specs], (2,))
    settings = Recipe(epochs=2, batch_size=32, lr=0.05, momentum=0.9, weight_decay=0.0, checkpoint_every=1)
    states = [(checkpoint, copy.deepcopy(model.state_dict()))
              for checkpoint in train(model, split.inputs, split.labels, settings, torch.Generator().manual_seed(0), (2,))]
    table = probe.run(model, states)["train"]
    assert not probe.failures
    model.load_state_dict(states[-1][1])
    with torch.no_grad():
        logits, embedding = model(split.inputs).double().numpy(), model.embed(split.inputs).numpy()
    np.testing.assert_allclose(table[specs[0]], -logsumexp(logits, axis=1), rtol=1e-6)
    head = Head(model.head.weight.detach().double().numpy(), model.head.bias.detach().double().numpy())
    np.testing.assert_allclose(table["vim"], ViM().fit(embedding, labels, head=head).decision_function(embedding),
                               rtol=1e-10)
    np.testing.assert_allclose(table["mds"], MDS().fit(embedding, labels).decision_function(embedding), rtol=1e-10)


def test_a_detector_reading_the_head_fails_alone_and_says_why_when_no_head_is_given():
    """Fitted directly without ``head=``, or hosted on batches that carry no last layer, a ``uses_head`` detector
    raises an error naming what it reads; ``knn``, which reads no head, is scored from the same host."""
    from bench.api import Batch, Checkpoint
    from bench.hosts import DetectorHost
    from bench.signals import EMBEDDING

    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="last layer"):
        ViM().fit(rng.normal(size=(40, 8)), rng.integers(0, 3, 40))
    host = DetectorHost([ViM(), KNN(k=3)], frozenset({0}))
    last = Checkpoint(index=0, epoch=1, total=1)
    for split in ("train", "test"):
        host.start(split, 20)
        features = torch.as_tensor(rng.normal(size=(20, 8)))
        host.update(Batch(split, torch.arange(20), {"label": torch.arange(20) % 3}, {EMBEDDING: features}), last)
        host.end(split)
    with pytest.raises(ValueError, match="reads the classifier's last linear layer, and this model gives none"):
        host.scores(host.scorers[0], "test")
    assert host.scores(host.scorers[1], "test").shape == (20,)

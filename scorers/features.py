"""Post-hoc OoD detectors on the final model's embedding (its penultimate features), as OpenOOD v1.5 runs them.

Each is fitted on the training split's embedding (with its labels, noisy ones where the task
makes them noisy) and scores in chunks (``by_chunks``), so memory does not grow with the split
scored. Orientation: higher = more anomalous, i.e. minus OpenOOD's ``conf``. Defaults are
OpenOOD's CIFAR-10 ones (``configs/postprocessors/<name>.yml``, read at commit 3c35632), and
percentiles are written in percent (0-100) as OpenOOD and the papers write them; pytorch-ood
0.4.0 takes fractions. The detectors that read the classifier's last layer (``uses_head``) get
it as a ``Head`` and compute its logits in float64.

Where OpenOOD fits on its ID validation split (ReAct's percentile), the fit takes ``val_size``
rows of the training split (``bench.api.validation_rows``, seed 0): rows the network trained on.
"""

from __future__ import annotations

from abc import abstractmethod

import numpy as np
import torch
from scipy.special import logsumexp

from bench.api import EMBEDDING, Detector, Head, at_least, register, validation_rows
from scorers.detectors import ClassGaussians, by_chunks

OPENOOD = "OpenOOD v1.5 openood/postprocessors"


def checked_head(scorer: str, head: Head | None) -> Head:
    if head is None:
        raise ValueError(f"{scorer} reads the classifier's last layer: fit it with head=Head(weight, bias)")
    return head


def check_percent(scorer: str, parameter: str, value: float) -> None:
    if not 0 <= value <= 100:
        raise ValueError(f"{scorer}: {parameter}={value} is not a percent in [0, 100]; give e.g. 90 "
                         "(OpenOOD's scale, not pytorch-ood's fraction 0.9)")


def energy(logits: np.ndarray) -> np.ndarray:
    """The energy of Liu et al. (2020) at temperature 1, -logsumexp of the logits: higher off the distribution."""
    return -logsumexp(logits, axis=1)


@register
class MDS(ClassGaussians):
    """Class-conditional Gaussians with a shared empirical covariance: the smallest squared Mahalanobis distance
    to a class mean, min_c (x - mu_c)' P (x - mu_c).

    P is the pseudo-inverse of scikit-learn's ``EmpiricalCovariance`` of the class-centred
    training embedding (normalised by N), as OpenOOD's ``mds_postprocessor.py`` fits it (OpenOOD
    casts the features to float32 first; here they stay float64). ``gaussian`` is the same
    model with Ledoit-Wolf shrinkage. No parameters (``mds.yml`` has none).
    """

    name = "mds"
    reference = f"Lee et al., NeurIPS 2018; {OPENOOD}/mds_postprocessor.py"
    feature_spaces = (EMBEDDING,)

    def __init__(self, features: str = EMBEDDING) -> None:
        super().__init__(features)

    def covariance(self):
        from sklearn.covariance import EmpiricalCovariance

        return EmpiricalCovariance()


@register
class RMDS(MDS):
    """Relative Mahalanobis distance: min_c [d_c(x) - d_0(x)], with d_c the ``mds`` distances and d_0 the squared
    Mahalanobis distance under one Gaussian (``EmpiricalCovariance``) of the whole training embedding.
    OpenOOD's ``rmds_postprocessor.py``; no parameters (``rmds.yml`` has none)."""

    name = "rmds"
    reference = f"Ren et al., arXiv 2106.09022 (2021); {OPENOOD}/rmds_postprocessor.py"

    def fit(self, X: np.ndarray, y: np.ndarray | None = None) -> "RMDS":
        super().fit(X, y)
        self.background_ = self.covariance().fit(np.asarray(X, dtype=np.float64))
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        background = self.background_
        return by_chunks(lambda x: self.nearest_class(x)
                         - self.distances(x, background.location_, background.precision_), X)


NORM_FLOOR = 1e-12  # pytorch-ood's clamp of the norm: a zero vector stays zero


def unit_rows(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    return X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), NORM_FLOOR)


@register
class KNN(Detector):
    """Deep nearest neighbours: the Euclidean distance from x/|x| to its ``k``-th nearest normalised training row.

    The norm is clamped at 1e-12 (pytorch-ood) rather than shifted by 1e-10 after the division
    (OpenOOD); OpenOOD scores minus the squared distance (faiss ``IndexFlatL2``): the same
    ranking. k = 50: OpenOOD's ``knn.yml`` ``K``. The search is exact, in float64, by
    scikit-learn's brute-force index: on 50,000 x 512 features, 1.7 times as fast as matrix
    products in numpy and over 100 times as fast as its trees (faiss' float32 index, not a
    dependency, is 1.7 times faster still; ``benchmarks/knn.py``). Scoring the training split,
    a row is its own first neighbour, at distance 0, as in both references.
    """

    name = "knn"
    reference = f"Sun et al., ICML 2022; {OPENOOD}/knn_postprocessor.py"
    feature_spaces = (EMBEDDING,)

    def __init__(self, features: str = EMBEDDING, k: int = 50) -> None:
        super().__init__(features)
        at_least(self.name, "k", k, 1)
        self.k = k

    def fit(self, X: np.ndarray, y: np.ndarray | None = None) -> "KNN":
        from sklearn.neighbors import NearestNeighbors

        if len(X) < self.k:
            raise ValueError(f"knn: k={self.k} is more than the {len(X)} training rows; give k at most {len(X)}")
        self.index_ = NearestNeighbors(n_neighbors=self.k, algorithm="brute").fit(unit_rows(X))
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        return by_chunks(lambda x: self.index_.kneighbors(unit_rows(x))[0][:, -1], X)


@register
class ViM(Detector):
    """Virtual-logit matching: alpha |(z - u) R| - logsumexp(logits), with u = -pinv(W) b the head's origin and R
    the eigenvectors of the covariance of (z - u) after its ``dim`` largest.

    Fitted on the training embedding as OpenOOD's ``vim_postprocessor.py`` (covariance by
    ``EmpiricalCovariance(assume_centered=True)``; here ``numpy.linalg.eigh``, for a symmetric
    matrix, where OpenOOD calls ``eig``); alpha = mean max-logit / mean residual norm over the
    training rows. ``dim=None`` is half the embedding's width: OpenOOD's ``vim.yml`` gives 256
    for the 512-d feature of its CIFAR-10 ResNet-18. A ``dim`` not below the width is refused
    (pytorch-ood silently replaces it by half the width).
    """

    name = "vim"
    reference = f"Wang et al., CVPR 2022; {OPENOOD}/vim_postprocessor.py"
    feature_spaces = (EMBEDDING,)
    uses_head = True

    def __init__(self, features: str = EMBEDDING, dim: int | None = None) -> None:
        super().__init__(features)
        at_least(self.name, "dim", dim, 1, "half the embedding's width")
        self.dim = dim

    def fit(self, X: np.ndarray, y: np.ndarray | None = None, head: Head | None = None) -> "ViM":
        from sklearn.covariance import EmpiricalCovariance

        self.head_ = checked_head(self.name, head)
        X = np.asarray(X, dtype=np.float64)
        width = X.shape[1]
        dim = width // 2 if self.dim is None else self.dim
        if dim >= width:
            raise ValueError(f"vim: dim={dim} leaves no residual in the embedding's {width} dimensions; "
                             f"give dim below {width}, or none for {width // 2}")
        self.origin_ = -np.linalg.pinv(head.weight) @ head.bias
        covariance = EmpiricalCovariance(assume_centered=True).fit(X - self.origin_).covariance_
        _, vectors = np.linalg.eigh(covariance)  # eigenvalues in ascending order
        self.residual_ = np.ascontiguousarray(vectors[:, :width - dim])
        max_logit = by_chunks(lambda x: head.logits(x).max(axis=1), X)
        self.alpha_ = max_logit.mean() / by_chunks(self.residual_norm, X).mean()
        return self

    def residual_norm(self, x: np.ndarray) -> np.ndarray:
        return np.linalg.norm((x - self.origin_) @ self.residual_, axis=1)

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        return by_chunks(lambda x: self.alpha_ * self.residual_norm(x) + energy(self.head_.logits(x)), X)


class ShapedEnergy(Detector):
    """-logsumexp of the logits the head gives to an embedding reshaped by ``logits``; ``fit_shaping`` fits the
    reshaping on the training embedding."""

    feature_spaces = (EMBEDDING,)
    uses_head = True

    def fit(self, X: np.ndarray, y: np.ndarray | None = None, head: Head | None = None) -> "ShapedEnergy":
        self.head_ = checked_head(self.name, head)
        self.fit_shaping(np.asarray(X, dtype=np.float64))
        return self

    def fit_shaping(self, X: np.ndarray) -> None:
        """Fit what the reshaping needs from the training embedding (nothing by default)."""

    @abstractmethod
    def logits(self, x: np.ndarray) -> np.ndarray:
        """The logits of the reshaped embedding rows ``x``."""

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        return by_chunks(lambda x: energy(self.logits(x)), X)


@register
class ReAct(ShapedEnergy):
    """Rectified activations: the energy of the logits of the embedding clipped from above at a threshold, the
    ``percentile``-th percentile of every value of the embedding of ``val_size`` training rows.

    OpenOOD's ``react_postprocessor.py`` clips the pooled feature at the percentile of the ID
    validation split's; ``react.yml``: percentile 90; its ID validation split has 1,000 images.
    """

    name = "react"
    reference = f"Sun et al., NeurIPS 2021; {OPENOOD}/react_postprocessor.py"

    def __init__(self, features: str = EMBEDDING, percentile: float = 90, val_size: int = 1000) -> None:
        super().__init__(features)
        check_percent(self.name, "percentile", percentile)
        at_least(self.name, "val_size", val_size, 1)
        self.percentile, self.val_size = percentile, val_size

    def fit_shaping(self, X: np.ndarray) -> None:
        self.threshold_ = float(np.percentile(X[validation_rows(len(X), self.val_size)], self.percentile))

    def logits(self, x: np.ndarray) -> np.ndarray:
        return self.head_.logits(np.minimum(x, self.threshold_))


ASH_VARIANTS = ("ash-p", "ash-b", "ash-s")


@register
class ASH(ShapedEnergy):
    """Activation shaping: in each row of the embedding, the values below its ``percentile``-th percentile set to 0;
    the others kept (``ash-p``), all set to the row's sum over their number (``ash-b``) or kept and scaled by
    exp(sum before / sum after) (``ash-s``); the score is the energy of the head's logits.

    The embedding is treated as OpenOOD treats its pooled feature, a B x D x 1 x 1 map, so the
    pruning is per row: the k = D - round(D * percentile / 100) largest values are kept.
    ``ash.yml``: percentile 90; OpenOOD's ``ash_net.py`` applies ``ash_b``. The values are
    chosen by ``torch.topk``, as in both references: among values tied at the k-th place
    (zeros after a ReLU, where fewer than k are positive) its choice is as good as any other,
    and ``ash-b`` gives the kept zeros the fill value.
    """

    name = "ash"
    reference = f"Djurisic et al., ICLR 2023; {OPENOOD}/ash_postprocessor.py, openood/networks/ash_net.py"

    def __init__(self, features: str = EMBEDDING, variant: str = "ash-b", percentile: float = 90) -> None:
        super().__init__(features)
        if variant not in ASH_VARIANTS:
            raise ValueError(f"ash: variant={variant!r} is not one of {', '.join(ASH_VARIANTS)}; e.g. ash-b")
        check_percent(self.name, "percentile", percentile)
        self.variant, self.percentile = variant, percentile

    def kept(self, width: int) -> int:
        kept = width - int(np.round(width * self.percentile / 100))
        if kept < 1:
            raise ValueError(f"ash: percentile={self.percentile} prunes all {width} values of the embedding; "
                             f"give a percentile below {100 * (width - 0.5) / width:g}, e.g. 90")
        return kept

    def fit_shaping(self, X: np.ndarray) -> None:
        self.kept(X.shape[1])

    def shaped(self, x: np.ndarray) -> np.ndarray:
        k = self.kept(x.shape[1])
        top = torch.topk(torch.as_tensor(x), k, dim=1).indices.numpy()
        total = x.sum(axis=1, keepdims=True)
        out = np.zeros_like(x)
        np.put_along_axis(out, top, total / k if self.variant == "ash-b" else np.take_along_axis(x, top, axis=1), axis=1)
        if self.variant == "ash-s":
            out *= np.exp(total / out.sum(axis=1, keepdims=True))
        return out

    def logits(self, x: np.ndarray) -> np.ndarray:
        return self.head_.logits(self.shaped(x))


@register
class DICE(ShapedEnergy):
    """Directed sparsification: the energy of the logits of a head keeping only the weights whose contribution,
    mean training embedding (per dimension) x weight, is above the ``p``-th percentile of all contributions.

    OpenOOD's ``dice_postprocessor.py``; ``dice.yml``: p 90.
    """

    name = "dice"
    reference = f"Sun & Li, ECCV 2022; {OPENOOD}/dice_postprocessor.py"

    def __init__(self, features: str = EMBEDDING, p: float = 90) -> None:
        super().__init__(features)
        check_percent(self.name, "p", p)
        self.p = p

    def fit_shaping(self, X: np.ndarray) -> None:
        contribution = X.mean(axis=0) * self.head_.weight
        self.weight_ = np.where(contribution > np.percentile(contribution, self.p), self.head_.weight, 0.0)

    def logits(self, x: np.ndarray) -> np.ndarray:
        return x @ self.weight_.T + self.head_.bias

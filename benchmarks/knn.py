"""The ``knn`` detector's exact search (scikit-learn's brute-force index, float64) against exact search by matrix
products over blocks of queries in numpy (float64), scikit-learn's k-d and ball trees, and, when it can be
imported, faiss' exact ``IndexFlatL2`` (float32, OpenOOD's choice), on 50,000 x 512 training features and
10,000 queries.

The features are realistic in shape: non-negative (a ReLU's, averaged), in 10 clusters, so that
the trees have structure to use. Every side finds the distance to the 50th nearest normalised
training row of every query, fit and search timed together, the fastest of 2 runs taking turns;
the trees, hundreds of times slower in 512 dimensions, search 1/100 of the queries once, scaled.
The ratio is the detector's time over the fastest other exact float64 search (target: at most 1).
faiss is not a dependency (its figure is beside the ratio): ``pip install --target DIR faiss-cpu``
and put DIR on ``PYTHONPATH`` to measure it. About 3 minutes on two CPU cores.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch

from benchmarks.common import best_times, report, sized
from scorers.features import KNN, unit_rows

K = 50
FAISS = "faiss IndexFlatL2 (float32)"


def features(n: int, width: int, seed: int) -> np.ndarray:
    """``n`` rows of ``width`` non-negative features around 10 cluster centres."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(10, width))
    return np.maximum(centres[rng.integers(0, 10, n)] + 0.7 * rng.normal(size=(n, width)), 0).astype(np.float32)


def detector(train: np.ndarray, queries: np.ndarray) -> np.ndarray:
    return KNN(k=K).fit(train).decision_function(queries)


BLOCK_BYTES = 2**26  # squared distances of one block of queries to every training row: 64 MB


def matrix_products(train: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """|x|^2 + |y|^2 - 2 x.y against every training row, a block of queries at a time; the k-th smallest by
    ``np.partition``."""
    points, queries = unit_rows(train), unit_rows(queries)
    norms = np.einsum("ij,ij->i", points, points)
    block = max(1, BLOCK_BYTES // (8 * len(points)))
    kth = []
    for start in range(0, len(queries), block):
        q = queries[start:start + block]
        squared = np.einsum("ij,ij->i", q, q)[:, None] + norms - 2 * q @ points.T
        kth.append(np.partition(squared, K - 1, axis=1)[:, K - 1])
    return np.sqrt(np.maximum(np.concatenate(kth), 0.0))


def sklearn(algorithm: str) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    def search(train: np.ndarray, queries: np.ndarray) -> np.ndarray:
        from sklearn.neighbors import NearestNeighbors

        index = NearestNeighbors(n_neighbors=K, algorithm=algorithm).fit(unit_rows(train))
        return index.kneighbors(unit_rows(queries), return_distance=True)[0][:, -1]

    return search


def faiss_flat(train: np.ndarray, queries: np.ndarray) -> np.ndarray:
    import faiss

    index = faiss.IndexFlatL2(train.shape[1])
    index.add(unit_rows(train).astype(np.float32))
    squared, _ = index.search(unit_rows(queries).astype(np.float32), K)
    return np.sqrt(np.maximum(squared[:, -1], 0.0))


def run() -> None:
    n, width, n_queries = sized(50_000, 2_000), sized(512, 64), sized(10_000, 500)
    train, queries = features(n, width, 0), features(n_queries, width, 1)
    sides: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
        "knn detector (scikit-learn brute force)": detector, "numpy matrix products": matrix_products}
    try:
        import faiss  # noqa: F401

        sides[FAISS] = faiss_flat
    except ImportError:
        pass
    seconds = best_times({name: (lambda search=search: search(train, queries)) for name, search in sides.items()},
                         repeat=2, warm_up=False)
    few = queries[:max(1, n_queries // 100)]
    reference = detector(train, few)
    differences = {name: np.abs(search(train, few) - reference).max() for name, search in sides.items()}
    for algorithm in ("kd_tree", "ball_tree"):
        started = time.perf_counter()
        found = sklearn(algorithm)(train, few)
        seconds[f"sklearn {algorithm}"] = (time.perf_counter() - started) * n_queries / len(few)
        differences[f"sklearn {algorithm}"] = np.abs(found - reference).max()
    ours = seconds.pop("knn detector (scikit-learn brute force)")
    differences.pop("knn detector (scikit-learn brute force)")
    fastest = min((name for name in seconds if name != FAISS), key=seconds.get)
    report("knn exact search", ours / seconds[fastest], f"at most 1: the fastest other exact float64 search, {fastest}", {
        "features": f"{n} x {width} to fit on, {n_queries} queries, k = {K}",
        "knn detector (scikit-learn brute force, float64)": f"{ours:.3g} s",
        **{name: f"{value:.3g} s" + (f" (1/{n_queries // len(few)} of the queries, scaled)" if "tree" in name else "")
           for name, value in seconds.items()},
        **{f"largest difference from the detector, {name}": f"{value:.1e}" for name, value in differences.items()},
        "faiss": f"{ours / seconds[FAISS]:.2f} times as fast as the detector, in float32; not a dependency"
                 if FAISS in seconds else "not importable here, skipped",
        "device": f"cpu, {torch.get_num_threads()} threads",
    })

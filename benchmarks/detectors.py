"""The pixel detectors of the ``mnist-c`` preset, each fitted and scored as the probe does it, and the
autoencoder's training against a plain PyTorch loop of the same training.

The preset fits every pixel detector once per run (its columns are shared by the seeds) on the
60,000 training images and scores the 220,000 images of all splits. The kernel and distance
detectors are held to the target of at most 90 s together; a deep detector, whose own training
dominates, to a plain loop of the same training (PyOD's network, optimiser, loss, batches and
epochs on one standardised tensor), measured beside it. Needs MNIST (``bench data fetch mnist``);
MNIST-C is generated when absent. About 3 minutes on two CPU cores.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from bench import registry
from bench.api import PIXELS, Detector
from bench.data import load_dataset
from bench.training import model_input
from benchmarks.common import report, sized
from scorers.detectors import AE, STANDARDISING_EPS, seeded

TARGET_SECONDS = 90.0  # the kernel and distance detectors together
DEEP = ("docc", "ae", "aegan")  # their time is their network's training


def pixel_features() -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Each split of MNIST-C as the probe hands it to the detectors: float32 pixels in [0, 1], one row per image;
    and the training labels."""
    dataset = load_dataset("mnist-c")
    size = sized(None, 500)
    features = {name: model_input(torch.as_tensor(split.inputs[:size]), dataset.input_shape).flatten(1).numpy()
                for name, split in dataset.splits().items()}
    return features, dataset.train.labels[:size]


def timed_detector(name: str, features: dict[str, np.ndarray], labels: np.ndarray) -> float:
    detector = registry.create(name)
    started = time.perf_counter()
    detector.fit(features["train"], labels)
    for split in features.values():
        detector.decision_function(split)
    return time.perf_counter() - started


def plain_autoencoder_training(train: np.ndarray, epochs: int) -> float:
    """Seconds of the autoencoder's training written as a plain loop: PyOD's network, Adam (lr 1e-3, weight
    decay 1e-5), mean squared error, shuffled batches of 128 from one standardised tensor."""
    with seeded(0):
        network = AE(epochs=epochs).estimator(train.shape[1])
        network.feature_size = train.shape[1]
        network.build_model()
        model = network.model.train()
        started = time.perf_counter()
        x = torch.as_tensor((train - train.mean(axis=0)) / (train.std(axis=0) + STANDARDISING_EPS), dtype=torch.float32)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-5)
        for _ in range(epochs):
            order = torch.randperm(len(x))
            for start in range(0, len(x) - 127, 128):
                batch = x[order[start:start + 128]]
                optimizer.zero_grad()
                loss = torch.nn.functional.mse_loss(model(batch), batch)
                loss.backward()
                optimizer.step()
        return time.perf_counter() - started


def run() -> None:
    features, labels = pixel_features()
    names = [name for name, cls in registry.available().items()
             if issubclass(cls, Detector) and cls().features == PIXELS]
    seconds = {name: timed_detector(name, features, labels) for name in names}
    shallow = sum(value for name, value in seconds.items() if name not in DEEP)
    report("detectors (kernel and distance)", shallow / TARGET_SECONDS, f"at most 1: {TARGET_SECONDS:.0f} s", {
        "examples": f"{sum(map(len, features.values()))} scored, {len(features['train'])} to fit on",
        **{name: f"{value:.1f} s (fit and score)" for name, value in seconds.items()},
        "kernel and distance detectors together": f"{shallow:.1f} s",
        "device": f"cpu, {torch.get_num_threads()} threads",
    })
    epochs = sized(10, 1)
    fit = {}
    for _ in range(2):  # taking turns, best of 2
        started = time.perf_counter()
        AE(epochs=epochs).fit(features["train"])
        fit.setdefault("ae", []).append(time.perf_counter() - started)
        fit.setdefault("plain", []).append(plain_autoencoder_training(features["train"], epochs))
    ae, plain = min(fit["ae"]), min(fit["plain"])
    report("autoencoder training", ae / plain, "at most 1.2", {
        "ae fit": f"{ae:.1f} s", "the same training as a plain PyTorch loop": f"{plain:.1f} s",
        "epochs": str(epochs),
    })

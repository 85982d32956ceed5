"""The pixel detectors of the ``mnist-c`` preset, each fitted and scored as the probe does it, against one training
of the preset's model; and each deep detector's training against a plain PyTorch loop of the same training.

The preset fits every pixel detector once per run (its columns are shared by the seeds) on the 60,000 training
images and scores the 220,000 images of all splits. Together they are held to at most the time of one training
of the preset's model alone (``benchmarks.end_to_end.training_alone``, measured in the same run); each is printed
with its fit and its scoring apart. A deep detector, whose cost is mostly its network's training, is held to a
plain loop of the same training (its PyOD networks, optimisers, losses, batches and epochs, on one tensor),
measured beside it, best of 2 taking turns. Needs MNIST (``bench data fetch mnist``); MNIST-C is generated when
absent. About 7 minutes on two CPU cores.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable

import numpy as np
import torch

from bench import registry
from bench.api import PIXELS, Detector
from bench.config import load_preset
from bench.data import load_dataset, with_training_set
from bench.training import model_input
from benchmarks.common import report, sized
from benchmarks.end_to_end import training_alone
from scorers.detectors import AE, AEGAN, DOCC, STANDARDISING_EPS, seeded

PRESET = "mnist-c"
DEEP = ("docc", "ae", "aegan")  # their time is their network's training


def pixel_features() -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Each split of MNIST-C as the probe hands it to the detectors: float32 pixels in [0, 1], one row per image;
    and the training labels."""
    dataset = load_dataset(PRESET)
    size = sized(None, 500)
    features = {name: model_input(torch.as_tensor(split.inputs[:size]), dataset.input_shape).flatten(1).numpy()
                for name, split in dataset.splits().items()}
    return features, dataset.train.labels[:size]


def timed_detector(name: str, features: dict[str, np.ndarray], labels: np.ndarray) -> tuple[float, float]:
    """Seconds of the detector's fit on the training split and of its scoring of every split."""
    detector = registry.create(name)
    started = time.perf_counter()
    detector.fit(features["train"], labels)
    fitted = time.perf_counter()
    for split in features.values():
        detector.decision_function(split)
    return fitted - started, time.perf_counter() - fitted


def preset_training() -> float:
    """Seconds of one training of the preset's model alone (seed 0; 500 images and 1 epoch under BENCH_TINY)."""
    config = load_preset(PRESET).updated(**sized({}, {"train_size": 500, "epochs": 1}))
    dataset = with_training_set(load_dataset(config.dataset, config.data_dir), config.train_size, config.label_noise)
    return training_alone(config, dataset, seed=0)


def standardised(train: np.ndarray) -> torch.Tensor:
    return torch.as_tensor((train - train.mean(axis=0)) / (train.std(axis=0) + STANDARDISING_EPS), dtype=torch.float32)


def plain_autoencoder_training(train: np.ndarray, epochs: int) -> float:
    """Seconds of ``ae``'s training as a plain loop: PyOD's network, Adam (lr 1e-3, weight decay 1e-5), mean squared
    error, shuffled whole batches of 128 from one standardised tensor."""
    with seeded(0):
        network = AE(epochs=epochs).estimator(train.shape[1])
        network.feature_size = train.shape[1]
        network.build_model()
        model = network.model.train()
        started = time.perf_counter()
        x = standardised(train)
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


def plain_deep_svdd_training(train: np.ndarray, epochs: int) -> float:
    """Seconds of ``docc``'s training as a plain loop: PyOD's network (784-128-64, ReLU, no biases), its centre the
    mean output of the new network, Adam (lr 1e-4, weight decay 5e-7) on the mean squared distance to the centre
    plus 1e-6 times the weights' norms, shuffled batches of 128 from one standardised tensor, the weights of the
    epoch of least summed loss kept."""
    from pyod.models.deep_svdd import InnerDeepSVDD

    with seeded(0):
        network = InnerDeepSVDD(train.shape[1], use_ae=False, hidden_neurons=[128, 64], hidden_activation="relu",
                                output_activation="sigmoid", dropout_rate=0.2, l2_regularizer=0.5e-6)
        started = time.perf_counter()
        x = standardised(train)
        with torch.no_grad():
            centre = network.eval()(x).mean(dim=0)
        optimizer = torch.optim.Adam(network.parameters(), lr=1e-4, weight_decay=0.5e-6)
        least, best = float("inf"), None
        for _ in range(epochs):
            network.train()
            summed = 0.0
            order = torch.randperm(len(x))
            for start in range(0, len(x), 128):
                batch = x[order[start:start + 128]]
                optimizer.zero_grad()
                loss = ((network(batch) - centre) ** 2).sum(dim=1).mean()
                loss = loss + 1e-6 * sum(torch.linalg.norm(w) for w in network.parameters())
                loss.backward()
                optimizer.step()
                summed += loss.item()
            if summed < least:
                least, best = summed, copy.deepcopy(network.state_dict())
        network.load_state_dict(best)
        return time.perf_counter() - started


def plain_gan_training(train: np.ndarray) -> float:
    """Seconds of ``aegan``'s training as a plain loop: PyOD's SO-GAAL networks (a generator of two d x d layers, a
    discriminator with sqrt(n) hidden units), SGD with momentum 0.9 (lr 0.01 and 1e-4), binary cross-entropy,
    shuffled batches of 500 from one tensor, 60 epochs, the generator trained in the first 21; the steps of
    PyTorch's DCGAN tutorial (the generated batch detached for the discriminator, reused for the generator)."""
    from pyod.models.so_gaal import Discriminator, Generator

    n, d = train.shape
    with seeded(0):
        discriminator, generator = Discriminator(d, n), Generator(d)
        started = time.perf_counter()
        x = torch.as_tensor(train)
        discriminator_steps = torch.optim.SGD(discriminator.parameters(), lr=0.01, momentum=0.9)
        generator_steps = torch.optim.SGD(generator.parameters(), lr=1e-4, momentum=0.9)
        bce = torch.nn.BCELoss()
        for epoch in range(60):
            generator_trains = epoch < 21
            order = torch.randperm(n)
            for start in range(0, n, 500):
                real = x[order[start:start + 500]]
                with torch.set_grad_enabled(generator_trains):
                    fake = generator(torch.rand(len(real), d))
                ones, zeros = torch.ones(len(real), 1), torch.zeros(len(real), 1)
                discriminator_steps.zero_grad()
                (bce(discriminator(real), ones) + bce(discriminator(fake.detach()), zeros)).backward()
                discriminator_steps.step()
                if generator_trains:
                    generator_steps.zero_grad()
                    bce(discriminator(fake), ones).backward()
                    generator_steps.step()
        return time.perf_counter() - started


def deep_trainings(train: np.ndarray) -> dict[str, tuple[Callable[[], object], Callable[[], float], str]]:
    """Each deep detector's fit, its plain loop (which times itself, set-up left out) and what is trained."""
    ae_epochs, docc_epochs = sized(10, 1), sized(20, 1)
    docc_rows, aegan_rows = train[:DOCC().fit_size], train[:AEGAN().fit_size]
    return {
        "ae": (lambda: AE(epochs=ae_epochs).fit(train), lambda: plain_autoencoder_training(train, ae_epochs),
               f"{ae_epochs} epochs on {len(train)} images"),
        "docc": (lambda: DOCC(epochs=docc_epochs).fit(train), lambda: plain_deep_svdd_training(docc_rows, docc_epochs),
                 f"{docc_epochs} epochs on {len(docc_rows)} images"),
        "aegan": (lambda: AEGAN().fit(train), lambda: plain_gan_training(aegan_rows),
                  f"60 epochs on {len(aegan_rows)} images"),
    }


def run() -> None:
    features, labels = pixel_features()
    names = [name for name, cls in registry.available().items()
             if issubclass(cls, Detector) and cls().features == PIXELS]
    seconds = {name: timed_detector(name, features, labels) for name in names}
    training = preset_training()
    total = sum(map(sum, seconds.values()))
    deep = sum(sum(seconds[name]) for name in DEEP)
    report("detectors (pixel and deep)", total / training, "at most 1 training", {
        "examples": f"{sum(map(len, features.values()))} scored, {len(features['train'])} to fit on",
        **{name: f"{fit + score:.1f} s (fit {fit:.1f} s, scoring {score:.1f} s)"
           for name, (fit, score) in seconds.items()},
        "kernel and distance detectors together": f"{total - deep:.1f} s",
        "deep detectors together": f"{deep:.1f} s",
        "training alone": f"{training:.1f} s (the {PRESET} preset's model, seed 0)",
        "pixel and deep detectors together": f"{total:.1f} s = {total / training:.2f} training times, at most 1",
        "device": f"cpu, {torch.get_num_threads()} threads",
    })
    for name, (fit, plain, what) in deep_trainings(features["train"]).items():
        fits, plains = [], []
        for _ in range(2):  # taking turns, best of 2
            started = time.perf_counter()
            fit()
            fits.append(time.perf_counter() - started)
            plains.append(plain())
        report(f"{name} training", min(fits) / min(plains), "at most 1.1", {
            f"{name} fit": f"{min(fits):.1f} s", "the same training as a plain PyTorch loop": f"{min(plains):.1f} s",
            "trained": what,
        })

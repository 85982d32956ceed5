"""Two readings of a `cifar10-cpu` run's stored models, for docs/results/cifar10.md:

    python docs/cifar10_features.py results/cifar10-cpu [SEED]      # after: bench run --preset cifar10-cpu

1. Why `mds` ranks OoD images as *more* typical on poolnet: for the final model of SEED (default 0), the mean norm
   of the penultimate features per split, and the mean squared Mahalanobis distance to the nearest class mean with
   the shared covariance `mds` fits (on the probe's 10,000 training images; the first 5,000 images of each OoD set, exact copies of CIFAR-10 images dropped as the run drops them).
2. How early VoG's early window is: the clean test accuracy of the model at every stored checkpoint.

It reads the data from the folder of the run's config.toml (`data_dir`, else the data roots) and the checkpoints
file of the seed in the run's `checkpoints/` folder.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from bench.config import RunConfig, load_toml
from bench.data.dataset import stratified_sample, with_semantic_ood, without_in_distribution_copies
from bench.data.registry import load_dataset
from bench.models import build_model
from bench.store import load_checkpoints
from bench.training import model_input

OOD_IMAGES = 5000


def batches(model_call, inputs: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    with torch.no_grad():
        return torch.cat([model_call(model_input(torch.as_tensor(inputs[start:start + 500]), shape))
                          for start in range(0, len(inputs), 500)]).double().numpy()


def main(folder: Path, seed: int) -> None:
    config = load_toml(folder / "config.toml", RunConfig())
    base = load_dataset(config.dataset, config.data_dir or None, corruptions=())
    others = [load_dataset(name, config.data_dir or None, corruptions=()) for name in config.ood]
    data = without_in_distribution_copies(with_semantic_ood(base, others, {}, config.ood_resize), base)
    [path] = (folder / "checkpoints").glob(f"{config.dataset}_{config.model}_seed{seed}_*.npz")
    states, training = load_checkpoints(path)
    model = build_model(config.model, data.input_shape, data.n_classes,
                        data.channel_statistics() if config.normalize else None).eval()

    def load(index: int) -> None:
        model.load_state_dict({name: torch.from_numpy(array) for name, array in states[index].items()})

    load(len(states) - 1)
    sample = stratified_sample(data.train.labels, config.probe_train_size, seed=0)
    labels = data.train.labels[sample]
    features = {"train": batches(model.embed, data.train.inputs[sample], data.input_shape),
                "test": batches(model.embed, data.test.inputs, data.input_shape)}
    features.update({name: batches(model.embed, split.inputs[:OOD_IMAGES], data.input_shape)
                     for name, split in data.ood.items()})
    means = np.stack([features["train"][labels == c].mean(0) for c in range(data.n_classes)])
    centred = features["train"] - means[labels]
    precision = np.linalg.pinv(centred.T @ centred / len(centred))
    print(f"seed {seed}, final model: {features['train'].shape[1]}-wide features")
    print("| split | mean feature norm | mean squared Mahalanobis distance to the nearest class mean |\n|---|---|---|")
    for name, values in features.items():
        distances = np.stack([np.einsum("ij,jk,ik->i", values - mean, precision, values - mean) for mean in means])
        print(f"| {name} | {np.linalg.norm(values, axis=1).mean():.2f} | {distances.min(0).mean():.1f} |")
    print("\n| checkpoint | epochs | clean test accuracy |\n|---|---|---|")
    for index, epoch in enumerate(training["checkpoint_epochs"]):
        load(index)
        accuracy = (batches(model, data.test.inputs, data.input_shape).argmax(1) == data.test.labels).mean()
        print(f"| {index} | {epoch:.3g} | {accuracy:.4f} |")


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 0)

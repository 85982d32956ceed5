"""The harness's training against a plain PyTorch loop doing the same work.

Both sides train the built-in ``resnet20`` from the same initial weights (built once, the state
deep-copied) on the same CIFAR-shaped random uint8 images, for one epoch in batches of
``BATCH`` with the same batch order, the same optimiser (SGD with momentum 0.9, weight decay
5e-4, constant learning rate) and no augmentation. The harness side is ``bench.training.train``
driven to exhaustion; the plain side indexes a batch per step, scales uint8 to float / 255,
then forward, cross-entropy, ``zero_grad``, backward, step. The two do the same arithmetic,
so their trained weights should agree: the report says by how much.
"""

from __future__ import annotations

import copy

import torch
from torch.nn import functional

from bench.config import Recipe
from bench.training import train
from benchmarks.common import CIFAR_SHAPE, best_times, report, resnet_and_data, sized, synchronize

MODEL = "resnet20"
N = 4096  # images: 32 steps of 128, about 5 s an epoch on two idle CPU cores
TINY_N = 256  # under BENCH_TINY
BATCH = 128
LR, MOMENTUM, WEIGHT_DECAY = 0.03, 0.9, 5e-4  # the harness's defaults (bench.config.RunConfig)
REPEAT = 3
SEED = 0


def settings(epochs: int = 1) -> Recipe:
    """The harness's recipe: SGD with momentum, constant schedule, no augmentation."""
    return Recipe(epochs=epochs, batch_size=BATCH, lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY,
                         checkpoint_every=epochs, optimizer="sgd", schedule="constant", augment="none")


def harness_epoch(model: torch.nn.Module, state: dict, images: torch.Tensor, labels: torch.Tensor) -> dict:
    """One epoch of ``bench.training.train`` from ``state``; the trained state."""
    model.load_state_dict(state)
    for _ in train(model, images, labels, settings(), torch.Generator().manual_seed(SEED), CIFAR_SHAPE):
        pass
    synchronize(images.device)
    return model.state_dict()


def plain_epoch(model: torch.nn.Module, state: dict, images: torch.Tensor, labels: torch.Tensor) -> dict:
    """The same epoch as a plain PyTorch loop; the trained state."""
    model.load_state_dict(state)
    model.train()
    optimiser = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(SEED)).to(labels.device)
    for start in range(0, len(labels), BATCH):
        index = order[start:start + BATCH]
        x = images[index].float() / 255
        loss = functional.cross_entropy(model(x), labels[index])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    synchronize(images.device)
    return model.state_dict()


def measure(model_name: str, n: int, device: torch.device | str, repeat: int) -> dict[str, float]:
    """Seconds per epoch of each side (best of ``repeat``, taking turns, after a warm-up on one batch
    each) and the largest difference between the weights the two trained."""
    model, images, labels = resnet_and_data(n, model_name, seed=SEED)
    model, images, labels = model.to(device), images.to(device), labels.to(device)
    state = copy.deepcopy(model.state_dict())
    trained: dict[str, dict] = {}
    for side in (harness_epoch, plain_epoch):  # the first steps pay for kernel selection and allocation
        side(model, state, images[:BATCH], labels[:BATCH])

    def keep(side, name: str):
        return lambda: trained.__setitem__(name, copy.deepcopy(side(model, state, images, labels)))

    times = best_times({"harness": keep(harness_epoch, "harness"), "plain": keep(plain_epoch, "plain")}, repeat,
                       warm_up=False)
    difference = max(float((trained["harness"][key].double() - value.double()).abs().max())
                     for key, value in trained["plain"].items() if value.is_floating_point())
    return {**times, "difference": difference}


def run() -> None:
    n, repeat = sized(N, TINY_N), sized(REPEAT, 1)
    figures = measure(MODEL, n, "cpu", repeat)
    report("training overhead", figures["harness"] / figures["plain"], "at most 1.1", {
        "work": f"{MODEL}, one epoch of {n} random CIFAR-shaped images (3x32x32 uint8, 10 classes), batch {BATCH}, "
                f"{-(-n // BATCH)} steps of SGD (momentum {MOMENTUM}, weight decay {WEIGHT_DECAY}), CPU",
        "bench.training.train": f"{figures['harness']:.3f} s",
        "plain PyTorch loop": f"{figures['plain']:.3f} s",
        "largest difference between the trained weights of the two": f"{figures['difference']:.1e}",
        "timing": f"best of {repeat}, the two taking turns",
        "threads": str(torch.get_num_threads()),
    })

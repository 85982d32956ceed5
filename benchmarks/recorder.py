"""The recorder's cost against the training it records.

Both sides train the built-in ``poolnet`` (the ``cifar10-cpu`` network) from the same initial weights
on the same CIFAR-shaped random uint8 images, for ``EPOCHS`` epochs of a plain PyTorch loop (SGD with
momentum, batches of ``BATCH`` in the same order). One side also runs ``bench.recorder.Recorder``
with ``every=1``: the untrained model and the model after every epoch saved with ``torch.save``,
and the manifest rewritten after each save, as a user's loop would record for ``bench score``.
The ratio is the recorded training's time over the plain training's.
"""

from __future__ import annotations

import copy
import tempfile

import torch
from torch.nn import functional

from bench.recorder import Recorder
from benchmarks.common import best_times, report, resnet_and_data, sized

MODEL = "poolnet"
N = 2048  # images an epoch: 16 steps of 128
TINY_N = 256
EPOCHS = 2
BATCH = 128
REPEAT = 3


def train(model: torch.nn.Module, state: dict, images: torch.Tensor, labels: torch.Tensor, record: bool) -> None:
    model.load_state_dict(state)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.03, momentum=0.9, weight_decay=5e-4)
    generator = torch.Generator().manual_seed(0)
    with tempfile.TemporaryDirectory() as folder:
        recorder = Recorder(f"{folder}/run", model, optimizer) if record else None
        for _ in range(EPOCHS):
            for batch in torch.randperm(len(labels), generator=generator).split(BATCH):
                loss = functional.cross_entropy(model(images[batch].float() / 255), labels[batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                if recorder:
                    recorder.step()
            if recorder:
                recorder.end_epoch()


def run() -> None:
    n, repeat = sized(N, TINY_N), sized(REPEAT, 1)
    model, images, labels = resnet_and_data(n, MODEL)
    state = copy.deepcopy(model.state_dict())
    size = sum(value.numel() * value.element_size() for value in state.values())
    times = best_times({"plain": lambda: train(model, state, images, labels, record=False),
                        "recorded": lambda: train(model, state, images, labels, record=True)}, repeat)
    report("recorder", times["recorded"] / times["plain"], "at most 1.05", {
        "work": f"{MODEL}, {EPOCHS} epochs of {n} random CIFAR-shaped images, batch {BATCH}, SGD, CPU; recorded: "
                f"{EPOCHS + 1} state dicts of {size / 2**20:.2f} MiB and the manifest",
        "plain loop": f"{times['plain']:.3f} s",
        "with the recorder": f"{times['recorded']:.3f} s",
        "timing": f"best of {repeat}, the two taking turns",
        "threads": str(torch.get_num_threads()),
    })

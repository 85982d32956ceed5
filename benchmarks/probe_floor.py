"""The probe at one checkpoint with VoG alone, against one plain forward and backward pass.

The physical floor of VoG is one forward and one backward pass per example per checkpoint;
the baseline is exactly that (cross-entropy, backward to the parameters, as in training,
without the optimiser step), over the same examples in the same batches, with the model in
eval mode as the probe runs it (``Probe.run`` calls ``model.eval()``: BatchNorm uses its
running statistics, so the examples of a batch are independent). ``measure`` serves the
residual network of ``benchmarks.probe_floor_resnet`` too.
"""

from __future__ import annotations

import torch
from torch.nn import functional

from bench.api import Checkpoint
from bench.probe import Probe, ProbeSplit
from bench.training import model_input
from benchmarks.common import INPUT_SHAPE, best_times, lenet_and_data, report
from scorers.vog import VoG

N = 8192
BATCH = 256
CHECKPOINT = Checkpoint(index=0, epoch=1, total=1)  # one pass, then VoG's finish


def vog() -> VoG:
    return VoG(window="all", target="logit")  # the paper's formula, as in the figures quoted before VoG's default changed


def measure(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, input_shape: tuple[int, ...],
            batch: int, repeat: int = 3) -> dict[str, float]:
    """Seconds of the probe with VoG alone at one checkpoint and of the plain forward + backward pass
    over the same batches, best of ``repeat``, the two taking turns; the model is left in eval mode."""
    model.eval()
    probe = Probe({"train": ProbeSplit(images, labels, trusted_labels=True)}, [vog()], input_shape, batch_size=batch)
    checkpoint = [(CHECKPOINT, model.state_dict())]

    def forward_backward() -> None:
        model.eval()  # as the probe runs it (it restores the mode it found, eval here)
        for start in range(0, len(labels), batch):
            x = model_input(images[start:start + batch], input_shape)
            functional.cross_entropy(model(x), labels[start:start + batch]).backward()
        model.zero_grad(set_to_none=True)

    return best_times({"probe": lambda: probe.run(model, checkpoint), "baseline": forward_backward}, repeat)


def run() -> None:
    model, images, labels = lenet_and_data(N)
    seconds = measure(model, images, labels, INPUT_SHAPE, BATCH)
    report("probe floor", seconds["probe"] / seconds["baseline"], "at most 1.3", {
        "examples": f"{N} MNIST-sized images in batches of {BATCH}, LeNet-5",
        "probe with VoG alone": f"{seconds['probe']:.3f} s",
        "plain forward + backward": f"{seconds['baseline']:.3f} s",
        "threads": str(torch.get_num_threads()),
    })

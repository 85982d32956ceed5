"""Only the passes someone needs: the probe with ``vog`` (its last 3 of 10 checkpoints) against
``vog[window=all]`` (all 10), on the same 10 checkpoints of LeNet-5.

At a checkpoint no active scorer reads, the probe takes no pass at all, so the ratio should be
close to 3/10: both take one forward and one input-gradient pass per example at each checkpoint
they read, and the same predictions at the last one.
"""

from __future__ import annotations

import torch

from bench import registry
from bench.api import Checkpoint
from bench.probe import Probe, ProbeSplit
from benchmarks.common import INPUT_SHAPE, best_times, lenet_and_data, report, sized

CHECKPOINTS = 10


def run() -> None:
    n = sized(8192, 256)
    model, images, labels = lenet_and_data(n)
    states = []
    for index in range(CHECKPOINTS):  # ten different models: the initial one, perturbed
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.add_(0.01 * torch.randn_like(parameter))
        states.append((Checkpoint(index, index + 1, CHECKPOINTS), {k: v.clone() for k, v in model.state_dict().items()}))
    split = {"train": ProbeSplit(images, labels, trusted_labels=True)}

    def probe(spec: str):
        return lambda: Probe(split, [registry.create(spec)], INPUT_SHAPE).run(model, states)

    seconds = best_times({"vog": probe("vog"), "all": probe("vog[window=all]")}, repeat=3)
    report("passes someone needs", seconds["vog"] / seconds["all"], "near 3/10 = 0.30", {
        "examples": f"{n} MNIST-sized images, LeNet-5, {CHECKPOINTS} checkpoints",
        "vog (3 checkpoints)": f"{seconds['vog']:.3f} s",
        "vog[window=all] (10 checkpoints)": f"{seconds['all']:.3f} s",
        "threads": str(torch.get_num_threads()),
    })

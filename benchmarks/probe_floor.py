"""The probe at one checkpoint with VoG alone, against one plain forward and backward pass.

The physical floor of VoG is one forward and one backward pass per example per checkpoint;
the baseline is exactly that (cross-entropy, backward to the parameters, as in training,
without the optimiser step), over the same examples in the same batches.
"""

from __future__ import annotations

import torch
from torch.nn import functional

from bench.api import Checkpoint
from bench.probe import Probe, ProbeSplit
from bench.training import model_input
from benchmarks.common import INPUT_SHAPE, best_time, lenet_and_data, report
from scorers.vog import VoG

N = 8192
BATCH = 256


def run() -> None:
    model, images, labels = lenet_and_data(N)
    vog = VoG(window="all", target="logit")  # the paper's formula, as in the figures quoted before VoG's default changed
    probe = Probe({"train": ProbeSplit(images, labels, trusted_labels=True)}, [vog], INPUT_SHAPE, batch_size=BATCH)
    checkpoint = [(Checkpoint(index=0, epoch=1, total=1), model.state_dict())]  # one pass, then VoG's finish

    def forward_backward() -> None:
        for start in range(0, N, BATCH):
            x = model_input(images[start:start + BATCH], INPUT_SHAPE)
            functional.cross_entropy(model(x), labels[start:start + BATCH]).backward()
        model.zero_grad(set_to_none=True)

    probe_seconds = best_time(lambda: probe.run(model, checkpoint))
    baseline = best_time(forward_backward)
    report("probe floor", probe_seconds / baseline, "at most 1.3", {
        "examples": f"{N} MNIST-sized images in batches of {BATCH}, LeNet-5",
        "probe with VoG alone": f"{probe_seconds:.3f} s",
        "plain forward + backward": f"{baseline:.3f} s",
        "threads": str(torch.get_num_threads()),
    })

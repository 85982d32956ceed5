"""The probe floor for a residual network with BatchNorm and strided convolutions.

As ``probe-floor`` (VoG alone at one checkpoint against one plain forward and backward pass
over the same batches), for the built-in ``resnet20`` on CIFAR-shaped random uint8 images,
both sides in eval mode as the probe runs the model. The LeNet fast path (input gradients of
stride-1 convolutions as forward convolutions) does not apply: ResNet-20 uses the stock
``nn.Conv2d``, several with stride 2, and BatchNorm.

When the ratio is above the target the report breaks both sides into their parts, each summed
over the batches of one pass: the probe's forward with an input gradient wanted (parameters
frozen), its backward to the input, and VoG's update of its running state; the baseline's
forward and its backward to the parameters.
"""

from __future__ import annotations

import time

import torch
from torch.nn import functional

from bench.api import Batch
from bench.hosts import CheckpointHost
from bench.training import model_input
from benchmarks.common import CIFAR_SHAPE, report, resnet_and_data, sized
from benchmarks.probe_floor import CHECKPOINT, measure, vog

MODEL = "resnet20"
N = 4096
TINY_N = 256  # under BENCH_TINY
BATCH = 256
TARGET = 1.3


def parts(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, batch: int) -> dict[str, float]:
    """Seconds of each part of one probe pass and one baseline pass, summed over the batches (model in eval mode)."""
    model.eval()
    seconds = dict.fromkeys(("probe forward", "probe backward to the input", "VoG update", "baseline forward",
                             "baseline backward to the parameters"), 0.0)
    scorer = vog()
    group = CheckpointHost([scorer], frozenset({CHECKPOINT.index}), torch.float64)
    group.start("train", len(labels))
    (signal,) = scorer.needs

    def timed(part: str, work):
        started = time.perf_counter()
        result = work()
        seconds[part] += time.perf_counter() - started
        return result

    parameters = [p for p in model.parameters() if p.requires_grad]
    for start in range(0, len(labels), batch):
        index = torch.arange(start, min(start + batch, len(labels)))
        label = labels[index]
        for p in parameters:  # as Probe.run: the input gradient alone
            p.requires_grad_(False)
        try:
            x = model_input(images[index], CIFAR_SHAPE).requires_grad_(True)
            logits = timed("probe forward", lambda: model.head(model.embed(x)))
            grad = timed("probe backward to the input",
                         lambda: torch.autograd.grad(logits.gather(1, label[:, None]).sum(), x)[0])
        finally:
            for p in parameters:
                p.requires_grad_(True)
        batch_of = Batch(split="train", index=index, classes={"target": label, "label": label},
                         signals={signal: grad, "logits": logits.detach()})
        timed("VoG update", lambda: group.update(batch_of, CHECKPOINT))
        x = model_input(images[index], CIFAR_SHAPE)
        loss = timed("baseline forward", lambda: functional.cross_entropy(model(x), label))
        timed("baseline backward to the parameters", loss.backward)
    model.zero_grad(set_to_none=True)
    return seconds


def run() -> None:
    n = sized(N, TINY_N)
    model, images, labels = resnet_and_data(n, MODEL)
    seconds = measure(model, images, labels, CIFAR_SHAPE, BATCH)
    ratio = seconds["probe"] / seconds["baseline"]
    figures = {
        "examples": f"{n} random CIFAR-shaped images (3x32x32 uint8) in batches of {BATCH}, {MODEL} in eval mode",
        "probe with VoG alone": f"{seconds['probe']:.3f} s",
        "plain forward + backward": f"{seconds['baseline']:.3f} s",
        "threads": str(torch.get_num_threads()),
    }
    if ratio > TARGET:
        parts(model, images[:BATCH], labels[:BATCH], BATCH)  # warm-up
        split = parts(model, images, labels, BATCH)
        probe_parts = sum(v for k, v in split.items() if not k.startswith("baseline"))
        figures["where the time goes (one pass each, summed over the batches)"] = ", ".join(
            f"{part} {value:.3f} s" for part, value in split.items())
        figures["the probe's parts against the probe"] = (
            f"{probe_parts:.3f} s of {seconds['probe']:.3f} s; the rest ({seconds['probe'] - probe_parts:.3f} s): the "
            f"probe's work outside these parts (loading the state, batching, VoG's finish), and timing noise")
    report("probe floor, residual network", ratio, f"at most {TARGET}", figures)

"""VoG in the paper's ImageNet setting, planned on paper from one measured figure: no ImageNet run is made.

Measured: the seconds of one image-pass (one forward pass and one backward pass to the input) of a ResNet-50
(random weights, eval mode, parameters frozen, as the probe holds a model) over random uint8 224x224x3 images,
through the probe's own code: ``compute_signals`` for the signal VoG needs (the gradient of the target's
probability, the target the class predicted at the checkpoint), then VoG's ``CheckpointHost`` folding the batch
into its running state (Welford's mean and second moment per pixel, float32, on the same device). The best of
a few timed batches, after a warm-up, divided by the batch size; the state update's share of it apart.

Planned (``plan``): VoG over the 50,000 ImageNet validation images, 1,000 classes, from K = 3 checkpoints (the
late window of the default ``vog``) and from every checkpoint of an assumed schedule of 32 (``window=all``):
n x K image-passes, the bytes of the pixels, of the running state and of the result, the device-hours the measured
figure implies, and the workers (shards of the examples, ``--shards``) needed for each worker's state to fit its
memory and for the whole to end within a target wall time. The images are taken as decoded and stored as an
``npy:`` folder, read a batch at a time rather than held; decoding JPEGs is not counted. A worker keeps a state in
memory up to ``MEMORY_SHARE`` of what it has free (``bench.reductions``), and beyond that on disk: the workers
"for memory" are those that keep every shard's state in memory, and fewer still run, at the disk's pace.

VoG averages its gradient over the colour channels before its state (``scorers/vog.py``): the state holds
2 x n x H x W values, not 2 x n x 3 x H x W.

``python -m benchmarks imagenet-plan [--device cuda]``; ``--tiny`` (or ``BENCH_TINY=1``) runs 64x64 images in
batches of 2 on the CPU in seconds, and its figures say nothing about speed.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass

import psutil
import torch
from torch import nn
from torch.nn import functional

from bench.api import Batch, Checkpoint
from bench.hosts import CheckpointHost
from bench.models import Classifier
from bench.probe import evaluating
from bench.reductions import MEMORY_SHARE
from bench.signals import compute_signals
from bench.training import model_input
from benchmarks.common import synchronize, tiny
from scorers.vog import WINDOW_SIZE, VoG

IMAGENET_SHAPE = (3, 224, 224)
TINY_SHAPE = (3, 64, 64)
IMAGENET_CLASSES = 1000
IMAGENET_VALIDATION = 50_000
ALL_CHECKPOINTS = 32  # an assumed schedule for ``window=all``: every checkpoint stored
WALL_HOURS = 1.0
CLASS_BYTES = 8  # VoG's second state: each example's class (int64), kept as the last one seen
RESULT_BYTES = 8  # one float64 score per example
GB = 1e9


class Bottleneck(nn.Module):
    """ResNet's bottleneck block: 1x1 down to ``width``, 3x3 at ``stride`` (where torchvision strides), 1x1 up to
    4 x ``width``, batch norm after each; a 1x1 projection shortcut where the shape changes."""

    def __init__(self, channels_in: int, width: int, stride: int) -> None:
        super().__init__()
        channels_out = 4 * width
        self.convs = nn.Sequential(
            nn.Conv2d(channels_in, width, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, channels_out, 1, bias=False), nn.BatchNorm2d(channels_out))
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or channels_in != channels_out:
            self.shortcut = nn.Sequential(nn.Conv2d(channels_in, channels_out, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(channels_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return functional.relu(self.convs(x) + self.shortcut(x))


class ResNet50(Classifier):
    """ResNet-50 (He et al. 2016) for ImageNet: a 7x7 stride-2 stem and max-pooling, 3-4-6-3 bottleneck blocks of
    widths 64-512 (outputs 256-2048), global average pooling, a linear head (25.6M parameters at 1,000 classes)."""

    def __init__(self, input_shape: tuple[int, ...], n_classes: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(input_shape[0], 64, 7, stride=2, padding=3, bias=False),
                                   nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(3, stride=2, padding=1)]
        channels = 64
        for stage, (width, blocks) in enumerate(zip((64, 128, 256, 512), (3, 4, 6, 3), strict=True)):
            for block in range(blocks):
                layers.append(Bottleneck(channels, width, 2 if stage and not block else 1))
                channels = 4 * width
        self.embed = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(channels, n_classes)


@dataclass(frozen=True)
class Plan:
    """The cost of VoG over ``examples`` images from ``checkpoints`` checkpoints, on paper (bytes and seconds)."""

    examples: int
    checkpoints: int
    passes: int  # image-passes: one forward and one backward pass to the input, per image and checkpoint
    pixel_bytes: int  # every image as uint8, on disk (an npy: folder)
    state_bytes: int  # the running mean and second moment per pixel of VoG's map, and each example's class
    result_bytes: int  # one float64 score per example
    device_seconds: float
    memory_workers: int  # shards for each worker's share of the state to fit its budget
    time_workers: int  # workers for the passes to end within the target wall time

    @property
    def device_hours(self) -> float:
        return self.device_seconds / 3600

    @property
    def workers(self) -> int:
        """The plan's worker count: enough for memory and for time."""
        return max(self.memory_workers, self.time_workers)


def vog_map_size(input_shape: Sequence[int]) -> int:
    """Values per example of VoG's gradient map: an image's pixels, its colour channels averaged (``VoG.value``)."""
    return math.prod(input_shape[1:]) if len(input_shape) == 3 else math.prod(input_shape)


def plan(examples: int, input_shape: Sequence[int], checkpoints: int, state_value_bytes: int,
         seconds_per_pass: float, memory_budget: float, wall_hours: float) -> Plan:
    """VoG's cost over ``examples`` inputs of ``input_shape`` from ``checkpoints`` checkpoints: ``state_value_bytes``
    a value of its running state (8 for float64, 4 for float32), ``seconds_per_pass`` one image-pass on one worker,
    ``memory_budget`` the bytes of a worker's memory left for the state, ``wall_hours`` the target wall time."""
    if memory_budget <= 0 or wall_hours <= 0:
        raise ValueError(f"a plan needs memory for the state and time: got {memory_budget} bytes, {wall_hours} h")
    passes = examples * checkpoints
    state = 2 * examples * vog_map_size(input_shape) * state_value_bytes + examples * CLASS_BYTES
    device_seconds = passes * seconds_per_pass
    return Plan(examples=examples, checkpoints=checkpoints, passes=passes,
                pixel_bytes=examples * math.prod(input_shape), state_bytes=state,
                result_bytes=examples * RESULT_BYTES, device_seconds=device_seconds,
                memory_workers=math.ceil(state / memory_budget),
                time_workers=max(1, math.ceil(device_seconds / (wall_hours * 3600))))


@dataclass(frozen=True)
class Measurement:
    """Seconds of one image-pass on ``device``, the state update's share of it, and the memory a batch works in."""

    device: str
    seconds_per_pass: float
    median_seconds_per_pass: float
    update_share: float
    working_bytes: float | None  # peak device memory but the images and the state: the model and a batch (CUDA only)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu, {torch.get_num_threads()} threads"


def measure(device: torch.device, input_shape: tuple[int, ...], batch_size: int, batches: int,
            warm_up: int, state_dtype: torch.dtype = torch.float32) -> Measurement:
    """Time ``batches`` batches of ResNet-50's probe pass for VoG, after ``warm_up`` untimed ones, each on rows of
    its own in VoG's state, as a pass over a split gives them."""
    gpu = device.type == "cuda"
    if gpu:
        torch.cuda.reset_peak_memory_stats(device)
    held_before = torch.cuda.memory_allocated(device) if gpu else 0
    torch.manual_seed(0)
    model = ResNet50(input_shape, IMAGENET_CLASSES).to(device)
    rows = (warm_up + batches) * batch_size
    images = torch.randint(0, 256, (rows, *input_shape), dtype=torch.uint8, device=device)
    labels = torch.randint(0, IMAGENET_CLASSES, (rows,), device=device)
    vog = VoG()
    host = CheckpointHost([vog], frozenset({0}), state_dtype)
    host.start("validation", rows)
    checkpoint = Checkpoint(index=0, epoch=0, total=WINDOW_SIZE)
    passes, updates = [], []
    with evaluating(model):
        for start in range(0, rows, batch_size):
            index = torch.arange(start, start + batch_size, device=device)  # on the device, as the probe's
            started = time.perf_counter()
            x = model_input(images[index], input_shape)
            signals, classes = compute_signals(model, x, {"label": labels[index]}, vog.needs)
            synchronize(device)
            computed = time.perf_counter()
            host.update(Batch("validation", index, classes, signals, model.head, checkpoint), checkpoint)
            synchronize(device)
            if start >= warm_up * batch_size:
                passes.append(computed - started)
                updates.append(time.perf_counter() - computed)
    totals = [p + u for p, u in zip(passes, updates, strict=True)]
    best = min(range(len(totals)), key=totals.__getitem__)
    working = None
    if gpu:
        data = images.nbytes + labels.nbytes + host.state_bytes()[vog.spec]
        working = torch.cuda.max_memory_allocated(device) - held_before - data
    return Measurement(device_name(device), totals[best] / batch_size, statistics.median(totals) / batch_size,
                       updates[best] / totals[best], working)


def print_plan(measured: Measurement, memory: float, held: float, note: str) -> None:
    """The plan for VoG over the ImageNet validation set at K = 3 and K = all, float32 and float64 state."""
    budget = MEMORY_SHARE * (memory - held)
    hours = "GPU-hours" if measured.working_bytes is not None else "hours"
    print(f"imagenet-plan: VoG over the ImageNet validation set, a plan on paper from the figure above{note}")
    print(f"  setting: {IMAGENET_VALIDATION:,} images of {'x'.join(map(str, IMAGENET_SHAPE))} "
          f"({IMAGENET_VALIDATION * math.prod(IMAGENET_SHAPE) / GB:.2f} GB of uint8 pixels), {IMAGENET_CLASSES:,} "
          f"classes, ResNet-50; state per example: 2 x {vog_map_size(IMAGENET_SHAPE):,} values (VoG averages the "
          f"colour channels first) and its class; result {IMAGENET_VALIDATION * RESULT_BYTES / 1e6:.1f} MB (float64)")
    if budget <= 0:
        print(f"  worker memory: {memory / GB:.1f} GB, no more than the {held / GB:.1f} GB the model and a batch "
              "take: no plan")
        return
    batch = "not measured" if measured.working_bytes is None else f"{held / GB:.1f} GB"
    print(f"  worker memory: {memory / GB:.1f} GB; the model and a batch: {batch}; the state kept in "
          f"memory up to {MEMORY_SHARE:g} of the rest: {budget / GB:.1f} GB; the pixels streamed from an npy: folder; "
          f"target wall time {WALL_HOURS:g} h; float64 rows at the float32 figure (their update, twice the bytes, "
          "not timed)")
    for checkpoints, window in ((WINDOW_SIZE, "late window"), (ALL_CHECKPOINTS, "all, assumed")):
        for dtype, size in (("float32", 4), ("float64", 8)):
            cost = plan(IMAGENET_VALIDATION, IMAGENET_SHAPE, checkpoints, size, measured.seconds_per_pass, budget,
                        WALL_HOURS)
            print(f"  K={checkpoints} ({window}), {dtype} state: {cost.passes:,} image-passes, state "
                  f"{cost.state_bytes / GB:.2f} GB, {cost.device_hours:.3g} {hours} [{measured.device}]; workers: "
                  f"{cost.memory_workers} for memory, {cost.time_workers} for {WALL_HOURS:g} h: plan {cost.workers} "
                  f"({cost.device_hours / cost.workers:.3g} h wall, split evenly)")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.imagenet_plan", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="a torch device: cpu (default), cuda, cuda:1")
    parser.add_argument("--batch-size", type=int, help="images per batch (default: the probe's 256 on a GPU, "
                        "4 on the CPU, 2 with --tiny)")
    parser.add_argument("--batches", type=int, help="timed batches (default: 20 on a GPU, 5 on the CPU, 3 with --tiny)")
    parser.add_argument("--tiny", action="store_true",
                        help="64x64 images, tiny batches: a smoke test (also BENCH_TINY=1)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    small = args.tiny or tiny()
    gpu = device.type == "cuda"
    shape = TINY_SHAPE if small else IMAGENET_SHAPE
    batch_size = args.batch_size or (2 if small else 256 if gpu else 4)
    batches = args.batches or (3 if small else 20 if gpu else 5)
    warm_up = 3 if gpu else 1
    measured = measure(device, shape, batch_size, batches, warm_up)
    note = " (tiny: the time figures say nothing about speed)" if small else ""
    print(f"imagenet-plan: ResNet-50's probe pass for VoG on {measured.device}{note}")
    print(f"  work: {'x'.join(map(str, shape))} random uint8 images, batches of {batch_size}, {batches} timed after "
          f"{warm_up} warm-up; compute_signals for {next(iter(VoG().needs))}, VoG's host folding it into a float32 "
          "state on the device")
    print(f"  seconds per image-pass [{measured.device}]: {measured.seconds_per_pass:.4g} s (best batch; median "
          f"{measured.median_seconds_per_pass:.4g} s)")
    print(f"  state update's share [{measured.device}]: {100 * measured.update_share:.2g}% of the best batch")
    if gpu:
        print(f"  working memory of a batch [{measured.device}]: {measured.working_bytes / GB:.2f} GB (peak above "
              "the images and the state: the model and the batch)")
        memory = torch.cuda.get_device_properties(device).total_memory
        print_plan(measured, memory, measured.working_bytes, note)
    else:
        print_plan(measured, psutil.virtual_memory().total, 0, f"{note}; each worker a machine like this one, its "
                   "memory this one's, the model's and a batch's not counted (not measured on the CPU)")


def run() -> None:
    main([])


if __name__ == "__main__":
    main()

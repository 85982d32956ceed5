"""The ImageNet plan of ``benchmarks/imagenet_plan.py``: its cost model against figures worked by hand, its state
against what VoG's host holds, its ResNet-50 against the standard one, and the tiny measurement on the CPU."""

import re

import pytest
import torch

from bench.api import Batch, Checkpoint
from bench.hosts import CheckpointHost
from benchmarks.imagenet_plan import ResNet50, main, measure, plan, vog_map_size
from scorers.vog import VoG


def test_the_plan_of_the_papers_setting_by_hand():
    # 50,000 images of 3x224x224; VoG's map 224 x 224 = 50,176 values, a mean and a second moment each, in float64
    cost = plan(50_000, (3, 224, 224), 3, 8, seconds_per_pass=0.001, memory_budget=30e9, wall_hours=1)
    assert cost.passes == 150_000
    assert cost.pixel_bytes == 50_000 * 150_528 == 7_526_400_000
    assert cost.state_bytes == 2 * 50_000 * 50_176 * 8 + 50_000 * 8 == 40_141_200_000  # and an int64 class each
    assert cost.result_bytes == 400_000
    assert cost.device_seconds == pytest.approx(150.0)
    assert cost.device_hours == pytest.approx(150 / 3600)
    assert (cost.memory_workers, cost.time_workers, cost.workers) == (2, 1, 2)  # 40.1 GB over 30 GB, rounded up


def test_workers_round_up_for_memory_and_for_time():
    state = plan(50_000, (3, 224, 224), 32, 4, 0.002, 1.0, 1).state_bytes
    assert state == 2 * 50_000 * 50_176 * 4 + 50_000 * 8
    assert plan(50_000, (3, 224, 224), 32, 4, 0.002, state, 1).memory_workers == 1
    assert plan(50_000, (3, 224, 224), 32, 4, 0.002, state - 1, 1).memory_workers == 2
    assert plan(50_000, (3, 224, 224), 32, 4, 0.002, state, 1).time_workers == 1  # 1,600,000 x 2 ms = 3,200 s
    slow = plan(50_000, (3, 224, 224), 32, 4, 0.003, state / 3, 1)  # 4,800 s; the state over a third of it
    assert (slow.memory_workers, slow.time_workers, slow.workers) == (3, 2, 3)
    assert plan(50_000, (3, 224, 224), 32, 4, 0.003, state, 0.5).time_workers == 3  # 4,800 s in half an hour


@pytest.mark.parametrize(("budget", "hours"), [(0, 1), (1e9, 0)])
def test_a_plan_needs_memory_and_time(budget, hours):
    with pytest.raises(ValueError, match="memory for the state and time"):
        plan(50_000, (3, 224, 224), 3, 8, 0.001, budget, hours)


def test_vog_map_averages_colour_channels():
    assert vog_map_size((3, 224, 224)) == 50_176
    assert vog_map_size((1, 28, 28)) == vog_map_size((784,)) == 784


@pytest.mark.parametrize(("dtype", "size"), [(torch.float64, 8), (torch.float32, 4)])
def test_the_planned_state_is_what_vogs_host_holds(dtype, size):
    n, shape = 6, (3, 8, 8)
    vog = VoG()
    host = CheckpointHost([vog], frozenset({0}), dtype)
    host.start("validation", n)
    index = torch.arange(n)
    checkpoint = Checkpoint(index=0, epoch=0, total=3)
    signals = {next(iter(vog.needs)): torch.randn(n, *shape)}
    host.update(Batch("validation", index, {"target": torch.zeros(n, dtype=torch.long)}, signals), checkpoint)
    assert host.state_bytes()[vog.spec] == plan(n, shape, 3, size, 1.0, 1.0, 1).state_bytes


def test_resnet50_is_the_standard_one():
    model = ResNet50((3, 224, 224), 1000)
    assert sum(p.numel() for p in model.parameters()) == 25_557_032  # torchvision's resnet50
    with torch.no_grad():
        embedding = model.eval().embed(torch.rand(2, 3, 64, 64))
    assert embedding.shape == (2, 2048) and model.head(embedding).shape == (2, 1000)


def test_tiny_measurement_on_the_cpu_names_its_device():
    measured = measure(torch.device("cpu"), (3, 64, 64), batch_size=2, batches=2, warm_up=1)
    assert measured.device == f"cpu, {torch.get_num_threads()} threads"
    assert measured.working_bytes is None  # measured on CUDA only


def test_tiny_cli_prints_the_figure_and_the_plan(capsys):
    main(["--tiny"])
    out = capsys.readouterr().out
    seconds = float(re.search(r"seconds per image-pass \[cpu[^\]]*\]: (\S+) s", out)[1])
    hours = float(re.search(r"K=3 \(late window\), float32 state: 150,000 image-passes, state \S+ GB, (\S+) hours", out)[1])
    assert hours == pytest.approx(150_000 * seconds / 3600, rel=1e-2)  # the plan is the printed figure's (3 and 4 digits)
    assert "a plan on paper" in out and "tiny: the time figures say nothing" in out
    assert "K=3 (late window), float64 state: 150,000 image-passes, state 40.14 GB" in out

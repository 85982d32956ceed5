"""End to end: the ``mnist-c`` preset with every default scorer, against the same training without any scorer.

One seed (``SEEDS``): the pixel-space detectors are fitted once per run whatever the number
of seeds, so one seed is the least favourable case for the ratio. The run is held to a floor:
training, plus the passes the probe must take for the chosen scorers at each checkpoint some
scorer reads: every example once forward; once backward to the input per input gradient asked
for there; and, where a scorer asks for the parameter-gradient norms (GraNd, TracIn), once
backward to the parameters, which also gives the target probability's input gradient (so that
one is not counted twice). Each is priced at the cost per example of the plain pass, measured
here on the same model in eval mode: a forward pass; a backward pass to the input with the
parameters frozen; ``loss.backward()`` of the summed cross-entropy with the parameters
requiring grad. The rest is printed part by part. The unit cache is then
exercised: the same run again (every unit reused, tasks recomputed), and the run with one
scorer's parameter changed (only that scorer recomputed, on the stored checkpoints).
Needs MNIST (``bench data fetch mnist``); takes about 15 minutes on two CPU cores.
"""

from __future__ import annotations

import tempfile
import time

import torch

from bench import registry, runner
from bench.api import Detector
from bench.config import load_preset
from bench.data import load_dataset, with_training_set
from bench.models import build_model, resolve_device
from bench.signals import PARAM_GRAD_NORM, TARGET_PROB_GRAD, Signal
from bench.training import model_input, train
from benchmarks.common import best_times, report, synchronize

PRESET = "mnist-c"
SEEDS = [0]
CHANGED = ("vog", "vog[norm=z]")  # one scorer's parameter, before and after


def training_alone(config, dataset, seed: int) -> float:
    """Seconds to train the unit's model with no probe at all."""
    device = resolve_device(config.device)
    torch.manual_seed(seed)
    model = build_model(config.model, dataset.input_shape, dataset.n_classes).to(device)
    settings = config.recipe
    inputs, labels = (torch.as_tensor(array, device=device) for array in (dataset.train.inputs, dataset.train.labels))
    started = time.perf_counter()
    for _ in train(model, inputs, labels, settings, torch.Generator().manual_seed(seed), dataset.input_shape):
        pass
    synchronize(device)
    return time.perf_counter() - started


def pass_costs(config, dataset, batch: int = 256, n: int = 4096) -> dict[str, float]:
    """Seconds per example of a plain forward pass (``forward``), of one backward pass to the input with the
    parameters frozen (``input``) and of one to the parameters (``parameters``: ``loss.backward()`` of the
    summed cross-entropy), the model in eval mode as the probe runs it; best of 3, taking turns."""
    model = build_model(config.model, dataset.input_shape, dataset.n_classes).eval().requires_grad_(False)
    inputs = torch.as_tensor(dataset.test.inputs[:n])
    labels = torch.as_tensor(dataset.test.labels[:n])
    batches = [(model_input(inputs[start:start + batch], dataset.input_shape), labels[start:start + batch])
               for start in range(0, len(inputs), batch)]

    def forward() -> None:
        with torch.no_grad():
            for x, _ in batches:
                model(x)

    def to_input() -> None:
        for x, _ in batches:
            x = x.requires_grad_(True)
            torch.autograd.grad(model(x).logsumexp(1).sum(), x)

    def to_parameters() -> None:
        model.requires_grad_(True)
        for x, y in batches:
            torch.nn.functional.cross_entropy(model(x), y, reduction="sum").backward()
        model.zero_grad(set_to_none=True)
        model.requires_grad_(False)

    seconds = best_times({"forward": forward, "input": to_input, "parameters": to_parameters})
    return {"forward": seconds["forward"] / n, "input": (seconds["input"] - seconds["forward"]) / n,
            "parameters": (seconds["parameters"] - seconds["forward"]) / n}


def probe_floor(table, costs: dict[str, float]) -> dict[str, float]:
    """The passes the probe must take for the unit's scorers (``meta['observed']``: the epochs each reads) and
    their seconds at the plain per-example ``costs`` (``pass_costs``)."""
    observed = table.meta["observed"]
    epochs = sorted({epoch for read in observed.values() for epoch in read})
    gradients, parameter_passes = 0, 0
    for epoch in epochs:
        needs = {need for spec, read in observed.items() if epoch in read for need in registry.create(spec).needs}
        norms = PARAM_GRAD_NORM in needs
        parameter_passes += norms
        shared = {TARGET_PROB_GRAD} if norms else set()  # the parameter pass gives it (``bench.signals``)
        gradients += len({need for need in needs if Signal(need).kind == "input_grad"} - shared)
    examples = sum(len(split["id"]) for split in table.splits.values())
    return {"examples": examples, "checkpoints": len(epochs), "gradient passes": gradients,
            "parameter passes": parameter_passes,
            "seconds": examples * (len(epochs) * costs["forward"] + gradients * costs["input"]
                                   + parameter_passes * costs["parameters"])}


def timed(work) -> tuple[float, object]:
    started = time.perf_counter()
    result = work()
    return time.perf_counter() - started, result


def measure(config) -> dict:
    """The run of ``config`` (its data loaded, or generated, first and untimed), then the same training
    alone: seconds of each (``full``, ``baseline``), the run's own parts (``parts``: train, probe,
    finish) and its result."""
    dataset = with_training_set(load_dataset(config.dataset, config.data_dir), config.train_size, config.label_noise)
    full, result = timed(lambda: runner.run(config, progress=False))
    baseline = sum(training_alone(config, dataset, seed) for seed in config.seeds)  # after: the process is warm
    seconds = [table.meta["seconds"] for table in result.tables]
    parts = {part: sum(s[part] for s in seconds) for part in ("train", "probe", "finish")}
    return {"full": full, "baseline": baseline, "parts": parts, "result": result}


def run() -> None:
    with tempfile.TemporaryDirectory() as out:
        config = load_preset(PRESET).updated(seeds=SEEDS, out=out)
        measured = measure(config)
        full, baseline, parts, result = (measured[key] for key in ("full", "baseline", "parts", "result"))
        again, _ = timed(lambda: runner.run(config, progress=False))
        every = [CHANGED[1] if name == CHANGED[0] else name for name in registry.available()]  # "all", one changed
        changed_config = config.updated(scorers=every + [spec for spec in config.scorers if spec != "all"])
        changed, _ = timed(lambda: runner.run(changed_config, progress=False))
    dataset = load_dataset(config.dataset, config.data_dir)
    costs = pass_costs(config, dataset)
    floor = probe_floor(result.tables[0], costs)
    scorer_costs = result.tables[0].meta["cost"]
    detectors = {spec: cost["seconds"] for spec, cost in scorer_costs.items()
                 if isinstance(registry.create(spec), Detector)}
    costliest = sorted(scorer_costs.items(), key=lambda item: -item[1]["seconds"])[:6]
    report("end to end", full / baseline, "at most 6", {
        "run": f"preset {PRESET}, seeds {config.seeds}, {len(result.tables[0].scorers)} scorer specs, "
               f"{sum(len(s['id']) for s in result.tables[0].splits.values())} examples scored per checkpoint",
        "training alone": f"{baseline:.1f} s",
        "ratio against the run's own training time": f"{full / parts['train']:.2f}",
        "floor": f"{(baseline + floor['seconds']) / baseline:.2f} times training: {floor['examples']} examples x "
                 f"({floor['checkpoints']} forward passes ({costs['forward'] * 1e6:.1f} us each) + "
                 f"{floor['gradient passes']} input-gradient passes ({costs['input'] * 1e6:.1f} us each) + "
                 f"{floor['parameter passes']} parameter-gradient passes ({costs['parameters'] * 1e6:.1f} us each)) = "
                 f"{floor['seconds']:.1f} s, against training's {len(dataset.train.labels)} examples x "
                 f"{config.epochs} epochs",
        "probe against its floor": f"{parts['probe'] / floor['seconds']:.2f}",
        "detectors": f"{sum(detectors.values()):.1f} s = {sum(detectors.values()) / parts['train']:.2f} training times",
        "costliest scorers": ", ".join(f"{spec} {cost['seconds']:.1f} s" for spec, cost in costliest),
        "bench run": f"{full:.1f} s: training {parts['train']:.1f} s, probe at the checkpoints {parts['probe']:.1f} s, "
                     f"detectors and final scores {parts['finish']:.1f} s, data and tasks "
                     f"{full - sum(parts.values()):.1f} s",
        "the same run again (cache)": f"{again:.1f} s",
        f"with {CHANGED[0]} changed to {CHANGED[1]}": f"{changed:.1f} s (the model is not trained again)",
        "device": f"{resolve_device(config.device)}, {torch.get_num_threads()} threads",
    })

"""The GPU figures, in one run: ``python -m benchmarks.gpu --device cuda`` (``benchmarks/gpu.sh`` wraps it).

(a) ResNet-18 (the built-in CIFAR ``resnet18``) training: one epoch of 50,000 random 3x32x32
    uint8 images in batches of 128 through ``bench.training.train``, after a warm-up, against
    the plain PyTorch loop of ``benchmarks.training_overhead`` (best of 2, taking turns);
(b) the probe's time per checkpoint for that model with every built-in scorer that runs at
    checkpoints (the detectors apart), on 10,000 training and 10,000 test images, and with VoG alone;
(c) the ``mnist-c`` preset's run for one seed against the same training alone (``benchmarks.end_to_end``);
    MNIST is read from ``--data-dir`` (``<data-dir>/mnist``), through links in the scratch folder,
    which receives the generated MNIST-C and the results;
(d) five LeNets trained together against one after another (``benchmarks.seeds_at_once``);
(e) one seed of the ``cifar10`` preset end to end (ResNet-18, 200 epochs; OoD: CIFAR-100, MNIST and the
    generated CIFAR-10-C): each phase's seconds, the clean test accuracy and the peak GPU memory. It reads
    ``cifar10/``, ``cifar100/`` and ``mnist/`` from ``--data-dir`` and is skipped, saying so, without them.

Every figure is one line, ``(part) label [device]: value unit``. With ``--tiny`` (or
``BENCH_TINY=1``) every size is cut down so that the whole runs on two CPU cores in well under a
minute: one CPU thread, ResNet-20 in place of ResNet-18, part (c) runs the embedded ``digits-c`` with
two epochs and a few scorers, and part (e) the embedded ``patches`` (textures as OoD) for one epoch of
``resnet20``; those figures say nothing about speed. Without ``--tiny``, part
(c) falls back to ``digits-c`` with the preset's settings when MNIST is missing, and says so.
Nothing is written outside ``--scratch`` (a new temporary folder by default, removed at the end).
A part that raises, or whose scorers fail, is reported and the others still run; the exit
status is then 1.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import math
import os
import shutil
import sys
import tempfile
import time
import tomllib
import traceback
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
PARTS = {"a": "ResNet training epoch", "b": "probe per checkpoint", "c": "mnist-c end to end / training alone",
         "d": "seeds trained together / one after another", "e": "cifar10 preset, one seed end to end"}
TRAIN_IMAGES, TINY_TRAIN_IMAGES = 50_000, 256
PROBE_IMAGES, TINY_PROBE_IMAGES = 10_000, 128  # per split: train and test
SEEDS_IMAGES, TINY_SEEDS_IMAGES = 4096, 512
TINY_E2E = {"dataset": "digits-c", "epochs": 2, "scorers": ["vog", "loss", "el2n", "grand", "gaussian"]}
TINY_CIFAR = {"dataset": "patches", "ood": ["textures"], "ood_resize": "none", "model": "resnet20", "epochs": 1,
              "early_checkpoints": [2], "corrupted_size": 20, "scorers": ["vog", "loss", "energy", "knn", "gaussian"]}
CIFAR_DATA = ("cifar10", "cifar100", "mnist")

device_label = "?"


def figure(part: str, label: str, value: float, unit: str) -> float:
    """Print one figure: ``(part) label [device]: value unit``; a value that is not a positive finite number fails the part."""
    print(f"({part}) {label} [{device_label}]: {value:.4g} {unit}", flush=True)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"({part}) {label}: {value} is not a positive finite number")
    return value


def note(text: str) -> None:
    print(f"    {text}", flush=True)


def ensure_installed(scratch: Path) -> None:
    """The built-in scorers come in through the entry points of the installed distribution; where the project
    is only copied (not installed), a minimal ``.dist-info`` in the scratch folder declares them from pyproject.toml."""
    try:
        importlib.metadata.distribution("difficulty-bench")
        return
    except importlib.metadata.PackageNotFoundError:
        pass
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    info = scratch / "site" / f"difficulty_bench-{project['version']}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n")
    groups = project.get("entry-points", {})
    (info / "entry_points.txt").write_text("".join(
        f"[{group}]\n" + "".join(f"{name} = {value}\n" for name, value in points.items()) + "\n"
        for group, points in groups.items()))
    sys.path.insert(0, str(info.parent))
    importlib.invalidate_caches()
    note(f"difficulty-bench is not installed: its entry points declared from pyproject.toml in {info.parent}")


def part_a(device: torch.device, tiny: bool, model: str, scratch: Path) -> None:
    from benchmarks import training_overhead

    n, repeat = (TINY_TRAIN_IMAGES, 1) if tiny else (TRAIN_IMAGES, 2)
    seconds = training_overhead.measure(model, n, device, repeat)
    what = f"{model} epoch of {n} random 3x32x32 images, batch {training_overhead.BATCH}"
    figure("a", f"{what}, bench.training.train", seconds["harness"], "s")
    figure("a", f"{model} training throughput, bench.training.train", n / seconds["harness"], "images/s")
    figure("a", f"{what}, plain PyTorch loop", seconds["plain"], "s")
    figure("a", "training overhead, bench.training.train / plain loop", seconds["harness"] / seconds["plain"], "x")
    note(f"best of {repeat} epochs each, taking turns, after a warm-up batch; largest difference between the "
         f"weights the two trained: {seconds['difference']:.1e}")


def checkpoint_scorers() -> list[str]:
    """The built-in scorers that run at checkpoints: every one but the detectors (fitted once, at the end)."""
    from bench import registry
    from bench.api import Detector

    names = [name for name in registry.builtin() if not issubclass(registry.get(name), Detector)]
    if not names:
        raise RuntimeError("no built-in scorer found: is difficulty-bench installed (its bench.scorers entry points)?")
    return names


def probe_seconds(model: torch.nn.Module, splits: dict, specs: list[str]) -> dict[str, float]:
    """The probe's seconds at one checkpoint (the last of one: every scorer observes it), and its finish."""
    from bench import registry
    from bench.api import Checkpoint
    from bench.probe import Probe
    from benchmarks.common import CIFAR_SHAPE, synchronize

    probe = Probe(splits, [registry.create(spec) for spec in specs], CIFAR_SHAPE)
    probe.run(model, [(Checkpoint(index=0, epoch=1, total=1, lr=0.1), model.state_dict())])  # an lr for TracIn
    synchronize(next(model.parameters()).device)
    if probe.failures:
        raise RuntimeError(f"scorers failed: {probe.failures}")
    return probe.seconds


def part_b(device: torch.device, tiny: bool, model_name: str, scratch: Path) -> None:
    from bench.probe import ProbeSplit
    from benchmarks.common import resnet_and_data

    n = TINY_PROBE_IMAGES if tiny else PROBE_IMAGES
    model, images, labels = resnet_and_data(2 * n, model_name)
    model, images, labels = model.to(device), images.to(device), labels.to(device)

    def splits(count: int) -> dict:  # the test split's labels untrusted, as in a run's predicted label mode
        return {"train": ProbeSplit(images[:count], labels[:count], trusted_labels=True),
                "test": ProbeSplit(images[n:n + count], labels[n:n + count], trusted_labels=False)}

    specs = checkpoint_scorers()
    probe_seconds(model, splits(min(n, 256)), specs)  # warm-up, and GraNd's choice of method
    every = probe_seconds(model, splits(n), specs)
    vog = probe_seconds(model, splits(n), ["vog"])
    what = f"{model_name}, {n} train + {n} test images"
    figure("b", f"probe per checkpoint, {len(specs)} checkpoint scorers, {what}", every["probe"], "s")
    figure("b", "probe per checkpoint, every checkpoint scorer, per 1,000 images", every["probe"] / (2 * n) * 1000, "s")
    figure("b", "final scores after the last checkpoint (OGA's isolation forest and the like)", every["finish"], "s")
    figure("b", f"probe per checkpoint, VoG alone, {what}", vog["probe"], "s")
    note(f"scorers: {', '.join(specs)}")


def part_c(device: torch.device, tiny: bool, model_name: str, scratch: Path, data_dir: Path) -> None:
    from bench.config import load_preset
    from benchmarks import end_to_end

    data = scratch / "data"
    data.mkdir()
    changes: dict = {}
    if tiny:
        changes = dict(TINY_E2E)
        note(f"tiny: digits-c (embedded) in place of mnist-c, {changes['epochs']} epochs, "
             f"scorers {', '.join(changes['scorers'])}")
    elif (data_dir / "mnist").is_dir():
        for entry in data_dir.iterdir():  # links: read where it is, generated data written here
            (data / entry.name).symlink_to(entry.resolve())
        note(f"MNIST from {data_dir / 'mnist'}; MNIST-C read from there if generated, else generated into the "
             f"scratch folder (untimed)")
    else:
        changes = {"dataset": "digits-c"}
        note(f"MNIST not found in {data_dir / 'mnist'}: digits-c (embedded) in place of mnist-c, the preset's "
             f"other settings kept")
    config = load_preset(end_to_end.PRESET).updated(seeds=end_to_end.SEEDS, out=str(scratch / "e2e"), data_dir=str(data),
                                                    device=str(device), **changes)
    measured = end_to_end.measure(config)
    full, baseline, parts = measured["full"], measured["baseline"], measured["parts"]
    what = f"{config.dataset}, {config.model}, {config.epochs} epochs, seed {config.seeds[0]}"
    figure("c", f"end to end / training alone, {what}", full / baseline, "x")
    figure("c", "end to end / the run's own training time", full / parts["train"], "x")
    figure("c", "bench run", full, "s")
    figure("c", "training alone", baseline, "s")
    figure("c", "bench run: training", parts["train"], "s")
    figure("c", "bench run: probe at the checkpoints", parts["probe"], "s")
    figure("c", "bench run: detectors and final scores", parts["finish"], "s")
    note(f"data and tasks: {full - sum(parts.values()):.1f} s; {len(config.scorers)} scorer specs in the config")
    failures = {spec: error for table in measured["result"].tables for spec, error in table.meta["failures"].items()}
    if failures:
        raise RuntimeError(f"scorers failed in the run: {failures}")


def part_d(device: torch.device, tiny: bool, model_name: str, scratch: Path) -> None:
    from benchmarks import seeds_at_once

    n = TINY_SEEDS_IMAGES if tiny else SEEDS_IMAGES
    seconds = seeds_at_once.measure(device, n)
    what = f"{seeds_at_once.SEEDS} LeNets, one epoch of {n} images, batch {seeds_at_once.BATCH}"
    figure("d", f"{what}, one after another", seconds["one after another"], "s")
    figure("d", f"{what}, together (stack_module_state + vmap)", seconds["together"], "s")
    figure("d", "seeds at once, one after another / together", seconds["one after another"] / seconds["together"], "x")
    note(f"largest difference between the trained weights of the two ways: {seconds['difference']:.1e}")


def part_e(device: torch.device, tiny: bool, model_name: str, scratch: Path, data_dir: Path) -> None:
    from bench import runner
    from bench.config import load_preset

    changes: dict = {"seeds": [0], "out": str(scratch / "cifar10"), "device": str(device)}
    if tiny:
        changes |= TINY_CIFAR
        note("tiny: patches (embedded) with textures as OoD, resnet20, 1 epoch, a few scorers")
    elif all((data_dir / name).is_dir() for name in CIFAR_DATA):
        data = scratch / "data"
        data.mkdir()
        for name in CIFAR_DATA:  # links: read where they are, the generated CIFAR-10-C written here
            (data / name).symlink_to((data_dir / name).resolve())
        changes["data_dir"] = str(data)
    else:
        note(f"skipped: {', '.join(f'{name}/' for name in CIFAR_DATA)} not all in {data_dir}")
        return
    config = load_preset("cifar10").updated(**changes)
    started = time.perf_counter()
    result = runner.run(config, progress=False)
    total = time.perf_counter() - started
    [table] = result.tables
    what = f"{config.dataset}, {config.model}, {config.epochs} epochs, seed 0"
    figure("e", f"bench run, {what}", total, "s")
    for part, label in (("train", "training"), ("probe", "probe at the checkpoints"),
                        ("finish", "detectors and final scores")):
        figure("e", f"bench run: {label}", table.meta["seconds"][part], "s")
    figure("e", "clean test accuracy", table.meta["accuracy"]["test"], "fraction")
    note(f"{sum(len(split['id']) for split in table.splits.values())} examples scored; data and tasks: "
         f"{total - sum(table.meta['seconds'][part] for part in ('train', 'probe', 'finish')):.1f} s")
    if table.meta["failures"]:
        raise RuntimeError(f"scorers failed in the run: {table.meta['failures']}")


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    threads = torch.get_num_threads()
    return f"cpu, {threads} thread{'s' if threads != 1 else ''}"


def main(argv: list[str] | None = None) -> int:
    global device_label
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="a torch device (default: cuda)")
    parser.add_argument("--tiny", action="store_true", help="smoke-test sizes (also BENCH_TINY=1)")
    parser.add_argument("--parts", default="abcde", help="which parts, in order (default: abcde)")
    parser.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data"),
                        help="the folder holding mnist/, cifar10/ and cifar100/ (default: ../shared/data beside the "
                             "repository)")
    parser.add_argument("--scratch", default="", help="a folder for everything written (default: a new temporary "
                                                      "folder, removed at the end)")
    args = parser.parse_args(argv)
    if unknown := sorted(set(args.parts) - set(PARTS)):
        parser.error(f"unknown part {', '.join(unknown)}; parts: {', '.join(PARTS)}")
    if args.tiny:
        os.environ["BENCH_TINY"] = "1"
    from benchmarks.common import tiny as tiny_sizes

    tiny = tiny_sizes()
    from bench.models import resolve_device

    device = resolve_device(args.device)
    if tiny and device.type == "cpu":  # on a small shared machine, threads waiting on each other dwarf tiny work
        torch.set_num_threads(1)
    device_label = describe(device)
    model = "resnet20" if tiny else "resnet18"
    print(f"device: {device_label} ({device}); torch {torch.__version__}, CUDA {torch.version.cuda}, "
          f"{torch.get_num_threads()} CPU threads; sizes: {'tiny (resnet20 for resnet18)' if tiny else 'full'}", flush=True)
    own_scratch = not args.scratch
    scratch = Path(tempfile.mkdtemp(prefix="bench-gpu-") if own_scratch else args.scratch)
    failed = []
    try:
        ensure_installed(scratch)
        for part in args.parts:
            print(f"== ({part}) {PARTS[part]}", flush=True)
            started = time.perf_counter()
            folder = scratch / f"part-{part}"
            folder.mkdir()
            try:
                if part in "ce":
                    {"c": part_c, "e": part_e}[part](device, tiny, model, folder, Path(args.data_dir))
                else:
                    {"a": part_a, "b": part_b, "d": part_d}[part](device, tiny, model, folder)
            except Exception:
                traceback.print_exc()
                print(f"({part}) FAILED", flush=True)
                failed.append(part)
            note(f"part ({part}) took {time.perf_counter() - started:.1f} s of wall time")
            if device.type == "cuda":
                note(f"peak GPU memory so far: {torch.cuda.max_memory_allocated(device) / 2**30:.1f} GiB")
    finally:
        if own_scratch:
            shutil.rmtree(scratch, ignore_errors=True)
    if failed:
        print(f"FAILED: part(s) {', '.join(failed)}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

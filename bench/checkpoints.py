"""Checkpoints a user trained: read from disk into the states and schedule the probe reads.

A source is one training run's checkpoints, given as

* a folder: its ``checkpoints.json`` manifest if it has one, else every checkpoint file in it;
* a manifest, ``checkpoints.json`` (what ``bench.recorder`` writes)::

      {"checkpoints": [{"file": "epoch=0.pt", "epoch": 0, "step": 0, "lr": 0.1}, ...]}

  ``file`` relative to the manifest, ``epoch`` (epochs of training done, a fraction in mid-epoch)
  required, ``step`` and ``lr`` (that of the steps just before) optional, listed in training order;
* a glob (``runs/a/*.pt``) or a single file (one checkpoint: the final or a pretrained model).

Files: ``.pt``, ``.pth``, ``.bin`` and Lightning's ``.ckpt`` read by ``torch.load(weights_only=True)``
(no code in the file runs), ``.safetensors`` by the safetensors package. The state dict is the
file itself when every value is a tensor, else its ``state_dict`` (Lightning), ``model_state_dict``
or ``model`` entry.

Without a manifest each file's epoch comes from its name, ``epoch=3``, ``epoch_3``, ``epoch-3`` or
``epoch3`` meaning 3 epochs done, except that Lightning counts from 0 the epoch it saves at the end
of: a ``.ckpt`` named ``epoch=3`` holds 4 epochs of training (checkpoints saved in mid-epoch need a
manifest). A single file needs no number; it is the final model (its epoch unknown, None). The
learning rate, without a manifest, is that of a Lightning ``.ckpt``'s first optimizer, else unknown.

A source's identity is the SHA-256 of its files' bytes with their epochs, steps and rates: the
same checkpoints give the same unit wherever they lie.
"""

from __future__ import annotations

import glob
import hashlib
import json
import math
import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bench.api import Checkpoint
from bench.errors import BenchError
from bench.models import Normalized, Wrapped

MANIFEST = "checkpoints.json"
SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".safetensors")
NESTED_STATE = ("state_dict", "model_state_dict", "model")  # where a training checkpoint keeps the model's weights
EPOCH_IN_NAME = re.compile(r"(?:^|[^a-z])epoch[=_-]?(\d+(?:\.\d+)?)", re.IGNORECASE)


@dataclass(frozen=True)
class CheckpointFile:
    path: Path
    epoch: int | float | None  # epochs of training done; None for a lone final model of unknown epoch
    step: int | None = None
    lr: float | None = None


@dataclass(frozen=True)
class CheckpointSource:
    """One training run's checkpoints, in training order, and their content digest."""

    files: tuple[CheckpointFile, ...]
    digest: str

    def schedule(self) -> list[Checkpoint]:
        return [Checkpoint(index=index, epoch=file.epoch, total=len(self.files), lr=file.lr)
                for index, file in enumerate(self.files)]

    def record(self) -> dict[str, Any]:
        """What a unit's meta keeps of them, in place of the harness's training record."""
        return {"checkpoint_epochs": [file.epoch for file in self.files], "final_train_loss": None,
                "checkpoints": {"digest": self.digest, "files": [str(file.path) for file in self.files],
                                "steps": [file.step for file in self.files], "lrs": [file.lr for file in self.files]}}


def find_checkpoints(source: str | Path) -> CheckpointSource:
    """The checkpoint files ``source`` names (see the module's docstring), checked and digested; their tensors are
    read later, one file at a time (``load_state``)."""
    text = str(source)
    path = Path(text)
    if path.is_dir():
        files = from_manifest(path / MANIFEST) if (path / MANIFEST).is_file() else from_names(
            sorted(p for p in path.iterdir() if p.suffix in SUFFIXES), f"folder {path}")
    elif path.suffix == ".json" and path.is_file():
        files = from_manifest(path)
    elif glob.has_magic(text):
        files = from_names(sorted(Path(p) for p in glob.glob(text) if Path(p).suffix in SUFFIXES), f"glob {text!r}")
    elif path.is_file():
        files = from_names([path], f"file {path}")
    else:
        raise BenchError(f"checkpoints {text!r}: no such file or folder; give a folder of checkpoint files, a "
                         f"{MANIFEST} manifest, a glob such as 'run/*.pt', or one file")
    return CheckpointSource(tuple(files), content_digest(files))


def from_manifest(manifest: Path) -> list[CheckpointFile]:
    """The files a ``checkpoints.json`` lists, with their epochs, steps and rates, in its order (which must be
    training order)."""
    try:
        entries = json.loads(manifest.read_text())["checkpoints"]
        files = [CheckpointFile(manifest.parent / entry["file"], as_epoch(entry["epoch"]),
                                None if entry.get("step") is None else int(entry["step"]),
                                None if entry.get("lr") is None else float(entry["lr"])) for entry in entries]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise BenchError(f"checkpoint manifest {manifest} is not readable ({type(error).__name__}: {error}); it must "
                         'be JSON: {"checkpoints": [{"file": "epoch=1.pt", "epoch": 1, "step": 390, "lr": 0.1}, ...]}, '
                         "each entry with a file and an epoch") from None
    if not files:
        raise BenchError(f"checkpoint manifest {manifest} lists no checkpoint; list at least one")
    for file in files:
        if not file.path.is_file():
            raise BenchError(f"checkpoint manifest {manifest} lists {file.path.name}, which does not exist")
    check_order(files, f"manifest {manifest}", "list them in training order")
    return files


def from_names(paths: list[Path], where: str) -> list[CheckpointFile]:
    """``paths`` in epoch order, each epoch read from its name (see the module's docstring); ``where``: the source,
    for the errors."""
    if not paths:
        raise BenchError(f"checkpoints: {where} holds no checkpoint file ({', '.join(SUFFIXES)}); give the folder or "
                         f"glob the files are in, or a {MANIFEST} manifest")
    if len(paths) == 1 and not EPOCH_IN_NAME.search(paths[0].stem):
        return [CheckpointFile(paths[0], None, lr=lightning_lr(paths[0]))]
    files = []
    for path in paths:
        found = EPOCH_IN_NAME.search(path.stem)
        if found is None:
            raise BenchError(f"checkpoint {path}: its name carries no epoch (as epoch=3.pt), and {where} holds "
                             f"{len(paths)} files; rename them, or write a {MANIFEST} manifest giving each file's epoch")
        epoch = as_epoch(found.group(1)) + (1 if path.suffix == ".ckpt" else 0)  # Lightning's epoch counts from 0
        files.append(CheckpointFile(path, epoch, lr=lightning_lr(path)))
    files.sort(key=lambda file: file.epoch)
    check_order(files, where, f"keep one checkpoint per epoch, or write a {MANIFEST} manifest")
    return files


def as_epoch(value: Any) -> int | float:
    """An epoch as the harness's own checkpoints carry it: an int when whole (3, not 3.0)."""
    epoch = float(value)
    if not math.isfinite(epoch) or epoch < 0:
        raise ValueError(f"epoch {value!r} is not a number of epochs done (0 or more)")
    return int(epoch) if epoch.is_integer() else epoch


def check_order(files: list[CheckpointFile], where: str, fix: str) -> None:
    for before, after in zip(files, files[1:]):
        if after.epoch <= before.epoch:
            how = "the same epoch" if after.epoch == before.epoch else "epochs out of order"
            raise BenchError(f"checkpoints in {where}: {before.path.name} and {after.path.name} have {how} "
                             f"({before.epoch:g} and {after.epoch:g}); {fix}")


def content_digest(files: list[CheckpointFile]) -> str:
    """SHA-256 of each file's bytes, epoch, step and rate, in order (the files read in 1 MiB blocks)."""
    total = hashlib.sha256()
    for file in files:
        with open(file.path, "rb") as handle:
            content = hashlib.file_digest(handle, "sha256").hexdigest()
        total.update(json.dumps([content, file.epoch, file.step, file.lr]).encode())
    return total.hexdigest()[:16]


def read_file(path: Path) -> Any:
    """A checkpoint file's content, loaded without running any of its code."""
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError:
            raise BenchError(f"checkpoint {path} is a safetensors file; install the safetensors package "
                             "(pip install safetensors) to read it") from None
        return load_file(path, device="cpu")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        first = str(error).strip().splitlines()[0]
        raise BenchError(f"checkpoint {path} holds objects other than tensors and plain containers, which "
                         f"torch.load(weights_only=True) refuses to unpickle ({first}); save the weights alone, "
                         "torch.save(model.state_dict(), path), or as safetensors") from None
    except (RuntimeError, OSError, EOFError) as error:
        raise BenchError(f"checkpoint {path} is not a readable torch file ({type(error).__name__}: {error}); save it "
                         "with torch.save(model.state_dict(), path)") from None


def state_dict_of(content: Any, path: Path) -> dict[str, torch.Tensor]:
    """The model's weights in a checkpoint file's content (see the module's docstring)."""
    if isinstance(content, dict) and content and all(isinstance(v, torch.Tensor) for v in content.values()):
        return content
    if isinstance(content, dict):
        for key in NESTED_STATE:
            if key in content:
                return state_dict_of(content[key], path)
    shown = ", ".join(map(repr, list(content)[:8])) if isinstance(content, dict) else type(content).__name__
    raise BenchError(f"checkpoint {path} holds no state dict of tensors (found {shown}); save model.state_dict(), or "
                     f"a dict with it under one of {', '.join(NESTED_STATE)}")


def lightning_lr(path: Path) -> float | None:
    """A Lightning ``.ckpt``'s learning rate (its first optimizer's first group), else None; read only for ``.ckpt``."""
    if path.suffix != ".ckpt":
        return None
    content = read_file(path)
    try:
        lr = float(content["optimizer_states"][0]["param_groups"][0]["lr"])
    except (KeyError, IndexError, TypeError, ValueError):
        return None
    return lr if math.isfinite(lr) else None


def matched(state: dict[str, torch.Tensor], target: dict[str, torch.Tensor],
            path: Path) -> dict[str, torch.Tensor] | None:
    """``state`` keyed as ``target`` (a state dict): as it is, or without a prefix every key shares (``model.`` of
    a LightningModule holding the network, ``module.`` of DataParallel); None if neither fits. Shapes are checked."""
    candidates = [state]
    first = {key.split(".", 1)[0] for key in state}
    if len(first) == 1 and all("." in key for key in state):
        prefix = f"{first.pop()}."
        candidates.append({key[len(prefix):]: value for key, value in state.items()})
    for candidate in candidates:
        if candidate.keys() == target.keys():
            wrong = [f"{key} {tuple(value.shape)} (the model's: {tuple(target[key].shape)})"
                     for key, value in candidate.items() if value.shape != target[key].shape]
            if wrong:
                raise BenchError(f"checkpoint {path} does not fit the model: shapes differ at {', '.join(wrong[:3])}"
                                 f"{' and more' if len(wrong) > 3 else ''}; give the model factory that built the "
                                 "network these weights were trained in")
            return candidate
    return None


def networks(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``model`` and the networks inside the harness's wrappers (the standardisation of ``normalize``, the wrapper of
    a user's network), outermost first, each with the prefix of its keys in ``model``'s state dict."""
    found, prefix = [("", model)], ""
    while isinstance(model, (Normalized, Wrapped)):
        name = "model" if isinstance(model, Normalized) else "network"
        model, prefix = getattr(model, name), f"{prefix}{name}."
        found.append((prefix, model))
    return found


def load_state(file: CheckpointFile, model: nn.Module) -> dict[str, torch.Tensor]:
    """The weights of ``file`` as a state dict of ``model``: saved from ``model`` itself or from the network inside
    the harness's wrappers (``networks``), whose other entries (the standardisation's statistics) keep ``model``'s."""
    state = state_dict_of(read_file(file.path), file.path)
    full = model.state_dict()
    for prefix, network in networks(model):
        if (found := matched(state, network.state_dict(), file.path)) is not None:
            return {**{key: value.clone() for key, value in full.items()},
                    **{prefix + key: value.to(full[prefix + key].dtype) for key, value in found.items()}}
    target = networks(model)[-1][1].state_dict()
    missing, unexpected = sorted(target.keys() - state.keys()), sorted(state.keys() - target.keys())
    shown = [f"{what} {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
             for what, keys in (("missing", missing), ("unexpected", unexpected)) if keys]
    raise BenchError(f"checkpoint {file.path} does not fit the model: {'; '.join(shown)} keys ({len(missing)} "
                     f"missing, {len(unexpected)} unexpected); give the model factory that built the network these "
                     "weights were trained in")

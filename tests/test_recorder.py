"""The recorder in a user's own training loop: the harness's recipe trained by a plain loop with it scores bit for bit as
the harness's own training does, and a Lightning run with its callback scores end to end."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional

from bench.config import RunConfig
from bench.data import load_dataset
from bench.errors import BenchError
from bench.executors import cpu_threads
from bench.models import build_model
from bench.recorder import Recorder, huggingface_recorder, lightning_recorder
from bench.runner import run
from bench.training import model_input

RECIPE = dict(model="mlp", epochs=3, batch_size=64, lr=0.05, momentum=0.9, weight_decay=5e-4, checkpoint_at_init=True)
SCORERS = ["vog", "loss", "forgetting", "tracin", "grand[epoch=0]", "max-softmax", "knn"]
SEED = 3


def test_a_plain_loop_with_the_recorder_scores_bit_for_bit_as_the_harness_trains(tmp_path):
    """The harness's recipe (SGD with momentum and weight decay, constant rate, batches in the order its generator
    draws) written as a user would write it, recorded, then scored: every score equals the harness's own run's."""
    settings = dict(dataset="digits-c", corruptions=["fog"], scorers=SCORERS, seeds=[SEED], threads=1)
    harness = run(RunConfig(**settings, **RECIPE, out=str(tmp_path / "harness")), progress=False).tables[0]

    data = load_dataset("digits-c", None, ["fog"])
    inputs, labels = torch.as_tensor(data.train.inputs), torch.as_tensor(data.train.labels)
    torch.manual_seed(SEED)
    model = build_model("mlp", data.input_shape, data.n_classes)
    optimizer = torch.optim.SGD(model.parameters(), lr=RECIPE["lr"], momentum=RECIPE["momentum"],
                                weight_decay=RECIPE["weight_decay"])
    generator = torch.Generator().manual_seed(SEED)
    recorder = Recorder(tmp_path / "mine", model, optimizer)
    with cpu_threads(1):  # the run's threads: sums over other thread counts differ in the last bits
        for _ in range(RECIPE["epochs"]):
            for batch in torch.randperm(len(labels), generator=generator).split(RECIPE["batch_size"]):
                loss = functional.cross_entropy(model(model_input(inputs[batch], data.input_shape)), labels[batch])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                recorder.step()
            recorder.end_epoch()
    mine = run(RunConfig(**settings, model="mlp", checkpoints=[str(tmp_path / "mine")],
                         out=str(tmp_path / "scored")), progress=False).tables[0]

    assert set(mine.scorers) == set(harness.scorers) == set(SCORERS)
    for split, columns in harness.splits.items():
        for column, values in columns.items():
            np.testing.assert_array_equal(mine.splits[split][column], values, err_msg=f"{split} {column}")
    steps = len(range(0, len(labels), RECIPE["batch_size"]))
    manifest = json.loads((tmp_path / "mine" / "checkpoints.json").read_text())["checkpoints"]
    assert [(e["epoch"], e["step"], e["lr"]) for e in manifest] == [(e, e * steps, RECIPE["lr"]) for e in range(4)]


def test_a_recorder_keeps_the_rate_each_step_used_not_the_next(tmp_path):
    """With a scheduler stepped after the recorder, each checkpoint carries the rate of the steps just before it, as the
    harness's do; the untrained model carries the first step's."""
    model = nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    recorder = Recorder(tmp_path / "run", model, optimizer, every=2)
    for _ in range(4):
        optimizer.step()
        recorder.step()
        scheduler.step()
        recorder.end_epoch()
    manifest = json.loads((tmp_path / "run" / "checkpoints.json").read_text())["checkpoints"]
    assert [(e["file"], e["epoch"], e["lr"]) for e in manifest] == [
        ("epoch=0.pt", 0, 1.0), ("epoch=2.pt", 2, 0.5), ("epoch=4.pt", 4, 0.125)]


def test_a_recorder_refuses_a_folder_that_holds_a_run_and_an_every_below_one(tmp_path):
    model = nn.Linear(2, 2)
    Recorder(tmp_path / "run", model)
    with pytest.raises(BenchError, match="checkpoints.json exists"):
        Recorder(tmp_path / "run", model)
    with pytest.raises(BenchError, match="every 1 epoch or more"):
        Recorder(tmp_path / "other", model, every=0)


def small_network(input_shape: tuple[int, ...], n_classes: int) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(int(np.prod(input_shape)), 16), nn.ReLU(), nn.Linear(16, n_classes))


@pytest.fixture
def hidden_torchvision(monkeypatch):
    """torchvision hidden: the registry's build (pytorch-ood's dependency) is a CUDA one that cannot load against the
    CPU torch, and Lightning's torchmetrics and transformers import it whenever its metadata says it is installed."""
    import importlib.metadata

    installed = importlib.metadata.version

    def version(name: str) -> str:
        if name == "torchvision":
            raise importlib.metadata.PackageNotFoundError(name)
        return installed(name)

    monkeypatch.setattr(importlib.metadata, "version", version)
    monkeypatch.setitem(sys.modules, "torchvision", None)


@pytest.fixture
def lightning(hidden_torchvision):
    return pytest.importorskip("lightning.pytorch")


@pytest.fixture
def transformers(hidden_torchvision, monkeypatch):
    transformers = pytest.importorskip("transformers")
    from transformers import trainer

    # this project's data root, datasets/, is found as a namespace package named datasets, which transformers takes
    # for the Hugging Face package
    monkeypatch.setattr(trainer, "is_datasets_available", lambda: False)
    return transformers


def test_a_lightning_run_with_the_callback_scores_end_to_end(tmp_path, lightning):
    """A LightningModule holding the network as ``self.model``, trained by Lightning's Trainer with the callback; the
    checkpoints it records score, the network's own final predictions are the unit's, and the one-cycle rates of
    the steps before each checkpoint are in the manifest."""
    data = load_dataset("digits-c", None, ())
    inputs = model_input(torch.as_tensor(data.train.inputs), data.input_shape)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(inputs, torch.as_tensor(data.train.labels)),
                                         batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(0))

    class Module(lightning.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.model = small_network(data.input_shape, data.n_classes)

        def training_step(self, batch, index):
            x, y = batch
            return functional.cross_entropy(self.model(x), y)

        def configure_optimizers(self):
            optimizer = torch.optim.SGD(self.parameters(), lr=0.1)
            schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.1, total_steps=3 * len(loader))
            return [optimizer], [{"scheduler": schedule, "interval": "step"}]

    torch.manual_seed(0)
    module = Module()
    rates = []
    module.on_before_optimizer_step = lambda optimizer: rates.append(optimizer.param_groups[0]["lr"])
    trainer = lightning.Trainer(max_epochs=3, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                                enable_progress_bar=False, enable_model_summary=False,
                                callbacks=[lightning_recorder(tmp_path / "run")])
    trainer.fit(module, loader)
    manifest = json.loads((tmp_path / "run" / "checkpoints.json").read_text())["checkpoints"]
    assert [(e["epoch"], e["step"]) for e in manifest] == [(e, e * len(loader)) for e in range(4)]
    assert [e["lr"] for e in manifest[1:]] == [rates[e * len(loader) - 1] for e in (1, 2, 3)]

    factory = f"{__file__}:small_network"
    table = run(RunConfig(dataset="digits-c", corruptions=[], model=factory, checkpoints=[str(tmp_path / "run")],
                          scorers=["vog", "tracin", "max-softmax"], seeds=[0], out=str(tmp_path / "out")),
                progress=False).tables[0]
    assert set(table.scorers) == {"vog", "tracin", "max-softmax"}
    with torch.no_grad():
        expected = module.model(model_input(torch.as_tensor(data.test.inputs), data.input_shape)).argmax(1).numpy()
    np.testing.assert_array_equal(table.splits["test"]["pred"], expected)


def test_a_hugging_face_trainer_with_the_callback_scores_end_to_end(tmp_path, transformers):
    """A model holding the network as ``self.net`` and returning its loss, trained by the Hugging Face Trainer with the
    callback (linear decay of the rate); the checkpoints score, with the rates of the steps before each."""
    data = load_dataset("digits-c", None, ())
    inputs = model_input(torch.as_tensor(data.train.inputs), data.input_shape)
    examples = [{"x": x, "labels": int(y)} for x, y in zip(inputs, data.train.labels)]

    class Model(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = small_network(data.input_shape, data.n_classes)

        def forward(self, x, labels=None):
            logits = self.net(x)
            return {"loss": functional.cross_entropy(logits, labels), "logits": logits}

    torch.manual_seed(0)
    model = Model()
    rates = []
    arguments = transformers.TrainingArguments(
        output_dir=str(tmp_path / "hf"), num_train_epochs=3, per_device_train_batch_size=64, learning_rate=0.1,
        lr_scheduler_type="linear", report_to=[], save_strategy="no", logging_strategy="no", use_cpu=True,
        dataloader_num_workers=0, seed=0)

    class Rates(transformers.TrainerCallback):
        def on_optimizer_step(self, args, state, control, optimizer=None, **kwargs):
            rates.append(optimizer.param_groups[0]["lr"])

    transformers.Trainer(model=model, args=arguments, train_dataset=examples,
                         callbacks=[huggingface_recorder(tmp_path / "run"), Rates()]).train()
    steps = -(-len(examples) // 64)
    manifest = json.loads((tmp_path / "run" / "checkpoints.json").read_text())["checkpoints"]
    assert [(e["epoch"], e["step"]) for e in manifest] == [(e, e * steps) for e in range(4)]
    assert [e["lr"] for e in manifest[1:]] == [rates[e * steps - 1] for e in (1, 2, 3)]
    table = run(RunConfig(dataset="digits-c", corruptions=[], model=f"{__file__}:small_network",
                          checkpoints=[str(tmp_path / "run")], scorers=["vog", "tracin"], seeds=[0],
                          out=str(tmp_path / "out")), progress=False).tables[0]
    assert set(table.scorers) == {"vog", "tracin"}
    with torch.no_grad():
        expected = model.net(model_input(torch.as_tensor(data.test.inputs), data.input_shape)).argmax(1).numpy()
    np.testing.assert_array_equal(table.splits["test"]["pred"], expected)

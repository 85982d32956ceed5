"""Data larger than memory: an ``npy:`` folder read a batch at a time from its files (``bench.data.filerows``,
``bench.training.StreamedInputs``), and running states that go to disk when they would not fit
(``bench.reductions.disk_zeros``, by the rule of ``MEMORY_SHARE``)."""

import copy
import pickle
import tempfile

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bench import reductions, registry
from bench.cli import main
from bench.config import Recipe
from bench.data import load_dataset
from bench.data.filerows import FileRows
from bench.errors import BenchError
from bench.models import PoolNet
from bench.probe import Probe, ProbeSplit
from bench.reductions import Accumulator
from bench.store import ScoreTable
from bench.training import StreamedInputs, device_inputs, train


@settings(max_examples=40, deadline=None)
@given(data=st.data(), n=st.integers(1, 30), dtype=st.sampled_from([np.uint8, np.float32]),
       row=st.sampled_from([(3,), (2, 4), (3, 2, 2)]))
def test_file_rows_give_what_numpy_indexing_of_the_array_gives(tmp_path_factory, data, n, dtype, row):
    """Slices (with steps), positions in any order with repeats, and views of views (``take``), against the array in
    memory."""
    array = np.arange(n * int(np.prod(row)), dtype=np.int64).reshape(n, *row).astype(dtype)
    path = tmp_path_factory.mktemp("rows") / "a.npy"
    np.save(path, array)
    rows = FileRows.of(np.load(path, mmap_mode="r"))
    start, stop = data.draw(st.integers(-n, n)), data.draw(st.integers(-n, n))
    step = data.draw(st.sampled_from([1, 2, 3, -1]))
    np.testing.assert_array_equal(rows[start:stop:step], array[start:stop:step])
    positions = np.array(data.draw(st.lists(st.integers(0, n - 1), max_size=12)), dtype=np.int64)
    np.testing.assert_array_equal(rows[positions], array[positions])
    view = data.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=8))
    inner = np.array(data.draw(st.lists(st.integers(0, len(view) - 1), max_size=8)), dtype=np.int64)
    np.testing.assert_array_equal(rows.take(np.array(view))[inner], array[view][inner])
    assert len(rows.take(np.array(view))) == len(view)


def test_only_a_whole_file_memory_mapped_is_read_from_its_file(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((4, 3), np.uint8))
    mapped = np.load(tmp_path / "a.npy", mmap_mode="r")
    assert isinstance(device_inputs(mapped, torch.device("cpu")), StreamedInputs)
    assert FileRows.of(mapped[1:]) is None  # a slice's offset is not its own
    in_memory = np.load(tmp_path / "a.npy")
    assert FileRows.of(in_memory) is None and isinstance(device_inputs(in_memory, torch.device("cpu")), torch.Tensor)


def test_streamed_inputs_travel_as_their_file_not_their_pixels(tmp_path):
    """What a Ray shard task is sent of an npy: split: the path and the rows, a few hundred bytes for 3 MiB, and for
    a view of every other row, no more than the positions it holds."""
    np.save(tmp_path / "a.npy", np.zeros((1024, 3, 32, 32), np.uint8))
    inputs = device_inputs(np.load(tmp_path / "a.npy", mmap_mode="r"), torch.device("cpu"))
    view = inputs.take(np.arange(0, 1024, 2))
    assert len(pickle.dumps(inputs)) < 1000
    assert len(pickle.dumps(view)) < 1000 + view.rows.index.nbytes
    assert view.rows.path == str(tmp_path / "a.npy")


def write_folder(folder, arrays):
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        np.save(folder / f"{name}.npy", array)


def digits_arrays():
    dataset = load_dataset("digits-c")
    return {"x_train": dataset.train.inputs, "y_train": dataset.train.labels,
            "x_test": dataset.test.inputs, "y_test": dataset.test.labels}


def test_an_npy_folder_scores_as_the_same_arrays_in_an_npz_bit_for_bit(tmp_path):
    """The embedded digits as an npz (read into memory) and as an npy folder (trained on and probed a batch at a time
    from its files, in 2 shards): every column of every split equal. The folder is found in the data root."""
    arrays = digits_arrays()
    np.savez(tmp_path / "digits.npz", **arrays)
    write_folder(tmp_path / "root" / "digits", arrays)
    common = ["run", "--scorers", "vog,loss,forgetting,grand,knn", "--seeds", "1", "--epochs", "2",
              "--checkpoint-at-init", "--no-progress", "--threads", "1", "--device", "cpu"]
    assert main([*common, "--dataset", f"npz:{tmp_path / 'digits.npz'}", "--out", str(tmp_path / "npz")]) == 0
    assert main([*common, "--dataset", "npy:digits", "--data-dir", str(tmp_path / "root"), "--shards", "2",
                 "--out", str(tmp_path / "npy")]) == 0
    in_memory, streamed = (ScoreTable.load(next((tmp_path / name / "units").glob("*.npz"))).splits
                           for name in ("npz", "npy"))
    assert in_memory.keys() == streamed.keys()
    for split, columns in in_memory.items():
        assert columns.keys() == streamed[split].keys() and "vog" in columns
        for column, values in columns.items():
            np.testing.assert_array_equal(streamed[split][column], values, err_msg=f"{split} {column}")


@pytest.mark.parametrize("change, message", [
    (lambda a: a.pop("y_test"), "has no y_test.npy"),
    (lambda a: a.update(x_train=a["x_train"][..., None].repeat(3, -1)), "x.transpose(0, 3, 1, 2)"),
    (lambda a: a.update(x_test=a["x_test"].astype(np.int64)), "int64 images"),
    (lambda a: a.update(x_test=np.full(a["x_test"].shape, np.nan, np.float32), x_train=a["x_train"] / np.float32(255)),
     "x_test.npy holds NaN"),
    (lambda a: a.update(ood_far=a["x_test"][:, :20]), "differ in shape"),
    (lambda a: a.update(ood_far_labels=a["y_test"]), "ood_far_labels.npy but no ood_far.npy"),
    (lambda a: a.update(y_test=a["y_test"][:-1]), "y_test.npy has shape"),
])
def test_a_folder_bench_cannot_read_as_it_is_stored_is_refused_with_the_fix(tmp_path, change, message):
    arrays = digits_arrays()
    change(arrays)
    write_folder(tmp_path / "bad", arrays)
    with pytest.raises(BenchError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_dataset(f"npy:{tmp_path / 'bad'}")


def test_a_missing_folder_names_the_roots_searched(tmp_path):
    with pytest.raises(BenchError, match="nor in the data roots"):
        load_dataset("npy:nowhere", data_dir=tmp_path)


def test_a_state_goes_to_disk_when_it_would_take_more_than_half_the_memory_available(monkeypatch):
    """A std state of 10 rows of 5 float64: 2 arrays of 400 bytes, 800 in all; on disk exactly when that is more
    than half the memory available."""
    for available, on_disk in ((1600, False), (1599, True)):
        monkeypatch.setattr(reductions, "available_memory", lambda device: available)
        accumulator = Accumulator("std", 10)
        accumulator.update(torch.arange(10), torch.ones(10, 5), 0)
        assert accumulator.on_disk is on_disk
        assert all(isinstance(t, torch.Tensor) and t.shape == (10, 5) for t in accumulator.state.values())


def test_a_probe_whose_states_are_all_on_disk_gives_the_table_in_memory_bit_for_bit(monkeypatch, tmp_path):
    """poolnet (batch norm) over random CIFAR-shaped images, every reduction: with no memory to spare, each state is
    a file (counted), the arithmetic is the same, and no file is left in TMPDIR."""
    generator = torch.Generator().manual_seed(0)
    images, labels = torch.rand(60, 3, 32, 32, generator=generator), torch.randint(0, 3, (60,), generator=generator)
    torch.manual_seed(0)
    model = PoolNet((3, 32, 32), 3)
    recipe = Recipe(epochs=2, batch_size=16, lr=0.05, checkpoint_every=1, checkpoint_at_init=True)
    checkpoints = [(checkpoint, copy.deepcopy(model.state_dict()))
                   for checkpoint in train(model, images[:40], labels[:40], recipe, generator, (3, 32, 32))]
    specs = ["vog", "vog[window=all]", "loss", "forgetting", "aum", "tracin", "el2n", "grand[epoch=0]"]

    def table():
        splits = {"train": ProbeSplit(images[:40], labels[:40], trusted_labels=True),
                  "test": ProbeSplit(images[40:], labels[40:], trusted_labels=False)}
        probe = Probe(splits, [registry.create(spec) for spec in specs], (3, 32, 32), batch_size=16)
        result = probe.run(model, checkpoints)
        assert not probe.failures
        return result

    in_memory = table()
    made, disk_zeros = [], reductions.disk_zeros
    monkeypatch.setattr(reductions, "available_memory", lambda device: 0)
    monkeypatch.setattr(reductions, "disk_zeros", lambda *shape_dtype: made.append(shape_dtype) or disk_zeros(*shape_dtype))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    on_disk = table()
    assert len(made) >= 2 * len(specs)  # every state of both splits (the std's two arrays each)
    assert not list(tmp_path.iterdir())
    for split, columns in in_memory.items():
        for column, values in columns.items():
            np.testing.assert_array_equal(on_disk[split][column], values, err_msg=f"{split} {column}")



@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_a_gpu_a_state_on_disk_takes_the_values_and_positions_to_the_host(monkeypatch):
    """Values and positions on the GPU, the state in a file: the std of 4 checkpoints as the GPU's own state gives
    it (float64; to rounding, as the two processors may round differently)."""
    values = torch.randn(4, 8, 10, 7, dtype=torch.float64, device="cuda", generator=torch.Generator("cuda").manual_seed(0))
    results = []
    for available in (None, 0):
        if available is not None:
            monkeypatch.setattr(reductions, "available_memory", lambda device: available)
        accumulator = Accumulator("std", 8)
        for checkpoint in range(4):
            for start in (0, 4):
                index = torch.arange(start, start + 4, device="cuda")
                accumulator.update(index, values[checkpoint, start:start + 4], checkpoint)
        assert accumulator.on_disk is (available is not None)
        results.append(accumulator.result())
    np.testing.assert_allclose(results[1], results[0], rtol=1e-12)

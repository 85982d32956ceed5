"""Bad input a new user gives the data layer, each named after what broke: refused in one line with the fix."""

import dataclasses
import errno
import os
import signal
import struct
import subprocess
import sys
import tarfile
import tempfile
import textwrap
import warnings

import numpy as np
import pytest
from PIL import Image

from bench.cli import main
from bench.config import RunConfig
from bench.data import Split, load_dataset
from bench.data.arrays import from_arrays
from bench.data.cifar import CIFAR10, PIXELS, read_cifar
from bench.data.colour import COLOUR_CORRUPTIONS, corrupt_colour
from bench.data.corrupted import corrupted_splits, generated_folder
from bench.data.corruptions import CORRUPTIONS, corrupt
from bench.errors import BenchError
from bench.files import temporary_prefix, write_atomically
from bench.store import ScoreTable

QUICK_RUN = ["--model", "mlp", "--scorers", "loss", "--seeds", "1", "--epochs", "1", "--bootstrap-resamples", "0",
             "--no-progress"]


def pixels(*shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def npz(path, x_train, y_train, x_test, y_test, **extra):
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test, **extra)
    return path


def bench_error_lines(capsys):
    err = capsys.readouterr().err.replace("\r", "\n")  # progress bars end their lines with \r
    assert "Traceback" not in err
    return [line for line in err.splitlines() if line.startswith("bench: error:")]


def test_an_npz_with_an_empty_training_split_is_refused_with_the_fix(tmp_path, capsys):
    path = npz(tmp_path / "empty.npz", np.zeros((0, 8, 8), np.uint8), np.zeros(0, int), pixels(3, 8, 8), np.arange(3))
    assert main(["run", "--dataset", f"npz:{path}", "--out", str(tmp_path / "out"), *QUICK_RUN]) == 2
    [line] = bench_error_lines(capsys)
    assert "x_train is empty (shape (0, 8, 8)); give it at least one image" in line
    empty_ood = npz(tmp_path / "ood.npz", pixels(4, 8, 8), np.arange(4) % 2, pixels(2, 8, 8), np.arange(2), ood_blur=np.zeros((0, 8, 8)))
    with pytest.raises(BenchError, match="ood_blur is empty .*leave the array out"):
        load_dataset(f"npz:{empty_ood}")


def test_test_labels_outside_the_training_classes_are_refused_naming_the_labels(tmp_path):
    y_train, y_test = np.array([0, 1, 0, 1]), np.array([0, 2, 5, 1])  # no training example of 2 or 5
    path = npz(tmp_path / "labels.npz", pixels(4, 8, 8), y_train, pixels(4, 8, 8, seed=1), y_test)
    with pytest.raises(BenchError, match=r"y_test holds labels 2, 5 that no training example has \(y_train's classes: "
                                         r"0, 1\); .*remove those examples, or add training examples of those classes"):
        load_dataset(f"npz:{path}")
    labelled_ood = npz(tmp_path / "ood.npz", pixels(4, 8, 8), y_train, pixels(2, 8, 8), y_train[:2],
                       ood_shift=pixels(2, 8, 8), ood_shift_labels=np.array([1, 3]))
    with pytest.raises(BenchError, match="ood_shift_labels holds labels 3 that no training example has"):
        load_dataset(f"npz:{labelled_ood}")
    assert load_dataset(f"npz:{npz(tmp_path / 'fine.npz', pixels(4, 8, 8), y_train, pixels(2, 8, 8), [1, 0])}").n_classes == 2


def test_a_single_class_npz_is_accepted_with_a_warning_that_the_tasks_mean_little(tmp_path):
    one = npz(tmp_path / "one.npz", pixels(5, 8, 8), np.zeros(5, int), pixels(3, 8, 8), np.zeros(3, int))
    with pytest.warns(UserWarning, match="one: every training example is of class 0.*difficulty and OoD tasks mean little"):
        dataset = load_dataset(f"npz:{one}")
    assert dataset.n_classes == 1 and len(dataset.train) == 5  # accepted
    two = npz(tmp_path / "two.npz", pixels(5, 8, 8), np.arange(5) % 2, pixels(3, 8, 8), np.arange(3) % 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_dataset(f"npz:{two}")


def test_int32_training_images_beside_a_float_test_split_are_refused_not_fed_on_two_scales(tmp_path):
    intensities = pixels(6, 4, 4).astype(np.int32)
    floats = pixels(3, 4, 4, seed=1) / np.float32(255)
    mixed = npz(tmp_path / "mixed.npz", intensities, np.arange(6) % 2, floats, np.arange(3) % 2)
    with pytest.raises(BenchError, match=r"x_train: integers 0-255 .* but x_test: floats .* two scales; give every split "
                                         r"as integers 0-255, or every split as floats \(e.g. x / 255.0"):
        load_dataset(f"npz:{mixed}")
    with pytest.raises(BenchError, match="ood_far: floats"):  # the OoD splits follow the same rule
        from_arrays("x", intensities, np.arange(6) % 2, intensities[:3], np.arange(3) % 2, ood={"far": floats})
    with pytest.raises(BenchError, match="x_train holds int32 values from -1 to 300; integer images are pixel intensities 0-255"):
        from_arrays("x", np.array([[[-1, 300]]] * 2, np.int32), [0, 1], intensities[:2], [0, 1])
    dataset = from_arrays("x", intensities, np.arange(6) % 2, pixels(3, 4, 4, seed=1).astype(np.int64), np.arange(3) % 2)
    assert dataset.train.inputs.dtype == np.uint8 and dataset.test.inputs.dtype == np.uint8
    np.testing.assert_array_equal(dataset.train.inputs, intensities)
    mean, std = dataset.channel_statistics()  # on the scale the model sees: [0, 1]
    np.testing.assert_allclose([mean[0], std[0]], [(intensities / 255).mean(), (intensities / 255).std()], rtol=1e-12)
    as_floats = from_arrays("x", intensities / np.float32(255), np.arange(6) % 2, floats, np.arange(3) % 2)  # the fix
    assert as_floats.train.inputs.dtype == as_floats.test.inputs.dtype == np.float32


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT], ids=["disk full", "quota exceeded"])
def test_a_full_disk_while_writing_a_file_is_one_line_naming_it_and_leaves_no_temporary(tmp_path, code):
    target = tmp_path / "leaderboard.csv"
    target.write_text("what an earlier run computed")

    def write(temporary):
        temporary.write_text("half a")
        raise OSError(code, os.strerror(code))

    with pytest.raises(BenchError) as refused:
        write_atomically(target, write)
    message = str(refused.value)
    assert "\n" not in message and refused.value.__cause__ is None and refused.value.__suppress_context__
    assert message.startswith(f"cannot write {target}: {os.strerror(code)}; free space on that disk, or write elsewhere")
    assert "--out" in message and "--data-dir" in message
    assert [path.name for path in tmp_path.iterdir()] == ["leaderboard.csv"]  # no temporary left
    assert target.read_text() == "what an earlier run computed"  # nothing computed lost


def test_a_full_disk_while_generating_corruptions_is_one_line_naming_the_folder_and_leaves_nothing(tmp_path, monkeypatch, capsys):
    path = npz(tmp_path / "gray.npz", pixels(4, 28, 28), np.arange(4) % 2, pixels(2, 28, 28), np.arange(2))
    data = tmp_path / "data"

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "save", full)
    assert main(["data", "build", f"npz-c:{path}", "--data-dir", str(data)]) == 2
    [line] = bench_error_lines(capsys)
    folder = generated_folder("gray", Split(pixels(2, 28, 28), np.arange(2)), data)
    assert line == (f"bench: error: cannot write {folder}: No space left on device; free space on that disk, or pass "
                    "--data-dir (or set BENCH_DATA) with a folder on another disk")
    assert list(data.iterdir()) == []  # neither the folder nor its temporary


KILLED_WRITER = textwrap.dedent("""\
    import sys, time
    from pathlib import Path
    import numpy as np
    from bench.data import Split, corrupted
    from bench.files import write_atomically

    def stall(*args):
        print("started", flush=True)
        time.sleep(120)

    if sys.argv[1] == "file":
        write_atomically(Path(sys.argv[2]), stall)
    else:
        corrupted.corrupt = stall
        corrupted.build_corrupted(Path(sys.argv[2]), Split(np.zeros((2, 28, 28), np.uint8), np.zeros(2, int)), False)
""")


def test_temporaries_a_killed_process_left_are_removed_by_the_next_build_and_live_ones_kept(tmp_path):
    test = Split(np.zeros((2, 28, 28), np.uint8), np.zeros(2, int))
    folder, file = generated_folder("toy", test, tmp_path), tmp_path / "units.npz"
    killed = []
    for kind, target in (("file", file), ("folder", folder)):
        writer = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, kind, str(target)], stdout=subprocess.PIPE, text=True)
        assert writer.stdout.readline() == "started\n"  # its temporary exists
        writer.kill()  # SIGKILL: no cleanup runs
        writer.wait()
        killed.append(writer.pid)
    left = sorted(path.name for path in tmp_path.iterdir())
    assert len(left) == 2 and all(path.startswith(".") and path.endswith(".tmp") for path in left)
    assert all(any(f".{pid}@" in name for name in left) for pid in killed)
    alive = [tempfile.mkstemp(dir=tmp_path, prefix=temporary_prefix(file), suffix=".tmp")[1],
             tempfile.mkdtemp(dir=tmp_path, prefix=temporary_prefix(folder), suffix=".tmp")]  # of this live process
    write_atomically(file, lambda temporary: temporary.write_text("whole"))
    corrupted_splits("toy", test, [tmp_path], progress=False)
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted([folder.name, file.name, *map(os.path.basename, alive)])


def write_idx(folder, images, labels):
    """The four idx files of a dataset whose train and test splits are the same images."""
    folder.mkdir()
    for part in ("train", "t10k"):
        (folder / f"{part}-images-idx3-ubyte").write_bytes(struct.pack(">4B3I", 0, 0, 8, 3, *images.shape) + images.tobytes())
        (folder / f"{part}-labels-idx1-ubyte").write_bytes(struct.pack(">4BI", 0, 0, 8, 1, len(labels)) + labels.tobytes())


def test_an_idx_dataset_given_as_ood_generates_no_corruptions(tmp_path):
    base = npz(tmp_path / "base.npz", pixels(12, 28, 28), np.arange(12) % 2, pixels(6, 28, 28, seed=1), np.arange(6) % 2)
    write_idx(tmp_path / "letters", pixels(5, 28, 28, seed=2), np.arange(5, dtype=np.uint8))
    data, out = tmp_path / "data", tmp_path / "out"
    assert main(["run", "--dataset", f"npz:{base}", "--ood", f"idx:{tmp_path / 'letters'}", "--data-dir", str(data),
                 "--out", str(out), *QUICK_RUN]) == 0
    [unit] = (out / "units").glob("*.npz")
    assert ScoreTable.load(unit).meta["ood_splits"] == ["letters"]
    assert not data.exists() or list(data.iterdir()) == []  # MNIST-C's 15 corruptions of letters never generated
    assert list(load_dataset(f"idx:{tmp_path / 'letters'}", data_dir=data).ood) == list(CORRUPTIONS)  # as a dataset, unchanged


def test_a_cifar_archive_with_another_md5_is_refused_saying_the_unpacked_folder_is_accepted_and_where(tmp_path):
    small = dataclasses.replace(CIFAR10, train={"data_batch_1.bin": 3}, test={"test_batch.bin": 2})
    written = tmp_path / "written" / small.folder
    written.mkdir(parents=True)
    for k, (name, n) in enumerate({**small.train, **small.test}.items()):
        (written / name).write_bytes(np.concatenate([np.arange(n, dtype=np.uint8)[:, None], pixels(n, PIXELS, seed=k)], 1).tobytes())
    archive = tmp_path / small.archive
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(written, arcname=small.folder)
    unpacked = tmp_path / small.folder
    with pytest.raises(BenchError, match=f"differs from the published {small.md5}.*unpack it, since the folder it unpacks "
                                         f"to is accepted too .*give that folder, {unpacked}, as PREFIX:PATH, or put "
                                         f"{small.folder}/ in a data root"):
        read_cifar(archive, small)
    with tarfile.open(archive) as tar:  # the advice, followed
        tar.extractall(tmp_path, filter="data")
    train, test, _, source = read_cifar(unpacked, small)
    assert len(train) == 3 and "sizes checked" in source
    np.testing.assert_array_equal(test.inputs.reshape(2, -1), pixels(2, PIXELS, seed=1))


def colour_npz(tmp_path):
    return npz(tmp_path / "rgb.npz", pixels(4, 8, 6, 3), np.arange(4) % 2, pixels(3, 8, 6, 3, seed=1), np.arange(3) % 2)


def test_the_first_colour_run_generates_only_the_chosen_corruptions_and_later_only_the_missing_ones(tmp_path):
    path, data = colour_npz(tmp_path), tmp_path / "data"
    first = load_dataset(f"npz-c:{path}", data_dir=data, corruptions=["contrast"])
    assert list(first.ood) == [f"contrast@{s}" for s in range(1, 6)]
    [folder] = data.iterdir()
    assert sorted(p.name for p in folder.iterdir()) == ["contrast.npy", "generated.json", "labels.npy"]
    stamp = (folder / "contrast.npy").stat().st_mtime_ns
    more = load_dataset(f"npz-c:{path}", data_dir=data, corruptions=["fog", "contrast"])
    assert sorted(p.name for p in folder.iterdir()) == ["contrast.npy", "fog.npy", "generated.json", "labels.npy"]
    assert (folder / "contrast.npy").stat().st_mtime_ns == stamp  # reused, not generated again
    assert list(more.ood) == [f"{c}@{s}" for c in ("fog", "contrast") for s in range(1, 6)]  # in the recipe's order
    np.testing.assert_array_equal(more.ood["fog@4"].inputs, corrupt_colour(more.test.inputs, "fog", 4, 0))
    np.testing.assert_array_equal(more.ood["contrast@2"].inputs, first.ood["contrast@2"].inputs)
    assert more.source == load_dataset(f"npz-c:{path}", data_dir=data).source  # the data's provenance does not change


def test_the_corruptions_flag_runs_only_those_and_enters_only_the_unit_hash(tmp_path):
    path, data, out = colour_npz(tmp_path), tmp_path / "data", tmp_path / "out"
    assert main(["run", "--dataset", f"npz-c:{path}", "--corruptions", "contrast", "--data-dir", str(data),
                 "--out", str(out), *QUICK_RUN]) == 0
    [unit] = (out / "units").glob("*.npz")
    meta = ScoreTable.load(unit).meta
    assert meta["ood_splits"] == [f"contrast@{s}" for s in range(1, 6)] and meta["config"]["corruptions"] == ["contrast"]
    [folder] = data.iterdir()
    assert sorted(p.name for p in folder.iterdir()) == ["contrast.npy", "generated.json", "labels.npy"]
    specs, source = {"loss": "loss"}, "some data"
    default, chosen = RunConfig(), RunConfig(corruptions=["snow", "fog"])
    assert "corruptions" not in default.unit_config(specs, source)  # a default run keeps its hash
    assert default.training_hash(source) == chosen.training_hash(source)  # the trained models are shared
    assert default.config_hash(specs, source) != chosen.config_hash(specs, source)
    assert chosen.config_hash(specs, source) == RunConfig(corruptions=["fog", "snow"]).config_hash(specs, source)


def test_an_unknown_corruption_is_refused_listing_the_known_ones(tmp_path, capsys):
    with pytest.raises(BenchError, match=r"config key 'corruptions' names unknown corruption 'fogg'; known: .*zigzag.*"
                                         r"jpeg_compression \(or \"all\" alone, for every one; none for an empty list\)"):
        RunConfig(corruptions=["fogg"])
    assert main(["run", "--corruptions", "fog,fogg", "--out", str(tmp_path), *QUICK_RUN]) == 2
    [line] = bench_error_lines(capsys)
    assert "unknown corruption 'fogg'" in line and all(name in line for name in COLOUR_CORRUPTIONS)
    with pytest.raises(BenchError, match="rgb-c has no corruption zigzag .*its corruptions: gaussian_noise"):
        load_dataset(f"npz-c:{colour_npz(tmp_path)}", data_dir=tmp_path / "data", corruptions=["zigzag"])
    assert RunConfig(corruptions=[]).corruptions == []  # none: the dataset's clean splits alone
    clean = load_dataset(f"npz-c:{colour_npz(tmp_path)}", data_dir=tmp_path / "data", corruptions=[])
    assert clean.ood == {} and len(clean.test) == 3


def test_grayscale_corruptions_are_selected_when_read(tmp_path):
    path = npz(tmp_path / "gray.npz", pixels(4, 28, 28), np.arange(4) % 2, pixels(3, 28, 28, seed=1), np.arange(3) % 2,
               ood_other=pixels(2, 28, 28, seed=2))
    dataset = load_dataset(f"npz-c:{path}", data_dir=tmp_path / "data", corruptions=["stripe", "fog"])
    assert list(dataset.ood) == ["other", "stripe", "fog"]  # its own OoD split kept, the corruptions in MNIST-C's order
    np.testing.assert_array_equal(dataset.ood["stripe"].inputs, corrupt(dataset.test.inputs, "stripe", 0))


def test_a_fifo_named_like_an_image_is_refused_instead_of_blocking_the_reader(tmp_path):
    root = tmp_path / "pets"
    for split, label in (("train", "cat"), ("train", "dog"), ("test", "cat")):
        (root / split / label).mkdir(parents=True)
        Image.fromarray(pixels(4, 6, 3)).save(root / split / label / "0.png")
    os.mkfifo(root / "train" / "cat" / "x.png")

    def blocked(signum, frame):
        raise TimeoutError("the reader blocked on the FIFO x.png")

    previous = signal.signal(signal.SIGALRM, blocked)
    signal.alarm(10)  # the test itself cannot hang
    try:
        with pytest.raises(BenchError, match="train/cat/x.png is not a regular file .*move it out"):
            load_dataset(f"folder:{root}")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    (root / "train" / "cat" / "x.png").unlink()
    assert len(load_dataset(f"folder:{root}").train) == 2  # the FIFO was the only problem

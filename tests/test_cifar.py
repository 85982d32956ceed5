"""CIFAR binary archives and folders, and the CIFAR-10-C layout, on small files the tests write in the official format."""

import dataclasses
import gzip
import hashlib
import io
import tarfile

import numpy as np
import pytest

from bench.data import load_dataset, with_semantic_ood, with_training_set
from bench.data.arrays import from_arrays
from bench.data.cifar import CIFAR10, CIFAR100, PIXELS, in_roots, load, read_cifar
from bench.data.corrupted import read_severities
from bench.errors import BenchError

SMALL = dataclasses.replace(CIFAR10, train={"data_batch_1.bin": 6, "data_batch_2.bin": 4}, test={"test_batch.bin": 5})
SMALL_100 = dataclasses.replace(CIFAR100, train={"train.bin": 7}, test={"test.bin": 3})


def records(layout, n, seed):
    """n records of the layout: label bytes then 3x32x32 pixels; returns the bytes, labels and images."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, layout.n_classes, (n, layout.label_bytes), dtype=np.uint8)
    images = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    return np.concatenate([labels, images.reshape(n, PIXELS)], axis=1).tobytes(), labels[:, layout.label_byte], images


def write_files(layout, folder, names=True):
    folder.mkdir(parents=True)
    written = {}
    for k, (name, n) in enumerate({**layout.train, **layout.test}.items()):
        data, labels, images = records(layout, n, k)
        (folder / name).write_bytes(data)
        written[name] = (labels, images)
    if names:
        (folder / layout.names).write_text("\n".join(f"class{k}" for k in range(layout.n_classes)) + "\n")
    return written


def pack(folder, archive, extra=()):
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
        for member, data in extra:
            tar.addfile(member, io.BytesIO(data) if data is not None else None)
    return hashlib.md5(archive.read_bytes()).hexdigest()


def expected(layout, written, names):
    return (np.concatenate([written[n][1] for n in names]), np.concatenate([written[n][0] for n in names]).astype(np.int64))


@pytest.mark.parametrize("layout", [SMALL, SMALL_100, dataclasses.replace(SMALL_100, label_byte=0, n_classes=20,
                                                                          names="coarse_label_names.txt")],
                         ids=["cifar10", "cifar100 fine", "cifar100 coarse"])
@pytest.mark.parametrize("form", ["folder", "parent folder", "archive"])
def test_binary_files_round_trip_from_an_archive_or_a_folder(tmp_path, layout, form):
    folder = tmp_path / layout.folder
    written = write_files(layout, folder)
    path = {"folder": folder, "parent folder": tmp_path}.get(form)
    if form == "archive":
        path = tmp_path / layout.archive
        layout = dataclasses.replace(layout, md5=pack(folder, path))
    train, test, classes, source = read_cifar(path, layout)
    for split, names in ((train, layout.train), (test, layout.test)):
        images, labels = expected(layout, written, names)
        np.testing.assert_array_equal(split.inputs, images)
        np.testing.assert_array_equal(split.labels, labels)
    assert classes == tuple(f"class{k}" for k in range(layout.n_classes))
    assert ("MD5-verified" in source) == (form == "archive")


def test_a_truncated_archive_and_a_truncated_file_are_refused(tmp_path):
    folder = tmp_path / SMALL.folder
    write_files(SMALL, folder)
    archive = tmp_path / SMALL.archive
    md5 = pack(folder, archive)
    archive.write_bytes(archive.read_bytes()[:-200])
    with pytest.raises(BenchError, match="MD5 .* differs from the published .* it is truncated or damaged"):
        read_cifar(archive, dataclasses.replace(SMALL, md5=md5))
    (folder / "test_batch.bin").write_bytes((folder / "test_batch.bin").read_bytes()[:-1])
    with pytest.raises(BenchError, match="test_batch.bin has 15364 bytes; the official file holds 5 records"):
        read_cifar(folder, SMALL)


def hostile(name, kind=tarfile.REGTYPE, size=None, target=""):
    member = tarfile.TarInfo(name)
    member.type, member.linkname = kind, target
    member.size = size or 0
    return member, (b"\x00" * member.size if kind == tarfile.REGTYPE else None)


@pytest.mark.parametrize("extra, message", [
    ([hostile(f"{SMALL.folder}/test_batch.bin", tarfile.SYMTYPE, target="/etc/passwd")], "is not a regular file"),
    ([hostile(f"{SMALL.folder}/test_batch.bin", size=10 * SMALL.record)], "member cifar-10-batches-bin/test_batch.bin is "),
], ids=["a link", "a member larger than expected"])
def test_hostile_members_are_refused_and_nothing_is_extracted(tmp_path, extra, message):
    folder = tmp_path / "src" / SMALL.folder
    write_files(SMALL, folder)
    (folder / "test_batch.bin").unlink()
    archive = tmp_path / SMALL.archive
    md5 = pack(folder, archive, extra)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    with pytest.raises(BenchError, match=message):
        read_cifar(archive, dataclasses.replace(SMALL, md5=md5))
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_members_outside_the_folder_are_never_extracted(tmp_path):
    folder = tmp_path / "src" / SMALL.folder
    write_files(SMALL, folder)
    archive = tmp_path / SMALL.archive
    md5 = pack(folder, archive, [hostile("../../escaped.txt", size=10)])
    read_cifar(archive, dataclasses.replace(SMALL, md5=md5))
    assert not list(tmp_path.parent.rglob("escaped.txt"))


def test_the_pickled_python_version_and_a_wrong_archive_are_refused_naming_the_binary_one(tmp_path):
    python = tmp_path / "cifar-10-batches-py"
    python.mkdir()
    (python / "data_batch_1").write_bytes(b"\x80\x04pickled")
    with pytest.raises(BenchError, match="python version of CIFAR-10, which is pickled .* cifar-10-binary.tar.gz"):
        load_dataset(f"cifar10:{tmp_path}")
    archive = tmp_path / "cifar-10-python.tar.gz"
    pack(python, archive)
    with pytest.raises(BenchError, match="python version of CIFAR-10"):
        load_dataset(f"cifar10:{archive}")
    folder = tmp_path / "other" / SMALL.folder
    write_files(SMALL, folder)
    pack(folder, tmp_path / "mine.tar.gz")
    with pytest.raises(BenchError, match=f"differs from the published {CIFAR10.md5}"):
        load_dataset(f"cifar10:{tmp_path / 'mine.tar.gz'}")


def corrupted_folder(root, test, n_files=2, images=None):
    root.mkdir()
    np.save(root / "labels.npy", np.tile(test.labels, 5).astype(np.uint8))
    rng = np.random.default_rng(0)
    for k in range(n_files):
        np.save(root / f"noise{k}.npy", images if images is not None else
                rng.integers(0, 256, (5 * len(test), 32, 32, 3), dtype=np.uint8))


def test_the_corrupted_layout_gives_one_split_per_corruption_and_severity(tmp_path):
    folder = tmp_path / SMALL.folder
    write_files(SMALL, folder)
    _, test, _, _ = read_cifar(folder, SMALL)
    corrupted_folder(tmp_path / "CIFAR-10-C", test)
    splits = read_severities(tmp_path / "CIFAR-10-C", test, "CIFAR-10-C")
    assert list(splits) == [f"noise{k}@{s}" for k in range(2) for s in range(1, 6)]
    stored = np.load(tmp_path / "CIFAR-10-C" / "noise1.npy")
    np.testing.assert_array_equal(splits["noise1@3"].inputs, stored[10:15].transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(splits["noise1@3"].labels, test.labels)


def test_a_corrupted_file_with_the_wrong_number_of_images_is_refused(tmp_path):
    folder = tmp_path / SMALL.folder
    write_files(SMALL, folder)
    _, test, _, _ = read_cifar(folder, SMALL)
    corrupted_folder(tmp_path / "CIFAR-10-C", test, images=np.zeros((24, 32, 32, 3), np.uint8))
    with pytest.raises(BenchError, match=r"noise0.npy holds uint8 \(24, 32, 32, 3\); a CIFAR-10-C file holds uint8 \(25, 32, 32, 3\)"):
        read_severities(tmp_path / "CIFAR-10-C", test, "CIFAR-10-C")


def test_without_the_official_corrupted_folder_the_corruptions_are_generated_by_the_same_recipe(tmp_path):
    from bench.data.cifar import load
    from bench.data.colour import COLOUR_CORRUPTIONS, corrupt_colour

    folder = tmp_path / SMALL.folder
    write_files(SMALL, folder)
    dataset = load(folder, [tmp_path / "data"], SMALL, "cifar10")
    assert len(dataset.ood) == 5 * len(COLOUR_CORRUPTIONS) and "generated, CIFAR-10-C recipe" in dataset.source
    np.testing.assert_array_equal(dataset.ood["pixelate@4"].inputs, corrupt_colour(dataset.test.inputs, "pixelate", 4, 0))
    corrupted_folder(tmp_path / "CIFAR-10-C", dataset.test)  # the official folder, once present, wins
    assert "official CIFAR-10-C" in load(folder, [tmp_path / "data"], SMALL, "cifar10").source


def test_the_bare_name_finds_the_archive_or_folder_in_the_first_data_root_that_has_one(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    write_files(SMALL, second / SMALL.folder)
    first.mkdir()
    assert in_roots([first, second], SMALL) == second / SMALL.folder
    (first / SMALL.archive).write_bytes(b"")
    assert in_roots([first, second], SMALL) == first / SMALL.archive
    write_files(SMALL, tmp_path / "shared" / "cifar10" / SMALL.folder)  # a root holding cifar10/, as mnist/
    assert in_roots([tmp_path / "shared", second], SMALL) == tmp_path / "shared" / "cifar10" / SMALL.folder
    with pytest.raises(BenchError, match=r"no cifar-10-binary.tar.gz or cifar-10-batches-bin/ in the data roots"):
        in_roots([tmp_path / "empty"], SMALL)


def gzipped(folder, target):
    """A copy of ``folder`` with every .bin file gzip-compressed into NAME.bin.gz, as the shared data ships them."""
    target.mkdir(parents=True)
    for file in folder.iterdir():
        compressed = file.suffix == ".bin"
        (target / f"{file.name}.gz" if compressed else target / file.name).write_bytes(
            gzip.compress(file.read_bytes()) if compressed else file.read_bytes())


@pytest.mark.parametrize("layout", [SMALL, SMALL_100], ids=["cifar10", "cifar100"])
def test_gzipped_files_give_the_data_and_the_digest_of_the_plain_ones(tmp_path, layout):
    plain, packed = tmp_path / "plain" / layout.folder, tmp_path / "gz" / layout.folder
    written = write_files(layout, plain)
    gzipped(plain, packed)
    assert not list(packed.glob("*.bin"))
    train, test, classes, source = read_cifar(packed, layout)
    for split, names in ((train, layout.train), (test, layout.test)):
        images, labels = expected(layout, written, names)
        np.testing.assert_array_equal(split.inputs, images)
        np.testing.assert_array_equal(split.labels, labels)
    assert (classes, source) == read_cifar(plain, layout)[2:]  # the same content digest: the same cache entries


def test_a_damaged_or_wrong_sized_gzip_file_is_refused_naming_the_file_and_the_fix(tmp_path):
    plain, packed = tmp_path / "plain" / SMALL.folder, tmp_path / "gz" / SMALL.folder
    write_files(SMALL, plain)
    gzipped(plain, packed)
    test_file, original = packed / "test_batch.bin.gz", (plain / "test_batch.bin").read_bytes()
    compressed = test_file.read_bytes()
    cases = [(compressed[:-40], "truncated"), (compressed[:100] + bytes(255 - b for b in compressed[100:110])
                                               + compressed[110:], "damaged"), (b"not gzip at all", "not gzip")]
    for data, what in cases:
        test_file.write_bytes(data)
        with pytest.raises(BenchError, match=r"test_batch.bin.gz is not a readable gzip stream .*fetch it again, or "
                                             r"put the plain test_batch.bin in its place"):
            read_cifar(packed, SMALL)
    for data, size in ((original[:-SMALL.record], "12292"), (original + b"\x00", "more than 15365")):
        test_file.write_bytes(gzip.compress(data))
        with pytest.raises(BenchError, match=f"test_batch.bin.gz decompresses to {size} bytes; the official file "
                                             "holds 5 records of 3073 bytes"):
            read_cifar(packed, SMALL)


def test_the_test_file_alone_loads_as_a_test_set_for_ood_use_and_is_refused_for_training(tmp_path):
    folder = tmp_path / "root" / "cifar100" / SMALL_100.folder
    written = write_files(SMALL_100, folder)
    (folder / "train.bin").unlink()
    dataset = load(in_roots([tmp_path / "root"], SMALL_100), [tmp_path / "data"], SMALL_100, "cifar100")
    assert dataset.train.inputs.shape == (0, 3, 32, 32) and len(dataset.train.labels) == 0
    images, labels = expected(SMALL_100, written, SMALL_100.test)
    np.testing.assert_array_equal(dataset.test.inputs, images)
    np.testing.assert_array_equal(dataset.test.labels, labels)
    assert "test set alone, test.bin" in dataset.source and "no training files (train.bin)" in dataset.source
    with pytest.raises(BenchError, match=r"cifar100 has no training images \(CIFAR-100 test set alone.*serves only as "
                                         r"an OoD split \(--ood cifar100, config key ood\)"):
        with_training_set(dataset, 0, 0.0)
    combined = with_semantic_ood(from_arrays("base", images[::-1], labels, images, labels), [dataset])
    np.testing.assert_array_equal(combined.ood["cifar100"].inputs, images)
    full_size = tmp_path / "full" / "cifar100" / CIFAR100.folder  # the real layout, for the loader found by name
    full_size.mkdir(parents=True)
    (full_size / "test.bin").write_bytes(records(CIFAR100, 10000, 0)[0])
    assert len(load_dataset("cifar100", tmp_path / "full", corruptions=()).test) == 10000
    with pytest.raises(BenchError, match="cifar100 has no training images"):  # asked for its corruptions: a run's
        load_dataset("cifar100", tmp_path / "full")
    assert [p.name for p in (tmp_path / "full").iterdir()] == ["cifar100"]  # refused before any corruption is made
    write_files(SMALL, tmp_path / "partial" / SMALL.folder)
    (tmp_path / "partial" / SMALL.folder / "data_batch_2.bin").unlink()  # one training file of two: not test-only
    with pytest.raises(BenchError, match=r"has no data_batch_2.bin \(nor data_batch_2.bin.gz\)"):
        read_cifar(tmp_path / "partial", SMALL)

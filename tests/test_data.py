"""Real data: the idx reader, MNIST with its MD5s, downloads, MNIST-C folders, idx datasets, label noise."""

import gzip
import http.server
import shutil
import struct
import threading
from pathlib import Path

import numpy as np
import pytest

from bench.data import Split, load_dataset, with_label_noise
from bench.data.corrupted import MARKER, corrupted_splits, generated_folder
from bench.data.corruptions import CORRUPTIONS
from bench.data.idx import read_idx, read_idx_folder
from bench.data.mnist import MD5, fetch, read_mnist, verify
from bench.errors import BenchError

SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
needs_mnist = pytest.mark.skipif(not SHARED_MNIST.is_dir(), reason=f"real MNIST is expected in {SHARED_MNIST}")


def idx_bytes(array: np.ndarray) -> bytes:
    return bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.astype(np.uint8).tobytes()


def write_idx_folder(folder: Path, train_images, train_labels, test_images, test_labels, gzipped=True):
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in [("train-images-idx3-ubyte", train_images), ("train-labels-idx1-ubyte", train_labels),
                        ("t10k-images-idx3-ubyte", test_images), ("t10k-labels-idx1-ubyte", test_labels)]:
        data = idx_bytes(array)
        (folder / (name + ".gz" if gzipped else name)).write_bytes(gzip.compress(data) if gzipped else data)


# ---- the idx reader


@pytest.mark.parametrize("gzipped", [True, False])
def test_idx_round_trip(tmp_path, gzipped):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / ("a.gz" if gzipped else "a")
    path.write_bytes(gzip.compress(idx_bytes(array)) if gzipped else idx_bytes(array))
    np.testing.assert_array_equal(read_idx(path), array)


@pytest.mark.parametrize("damage, message", [
    (lambda b: b"\x12\x34" + b[2:], "magic number is 1234"),
    (lambda b: b[:-5], "truncated"),
    (lambda b: b + b"\x00", "too long"),
    (lambda b: b[:6], "truncated inside its header"),
])
def test_idx_reader_names_the_file_and_the_problem(tmp_path, damage, message):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(damage(idx_bytes(np.zeros((3, 4, 4), np.uint8))))
    with pytest.raises(BenchError, match=message) as error:
        read_idx(path)
    assert str(path) in str(error.value)


def test_truncated_gzip_is_refused(tmp_path):
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros(100, np.uint8)))[:-10])
    with pytest.raises(BenchError, match="truncated gzip stream"):
        read_idx(path)


def test_idx_folder_with_wrong_dimensions_says_what_was_expected(tmp_path):
    write_idx_folder(tmp_path, np.zeros((5, 784)), np.zeros(5), np.zeros((2, 28, 28)), np.zeros(2))
    with pytest.raises(BenchError, match=r"shape \(5, 784\); images must be \(n, height, width\)"):
        read_idx_folder(tmp_path)
    write_idx_folder(tmp_path, np.zeros((5, 28, 28)), np.zeros(4), np.zeros((2, 28, 28)), np.zeros(2))
    with pytest.raises(BenchError, match=r"\(4,\) labels for 5 images"):
        read_idx_folder(tmp_path)


# ---- MNIST


@needs_mnist
def test_real_mnist_loads_with_60000_and_10000_images():
    train, test = read_mnist([SHARED_MNIST.parent])
    assert train.inputs.shape == (60000, 28, 28) and test.inputs.shape == (10000, 28, 28)
    assert train.inputs.dtype == np.uint8
    assert set(np.unique(train.labels)) == set(range(10)) == set(np.unique(test.labels))


@needs_mnist
def test_md5_check_refuses_a_file_with_one_byte_changed_and_names_it(tmp_path):
    shutil.copytree(SHARED_MNIST, tmp_path / "mnist")
    target = tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz"
    data = bytearray(target.read_bytes())
    data[-20] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(BenchError, match="t10k-labels-idx1-ubyte.gz: MD5 .* differs from the published"):
        read_mnist([tmp_path])
    problems = {c.path.name: c.problem for c in verify([tmp_path])}
    assert "differs from the published" in problems["t10k-labels-idx1-ubyte.gz"]
    assert problems["train-images-idx3-ubyte.gz"] == ""


@pytest.fixture
def mirrors(tmp_path):
    """A loopback HTTP server with three mirrors: /missing/ (404), /tampered/ (wrong bytes), /good/."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            kind, name = self.path.strip("/").split("/", 1)
            if kind == "missing" or not (SHARED_MNIST / name).is_file():
                self.send_error(404)
                return
            body = (SHARED_MNIST / name).read_bytes()
            if kind == "tampered":
                body = body[:-1] + bytes([body[-1] ^ 1])
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@needs_mnist
def test_download_falls_back_past_a_failing_and_a_tampered_mirror(tmp_path, mirrors):
    folder = fetch(tmp_path, mirrors=[f"{mirrors}/missing/", f"{mirrors}/tampered/", f"{mirrors}/good/"],
                   retries=1, progress=False)
    for name in ("train-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        assert (folder / name).read_bytes() == (SHARED_MNIST / name).read_bytes()
    assert sorted(p.name for p in folder.iterdir()) == sorted(n for n in MD5 if n.endswith(".gz"))  # no temp files


@needs_mnist
def test_a_corrupt_download_is_refused(tmp_path, mirrors):
    with pytest.raises(BenchError, match=r"(?s)could not download .*tampered.*MD5 .* differs from the published"):
        fetch(tmp_path, mirrors=[f"{mirrors}/tampered/"], retries=1, progress=False)
    assert not any((tmp_path / "mnist").glob("*.gz"))


@needs_mnist
def test_fetch_from_a_folder_copies_verified_files(tmp_path):
    folder = fetch(tmp_path, source=SHARED_MNIST, progress=False)
    assert all(not c.problem for c in verify([tmp_path]))
    assert len(list(folder.glob("*.gz"))) == 4


# ---- corrupted variants


def small_test_split(n=12):
    rng = np.random.default_rng(0)
    return Split(rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n))


def test_official_layout_is_read_with_its_channel_axis(tmp_path):
    test = small_test_split()
    for corruption in CORRUPTIONS:  # the official archive: mnist_c/<corruption>/test_*.npy, images (n, 28, 28, 1)
        (tmp_path / "toy_c" / corruption).mkdir(parents=True)
        np.save(tmp_path / "toy_c" / corruption / "test_images.npy", 255 - test.inputs[..., None])
        np.save(tmp_path / "toy_c" / corruption / "test_labels.npy", test.labels.astype(np.uint8))
    splits, source = corrupted_splits("toy", test, [tmp_path], progress=False)
    assert source == "corruptions: official files"
    np.testing.assert_array_equal(splits["fog"].inputs, 255 - test.inputs)


def test_generated_variant_is_built_once_then_read(tmp_path):
    test = small_test_split()
    splits, source = corrupted_splits("toy", test, [tmp_path], progress=False)
    folder = generated_folder("toy", test, tmp_path)
    assert "generated" in source and (folder / MARKER).is_file() and folder.name.startswith("toy-c-")
    assert [path.name for path in tmp_path.iterdir()] == [folder.name]  # no temporary folder left
    stamp = (folder / "fog" / "test_images.npy").stat().st_mtime_ns
    again, _ = corrupted_splits("toy", test, [tmp_path], progress=False)
    assert (folder / "fog" / "test_images.npy").stat().st_mtime_ns == stamp
    for name in CORRUPTIONS:
        np.testing.assert_array_equal(again[name].inputs, splits[name].inputs)


def test_an_interrupted_or_stale_build_is_rebuilt(tmp_path):
    test = small_test_split()
    corrupted_splits("toy", test, [tmp_path], progress=False)
    marker = generated_folder("toy", test, tmp_path) / MARKER
    marker.write_text(marker.read_text().replace('"complete": true', '"complete": false'))  # as older builds left it
    corrupted_splits("toy", test, [tmp_path], progress=False)
    assert '"complete": true' in marker.read_text()
    other = Split(255 - test.inputs, test.labels)  # a different clean test split under the same name
    splits, _ = corrupted_splits("toy", other, [tmp_path], progress=False)
    np.testing.assert_array_equal(splits["stripe"].inputs[:, :, 10:18], other.inputs[:, :, 10:18])
    assert len(list(tmp_path.iterdir())) == 2 and marker.is_file()  # one copy per content, side by side


def test_mismatched_labels_in_a_variant_folder_are_refused(tmp_path):
    test = small_test_split()
    corrupted_splits("toy", test, [tmp_path], progress=False)
    np.save(generated_folder("toy", test, tmp_path) / "zigzag" / "test_labels.npy", (test.labels + 1).astype(np.uint8))
    with pytest.raises(BenchError, match="zigzag/test_labels.npy does not match"):
        corrupted_splits("toy", test, [tmp_path], progress=False)


def test_any_idx_folder_is_a_dataset_named_after_it(tmp_path):
    from bench.data.digits import load_digits_c

    digits = load_digits_c()
    write_idx_folder(tmp_path / "my-digits", digits.train.inputs, digits.train.labels, digits.test.inputs,
                     digits.test.labels, gzipped=False)
    dataset = load_dataset(f"idx:{tmp_path / 'my-digits'}", data_dir=tmp_path / "root")
    assert dataset.name == "my-digits" and dataset.n_classes == 10
    assert list(dataset.ood) == list(CORRUPTIONS)
    assert (generated_folder("my-digits", dataset.test, tmp_path / "root") / "zigzag" / "test_images.npy").is_file()
    np.testing.assert_array_equal(dataset.train.inputs, digits.train.inputs)


# ---- label noise


def test_label_noise_shuffles_the_chosen_fraction_among_itself():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 10, 1000)
    from bench.data import Dataset

    clean = Dataset("toy", 10, Split(np.zeros((1000, 2)), labels), Split(np.zeros((5, 2)), labels[:5]))
    noisy = with_label_noise(clean, 0.2)
    changed = noisy.train.labels != labels
    np.testing.assert_array_equal(noisy.train.noisy, changed)
    assert 150 < changed.sum() <= 200  # 200 shuffled; about a tenth keep their own class by chance
    assert sorted(noisy.train.labels) == sorted(labels)  # a shuffle among the chosen: class counts unchanged
    assert noisy.name == "toy[label_noise=0.2]"
    np.testing.assert_array_equal(with_label_noise(clean, 0.2).train.labels, noisy.train.labels)


@pytest.mark.parametrize("fraction", [1.0, -0.1, 1.5])
def test_label_noise_outside_0_1_is_refused(fraction):
    from bench.data.digits import load_digits_c

    with pytest.raises(BenchError, match=r"outside \[0, 1\)"):
        with_label_noise(load_digits_c(), fraction)


def test_datasets_from_other_packages_come_through_their_entry_points(tmp_path):
    """A distribution declares a named loader and a PREFIX:PATH loader under `bench.datasets`."""
    import subprocess
    import sys

    dist = tmp_path / "tiny_data-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: tiny-data\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[bench.datasets]\ntiny = tiny_data:tiny\ntinyfile = tiny_data:from_path\n"
                                           "broken = tiny_data:missing\n")
    (tmp_path / "tiny_data.py").write_text(
        "import numpy as np\nfrom bench.data.arrays import from_arrays\n"
        "def tiny(roots):\n    x = np.zeros((4, 5, 5), np.uint8)\n    return from_arrays('tiny', x, np.arange(4) % 2, x, np.arange(4) % 2)\n"
        "def from_path(path, roots):\n    return tiny(roots)\n")
    script = ("from bench.data import available_datasets, load_dataset\n"
              "print(available_datasets())\n"
              "print(load_dataset('tiny').n_classes, load_dataset('tinyfile:anything').name)\n")
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
                            env={**__import__("os").environ, "PYTHONPATH": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    assert "'tiny'" in result.stdout and "'tinyfile:PATH'" in result.stdout and "2 tiny" in result.stdout
    assert "'broken'" in result.stderr and "skipped" in result.stderr


def test_train_size_keeps_that_many_training_examples_per_class_in_proportion():
    from bench.data import load_dataset, with_train_size

    digits = load_dataset("digits-c")
    small = with_train_size(digits, 300)
    assert len(small.train.labels) == 300 and small.name == "digits-c[train_size=300]"
    shares = np.bincount(small.train.labels, minlength=10) / 300
    np.testing.assert_allclose(shares, np.bincount(digits.train.labels) / len(digits.train.labels), atol=1 / 300 + 1e-9)
    rows = {image.tobytes() for image in digits.train.inputs}
    assert all(image.tobytes() in rows for image in small.train.inputs)  # drawn from the training split
    np.testing.assert_array_equal(small.test.inputs, digits.test.inputs)  # the other splits as they were
    assert with_train_size(digits, 0) is digits and with_train_size(digits, 10**6) is digits
    np.testing.assert_array_equal(with_train_size(digits, 300).train.labels, small.train.labels)  # seed 0, fixed


def test_digits_c_clean_images_are_rounded_upsampled_digits_spanning_the_dimensions_its_caveat_states():
    """Each clean image the harness loads is the 8-bit rounding of a scikit-learn digit upsampled bilinearly
    (by torch here, not scipy as the harness does) into the 20x20 box of a 28x28 image; so before rounding
    the images span the rank of the digits, which the caveat shown with digits-c's rows states."""
    import re

    import torch
    from sklearn.datasets import load_digits

    from bench.data import dataset_caveat

    dataset = load_dataset("digits-c")
    images = np.concatenate([dataset.train.inputs, dataset.test.inputs]).reshape(-1, 28 * 28) / 255.0
    pixels = torch.eye(64, dtype=torch.float64).reshape(64, 1, 8, 8)  # each 8x8 pixel alone, upsampled
    upsampled = torch.nn.functional.interpolate(pixels, size=(20, 20), mode="bilinear", align_corners=False)
    basis = torch.nn.functional.pad(upsampled, (4, 4, 4, 4)).reshape(64, 28 * 28).numpy()
    weights = np.linalg.lstsq(basis.T, images.T, rcond=None)[0].T * 16  # the digits' pixels, 0 to 16, to rounding
    digits = np.round(weights).astype(int)
    assert np.abs(weights - digits).max() < 0.1
    assert np.abs(digits / 16 @ basis - images).max() <= 0.5 / 255 + 1e-12  # each image rounds its digit
    sklearn_digits = load_digits().data.astype(int)
    assert sorted(map(tuple, digits)) == sorted(map(tuple, sklearn_digits))  # every digit, once
    stated = int(re.search(r"(\d+)-dimensional", dataset_caveat("digits-c")).group(1))
    assert np.linalg.matrix_rank(basis) == 64 and np.linalg.matrix_rank(sklearn_digits) == stated

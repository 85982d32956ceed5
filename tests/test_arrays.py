"""Datasets from arrays: npz files, numpy arrays and torch datasets, in every layout the rule accepts."""

import numpy as np
import pytest
import torch

from bench.data import load_dataset
from bench.data.arrays import as_images, from_arrays, from_torch
from bench.errors import BenchError


def colour(n, seed=0, shape=(8, 6, 3)):
    return np.random.default_rng(seed).integers(0, 256, (n, *shape), dtype=np.uint8)


@pytest.mark.parametrize("layout, shape", [(None, (5, 8, 6, 3)), ("nhwc", (5, 8, 6, 3)), ("nchw", (5, 3, 8, 6))])
def test_images_are_stored_channels_first_by_the_stated_rule(layout, shape):
    nhwc = colour(5)
    given = nhwc if shape[-1] == 3 else nhwc.transpose(0, 3, 1, 2)
    images = as_images(given, "x", layout)
    assert images.shape == (5, 3, 8, 6) and images.dtype == np.uint8
    np.testing.assert_array_equal(images, nhwc.transpose(0, 3, 1, 2))


def test_one_channel_images_lose_their_channel_axis_and_floats_are_kept_as_they_are():
    gray = np.random.default_rng(0).random((4, 7, 7, 1))
    images = as_images(gray, "x")
    assert images.shape == (4, 7, 7) and images.dtype == np.float32
    np.testing.assert_allclose(images, gray[..., 0], rtol=1e-6)


@pytest.mark.parametrize("array, message", [
    (np.zeros((4, 3, 5, 3), np.uint8), "second and last axes could both be the channels"),
    (np.zeros((4, 5, 5, 5), np.uint8), "neither second nor last axis could be the channels"),
    (np.zeros((4, 25), np.uint8), "images must be (n, h, w), (n, h, w, c) or (n, c, h, w)"),
    (np.full((2, 4, 4), np.nan), "NaN or infinite"),
    (np.array([["a"]]), "images must be uint8"),
])
def test_arrays_the_rule_cannot_read_are_refused_with_the_fix(array, message):
    with pytest.raises(BenchError, match=message.replace("(", r"\(").replace(")", r"\)")):
        as_images(array, "x_train")


def test_npz_round_trip_with_ood_splits_labels_and_classes(tmp_path):
    x_train, x_test, ood = colour(30), colour(10, 1), colour(6, 2)
    y_train, y_test = np.arange(30) % 3, np.arange(10) % 3
    path = tmp_path / "pets.npz"
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test, ood_noise=ood,
             ood_shifted=ood[::-1], ood_shifted_labels=np.arange(6) % 3, classes=np.array(["cat", "dog", "owl"]))
    dataset = load_dataset(f"npz:{path}")
    assert (dataset.name, dataset.n_classes, dataset.classes, dataset.input_shape) == ("pets", 3, ("cat", "dog", "owl"), (3, 8, 6))
    np.testing.assert_array_equal(dataset.train.inputs, x_train.transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(dataset.test.labels, y_test)
    assert list(dataset.ood) == ["noise", "shifted"]
    assert (dataset.ood["noise"].labels == -1).all()  # unknown
    np.testing.assert_array_equal(dataset.ood["shifted"].labels, np.arange(6) % 3)
    assert "content sha256" in dataset.source


def test_a_layout_array_settles_an_ambiguous_shape(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (4, 3, 5, 3), dtype=np.uint8)
    path = tmp_path / "odd.npz"
    np.savez(path, x_train=x, y_train=np.zeros(4, int), x_test=x, y_test=np.zeros(4, int), layout=np.array("nchw"))
    assert load_dataset(f"npz:{path}").input_shape == (3, 5, 3)


@pytest.mark.parametrize("arrays, message", [
    ({"x_train": colour(4), "y_train": np.zeros(4, int), "x_test": colour(2)}, "has no array y_test"),
    ({"x_train": colour(4), "y_train": np.zeros(3, int), "x_test": colour(2), "y_test": np.zeros(2, int)},
     "y_train has shape (3,) for 4 images"),
    ({"x_train": colour(4), "y_train": np.zeros(4), "x_test": colour(2), "y_test": np.zeros(2, int)},
     "y_train holds float64 values; labels must be integer class numbers"),
    ({"x_train": colour(4), "y_train": np.zeros(4, int), "x_test": colour(2, shape=(5, 6, 3)), "y_test": np.zeros(2, int)},
     "x_train images are (3, 8, 6) but x_test images (3, 5, 6)"),
    ({"x_train": colour(4), "y_train": np.zeros(4, int), "x_test": colour(2), "y_test": np.zeros(2, int),
      "ood_blur_labels": np.zeros(2, int)}, "has ood_blur_labels but no ood_blur images"),
], ids=["a missing array", "mismatched lengths", "float labels", "mismatched shapes", "orphan labels"])
def test_bad_npz_files_name_the_array_and_the_defect(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(BenchError, match=message.replace("(", r"\(").replace(")", r"\)")) as error:
        load_dataset(f"npz:{path}")
    assert str(path) in str(error.value)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(BenchError, match="is not a readable .npz"):
        load_dataset(f"npz:{tmp_path / 'junk.npz'}")


def test_labels_outside_the_named_classes_are_refused():
    with pytest.raises(BenchError, match="holds labels from 0 to 3; they must be 0 to 2"):
        from_arrays("x", colour(4), np.arange(4), colour(2), np.zeros(2, int), classes=["a", "b", "c"])


def test_a_torch_dataset_becomes_the_same_dataset_as_its_arrays():
    x_train, x_test = colour(12), colour(4, 1)
    y_train, y_test = np.arange(12) % 2, np.arange(4) % 2
    as_tensors = [(torch.from_numpy(image.transpose(2, 0, 1).copy()), int(label)) for image, label in zip(x_train, y_train)]
    test = torch.utils.data.TensorDataset(torch.from_numpy(x_test.transpose(0, 3, 1, 2).copy()), torch.from_numpy(y_test))
    from_data = from_torch("t", as_tensors, test)
    from_numpy = from_arrays("t", x_train, y_train, x_test, y_test)
    np.testing.assert_array_equal(from_data.train.inputs, from_numpy.train.inputs)
    np.testing.assert_array_equal(from_data.test.labels, from_numpy.test.labels)
    assert from_data.source == from_numpy.source


def test_the_c_form_adds_the_corruptions_of_the_test_split_beside_the_files_own_ood(tmp_path):
    from bench.data.colour import COLOUR_CORRUPTIONS
    from bench.data.corruptions import CORRUPTIONS

    rng = np.random.default_rng(0)
    gray = tmp_path / "gray.npz"
    x = rng.integers(0, 256, (6, 28, 28), dtype=np.uint8)
    np.savez(gray, x_train=x, y_train=np.arange(6) % 2, x_test=x, y_test=np.arange(6) % 2, ood_other=x[::-1])
    dataset = load_dataset(f"npz-c:{gray}", data_dir=tmp_path / "data")
    assert dataset.name == "gray-c" and set(dataset.ood) == {"other", *CORRUPTIONS}
    assert dataset.ood_kinds["other"] == "semantic" and dataset.ood_kinds["fog"] == "covariate"
    rgb = tmp_path / "rgb.npz"
    np.savez(rgb, x_train=colour(4), y_train=np.arange(4) % 2, x_test=colour(3, 1), y_test=np.arange(3) % 2)
    assert len(load_dataset(f"npz-c:{rgb}", data_dir=tmp_path / "data").ood) == 5 * len(COLOUR_CORRUPTIONS)
    odd = tmp_path / "odd.npz"
    y = rng.integers(0, 256, (4, 20, 20), dtype=np.uint8)
    np.savez(odd, x_train=y, y_train=np.zeros(4, int), x_test=y, y_test=np.zeros(4, int))
    with pytest.raises(BenchError, match="are 20x20; the MNIST-C corruptions are defined for 28x28"):
        load_dataset(f"npz-c:{odd}", data_dir=tmp_path / "data")

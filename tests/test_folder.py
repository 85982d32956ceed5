"""Image folders: train/<class>/ and test/<class>/, read with Pillow, one size and mode for all."""

import numpy as np
import pytest
from PIL import Image

from bench.data import load_dataset
from bench.errors import BenchError

CLASSES = ("cat", "dog", "owl")


def write_folder(root, mode="RGB", size=(6, 4), per_class=3, seed=0):
    """Images of known pixels; returns {(split, class, index): pixels}."""
    rng = np.random.default_rng(seed)
    written = {}
    for split in ("train", "test"):
        for name in CLASSES:
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for k in range(per_class):
                shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
                pixels = rng.integers(0, 256, shape, dtype=np.uint8)
                Image.fromarray(pixels, mode).save(root / split / name / f"{k}.png")
                written[split, name, k] = pixels
    return written


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_folder_round_trip_keeps_pixels_labels_and_class_names(tmp_path, mode):
    written = write_folder(tmp_path / "pets", mode)
    dataset = load_dataset(f"folder:{tmp_path / 'pets'}")
    assert dataset.name == "pets" and dataset.classes == CLASSES and dataset.n_classes == 3
    assert dataset.input_shape == ((3, 4, 6) if mode == "RGB" else (1, 4, 6))
    order = [(name, k) for name in CLASSES for k in range(3)]
    for split in ("train", "test"):
        inputs = getattr(dataset, split).inputs
        expected = np.stack([written[split, name, k] for name, k in order])
        np.testing.assert_array_equal(inputs, expected.transpose(0, 3, 1, 2) if mode == "RGB" else expected)
        np.testing.assert_array_equal(getattr(dataset, split).labels, [CLASSES.index(name) for name, _ in order])


def test_hidden_files_are_ignored(tmp_path):
    write_folder(tmp_path / "pets")
    (tmp_path / "pets" / "train" / "cat" / ".DS_Store").write_bytes(b"\x00")
    assert len(load_dataset(f"folder:{tmp_path / 'pets'}").train) == 9


def damage_size(root):
    Image.fromarray(np.zeros((5, 5, 3), np.uint8)).save(root / "test" / "dog" / "1.png")


def damage_mode(root):
    Image.fromarray(np.zeros((4, 6), np.uint8)).save(root / "train" / "owl" / "2.png")


@pytest.mark.parametrize("damage, message", [
    (damage_size, "test/dog/1.png is a 5x5 RGB image but the folder's first image is a 6x4 RGB one"),
    (damage_mode, "train/owl/2.png is a 6x4 L image but the folder's first image is a 6x4 RGB one"),
    (lambda root: Image.fromarray(np.zeros((4, 6, 4), np.uint8), "RGBA").save(root / "train" / "cat" / "0.png"),
     "train/cat/0.png has mode RGBA; images must be L (grayscale) or RGB"),
    (lambda root: (root / "train" / "dog" / "notes.txt").write_text("hello"), "train/dog/notes.txt is not an image file"),
    (lambda root: (root / "train" / "dog" / "broken.png").write_bytes(b"\x89PNG broken"), "cannot be read as an image"),
    (lambda root: (root / "train" / "emu").mkdir(), "class folder"),
    (lambda root: (root / "test" / "yak").mkdir(), "test/yak is a class that the training split does not have"),
], ids=["mixed sizes", "mixed modes", "another mode", "a non-image file", "a broken image", "an empty class",
        "a label outside the classes"])
def test_bad_folders_name_the_file_and_the_defect(tmp_path, damage, message):
    write_folder(tmp_path / "pets")
    damage(tmp_path / "pets")
    with pytest.raises(BenchError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_dataset(f"folder:{tmp_path / 'pets'}")


@pytest.mark.slow
def test_class_and_folder_names_are_escaped_in_the_report(tmp_path):
    from bench.cli import main

    root = tmp_path / "<i>pets"
    for split in ("train", "test"):
        for k, name in enumerate(["<b>cat", "$dog$"]):
            (root / split / name).mkdir(parents=True)
            for i in range(4):
                Image.fromarray(np.full((8, 8, 3), 60 * k + 10 * i, np.uint8)).save(root / split / name / f"{i}.png")
    out = tmp_path / "out"
    assert main(["run", "--dataset", f"folder:{root}", "--model", "mlp", "--scorers", "loss,max-softmax",
                 "--seeds", "1", "--epochs", "1", "--out", str(out), "--no-progress"]) == 0
    assert main(["report", str(out)]) == 0  # a class named $dog$ is text, not mathtext
    page = (out / "report.html").read_text()
    assert "<i>pets" not in page and "&lt;i&gt;pets" in page


def test_the_c_form_adds_the_colour_corruptions_of_the_test_split(tmp_path):
    from bench.data.colour import COLOUR_CORRUPTIONS

    write_folder(tmp_path / "pets", per_class=2)
    dataset = load_dataset(f"folder-c:{tmp_path / 'pets'}", data_dir=tmp_path / "data")
    assert dataset.name == "pets-c" and len(dataset.ood) == 5 * len(COLOUR_CORRUPTIONS)
    assert dataset.ood["fog@5"].inputs.shape == dataset.test.inputs.shape

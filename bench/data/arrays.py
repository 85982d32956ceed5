"""Datasets from arrays: ``npz:PATH``, numpy arrays in Python, or a ``torch.utils.data.Dataset``.

Images are stored as bench trains on them: ``(n, h, w)`` for one channel, ``(n, c, h, w)``
otherwise; uint8 is scaled to [0, 1] when fed to the model, floats are used as they are.
One rule for the scale of every split, training, test and OoD alike: integers are pixel
intensities, so an integer array of any type (int32, int64, uint16 ...) whose values lie in
0..255 is stored as uint8, and one with a value outside 0..255 is refused; floats are used as
they are. A dataset whose splits come on different scales, integers in one and floats in
another, is refused rather than fed to the model on two scales.

Every split holds at least one image. Test and OoD labels must be classes the training split
has (a model cannot learn a class it never sees). A training split of a single class is
accepted with a ``UserWarning``: every model then predicts that class, so the difficulty and
OoD tasks mean little.

The layout of a 4-D array is read by rule, never guessed: ``(n, h, w, c)`` when only its last
axis has 1 or 3 entries, ``(n, c, h, w)`` when only its second does; when both could be the
channels, ``layout`` (``"nhwc"`` or ``"nchw"``) must say which.

An ``.npz`` holds ``x_train``, ``y_train``, ``x_test``, ``y_test``, optionally ``layout`` (a
string array), ``classes`` (the class names) and ``mislabeled`` (see below), and one
``ood_<name>`` array of images per OoD split, with ``ood_<name>_labels`` when its labels are
known (unknown labels are -1). It is read with ``allow_pickle=False``.

``mislabeled``, one flag per training image (bool, or 0 and 1), marks the training labels known
to be wrong, from an audit of the user's own: the mislabel task then finds those, as it finds the
labels ``label_noise`` shuffles (which a dataset with its own flags does not take).
"""

from __future__ import annotations

import dataclasses
import hashlib
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from bench.data.dataset import Dataset, Split, with_ood_splits
from bench.errors import BenchError

LAYOUTS = ("nhwc", "nchw")
CHANNELS = (1, 3)
REQUIRED = ("x_train", "y_train", "x_test", "y_test")


def as_images(array: Any, what: str, layout: str | None = None) -> np.ndarray:
    """``array`` as ``(n, h, w)`` or ``(n, c, h, w)`` images, uint8 or float32, by the rule of the module docstring."""
    images = np.asarray(array)
    if images.dtype != np.uint8:
        if not np.issubdtype(images.dtype, np.number) or np.issubdtype(images.dtype, np.complexfloating):
            raise BenchError(f"{what} holds {images.dtype} values; images must be uint8 (0-255), other integers in "
                             "0-255, or floats")
        if np.issubdtype(images.dtype, np.integer):
            low, high = (images.min(), images.max()) if images.size else (0, 0)
            if low < 0 or high > 255:
                raise BenchError(f"{what} holds {images.dtype} values from {low} to {high}; integer images are pixel "
                                 "intensities 0-255: rescale them to 0-255, or give floats (used as they are, e.g. in [0, 1])")
            images = images.astype(np.uint8)
        else:
            images = images.astype(np.float32)
            if not np.isfinite(images).all():
                raise BenchError(f"{what} holds NaN or infinite values; images must be finite")
    if images.ndim == 3:
        return np.ascontiguousarray(images)
    if images.ndim != 4:
        raise BenchError(f"{what} has shape {images.shape}; images must be (n, h, w), (n, h, w, c) or (n, c, h, w)")
    if layout is None:
        last, second = images.shape[3] in CHANNELS, images.shape[1] in CHANNELS
        if last == second:
            raise BenchError(f"{what} has shape {images.shape}, whose {'second and last axes could both' if last else 'neither second nor last axis could'} "
                             f"be the channels (1 or 3); say which with layout='nhwc' or 'nchw' (in an npz, an array named layout)")
        layout = "nhwc" if last else "nchw"
    if layout not in LAYOUTS:
        raise BenchError(f"layout {layout!r} is not one of {', '.join(LAYOUTS)}")
    if layout == "nhwc":
        images = images.transpose(0, 3, 1, 2)
    if images.shape[1] not in CHANNELS:
        raise BenchError(f"{what} has {images.shape[1]} channels in layout {layout}; images have 1 or 3")
    return np.ascontiguousarray(images[:, 0] if images.shape[1] == 1 else images)


def as_labels(array: Any, what: str, n: int, n_classes: int | None = None) -> np.ndarray:
    labels = np.asarray(array)
    if labels.shape != (n,):
        raise BenchError(f"{what} has shape {labels.shape} for {n} images; labels must be (n,), one per image")
    if not np.issubdtype(labels.dtype, np.integer):
        raise BenchError(f"{what} holds {labels.dtype} values; labels must be integer class numbers 0, 1, 2, ...")
    if n and (labels.min() < 0 or (n_classes is not None and labels.max() >= n_classes)):
        limit = f"0 to {n_classes - 1}" if n_classes else "0 or more"
        raise BenchError(f"{what} holds labels from {labels.min()} to {labels.max()}; they must be {limit}")
    return labels.astype(np.int64)


def refuse_empty_or_mixed_scales(images: dict[str, np.ndarray]) -> None:
    """Every split (by array name) holds an image, and all hold integers 0-255 (uint8) or all floats."""
    for what, array in images.items():
        if not len(array):
            fix = "give it at least one image" if what in ("x_train", "x_test") else "leave the array out, or give it images"
            raise BenchError(f"{what} is empty (shape {array.shape}); {fix}")
    intensities = [what for what, array in images.items() if array.dtype == np.uint8]
    floats = [what for what in images if what not in intensities]
    if intensities and floats:
        raise BenchError(f"{', '.join(intensities)}: integers 0-255 (pixel intensities, scaled to [0, 1] for the model) "
                         f"but {', '.join(floats)}: floats (used as they are), so the model would see two scales; give "
                         "every split as integers 0-255, or every split as floats (e.g. x / 255.0 for [0, 1])")


def refuse_untrained_classes(labels: np.ndarray, what: str, trained: np.ndarray) -> None:
    untrained = np.setdiff1d(labels, trained)
    if len(untrained):
        shown = ", ".join(map(str, untrained[:10])) + (f" ... ({len(untrained)} in all)" if len(untrained) > 10 else "")
        raise BenchError(f"{what} holds labels {shown} that no training example has (y_train's classes: "
                         f"{', '.join(map(str, trained[:10]))}{' ...' if len(trained) > 10 else ''}); a model cannot "
                         "learn a class it never sees: remove those examples, or add training examples of those classes")


def as_flags(array: Any, what: str, n: int) -> np.ndarray:
    """``array`` as one bool per training image: bools, or integers 0 and 1."""
    flags = np.asarray(array)
    if flags.shape != (n,):
        raise BenchError(f"{what} has shape {flags.shape} for {n} training images; give one flag per image, True where "
                         "the label is known to be wrong")
    if flags.dtype != bool and not (np.issubdtype(flags.dtype, np.integer) and np.isin(flags, (0, 1)).all()):
        raise BenchError(f"{what} holds {flags.dtype} values other than 0 and 1; give bools, True where the label is "
                         "known to be wrong")
    return flags.astype(bool)


def content_digest(*arrays: np.ndarray) -> str:
    """SHA-256 of the arrays' types, shapes and bytes: what a dataset's cache keys are made of
    (SHA-256 rather than MD5: twice as fast where the processor has SHA instructions)."""
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(str((array.dtype, array.shape)).encode())
        digest.update(memoryview(np.ascontiguousarray(array)).cast("B"))
    return digest.hexdigest()[:32]


def from_arrays(name: str, x_train: Any, y_train: Any, x_test: Any, y_test: Any, ood: dict[str, Any] | None = None,
                ood_labels: dict[str, Any] | None = None, classes: list[str] | None = None,
                layout: str | None = None, origin: str | None = None, mislabeled: Any = None) -> Dataset:
    """A dataset from arrays (anything ``numpy.asarray`` takes); ``ood`` maps split names to images.
    ``origin`` says where they came from, in the dataset's provenance (default: ``arrays <name>``);
    ``mislabeled``, the training labels known to be wrong (the module's docstring)."""
    n_classes = len(classes) if classes else None
    images = {"x_train": as_images(x_train, "x_train", layout), "x_test": as_images(x_test, "x_test", layout),
              **{f"ood_{split}": as_images(array, f"ood_{split}", layout) for split, array in (ood or {}).items()}}
    refuse_empty_or_mixed_scales(images)
    train_x, test_x = images["x_train"], images["x_test"]
    flags = None if mislabeled is None else as_flags(mislabeled, "mislabeled", len(train_x))
    train = Split(train_x, as_labels(y_train, "y_train", len(train_x), n_classes), noisy=flags)
    test = Split(test_x, as_labels(y_test, "y_test", len(test_x), n_classes))
    if train_x.shape[1:] != test_x.shape[1:]:
        raise BenchError(f"x_train images are {train_x.shape[1:]} but x_test images {test_x.shape[1:]}; they must match")
    trained = np.unique(train.labels)
    refuse_untrained_classes(test.labels, "y_test", trained)
    splits = {}
    for split in ood or {}:
        split_x = images[f"ood_{split}"]
        if split_x.shape[1:] != train_x.shape[1:]:
            raise BenchError(f"ood_{split} images are {split_x.shape[1:]} but the training images {train_x.shape[1:]}; "
                             "an OoD split must have the training images' shape")
        known = (ood_labels or {}).get(split)
        labels = np.full(len(split_x), -1) if known is None else as_labels(known, f"ood_{split}_labels", len(split_x))
        if known is not None:
            refuse_untrained_classes(labels, f"ood_{split}_labels", trained)
        splits[split] = Split(split_x, labels.astype(np.int64))
    if len(trained) == 1:
        warnings.warn(f"{name}: every training example is of class {trained[0]}, so a model predicts it everywhere and "
                      "the difficulty and OoD tasks mean little; add training examples of other classes", UserWarning,
                      stacklevel=2)
    n_classes = n_classes or int(max(train.labels.max(initial=0), test.labels.max(initial=0))) + 1
    source = f"{origin or f'arrays {name}'} (content sha256 {content_digest(train_x, train.labels, test_x, test.labels, *[s.inputs for s in splits.values()])})"
    kinds = {split: "semantic" if (s.labels < 0).all() else "covariate" for split, s in splits.items()}
    dataset = Dataset(name, n_classes, train, test, splits, source=source, classes=tuple(classes or ()), ood_kinds=kinds)
    if flags is None:
        return dataset
    # the mislabel task's truth: other flags are other units, of the same trained models
    return dataclasses.replace(dataset, source=f"{source}; mislabeled flags (sha256 {content_digest(flags)})",
                               training_source=source)


def from_torch(name: str, train: Any, test: Any, ood: dict[str, Any] | None = None,
               classes: list[str] | None = None) -> Dataset:
    """A dataset from ``torch.utils.data.Dataset`` objects whose items are (image, label): images as
    tensors or arrays, channels first (as torchvision's ``ToTensor`` gives them) or 2-D."""
    def stack(dataset: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
        items = [dataset[i] for i in range(len(dataset))]
        if not items:
            raise BenchError(f"{what} is empty")
        images = np.stack([np.asarray(image) for image, _ in items])
        return images, np.asarray([int(label) for _, label in items])

    (x_train, y_train), (x_test, y_test) = stack(train, "the training dataset"), stack(test, "the test dataset")
    layout = "nchw" if x_train.ndim == 4 else None
    ood_items = {split: stack(dataset, f"OoD dataset {split}") for split, dataset in (ood or {}).items()}
    return from_arrays(name, x_train, y_train, x_test, y_test, {s: x for s, (x, _) in ood_items.items()},
                       {s: y for s, (_, y) in ood_items.items()}, classes, layout)


def load_npz_c(path: Path, roots: list[Path]) -> Dataset:
    """``npz-c:PATH``: the npz dataset with the corrupted copies of its test split added (see ``with_corruptions``)."""
    return with_corruptions(load_npz(path, roots), roots)


def with_corruptions(dataset: Dataset, roots: list[Path]) -> Dataset:
    """``dataset`` and its ``-c`` variant: the corruptions of its test split, generated once into the data root
    (MNIST-C's for 28x28 grayscale images, CIFAR-10-C's for colour ones) when first used, named ``<name>-c``."""
    from bench.data.corrupted import lazy_corrupted_splits

    corrupted, source = lazy_corrupted_splits(dataset.name, dataset.test, roots)
    combined = with_ood_splits(dataset, corrupted, "covariate", source, f"the corruptions of {dataset.name}")
    return dataclasses.replace(combined, name=f"{dataset.name}-c")


def load_npz(path: Path, roots: list[Path]) -> Dataset:
    """``npz:PATH``: the arrays of the module docstring, named after the file."""
    if not path.is_file():
        raise BenchError(f"npz file {path} does not exist; give --dataset npz:PATH with PATH an .npz of x_train, "
                         "y_train, x_test, y_test")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError, EOFError) as error:
        raise BenchError(f"{path} is not a readable .npz ({error}); write it with numpy.savez") from None
    missing = [key for key in REQUIRED if key not in arrays]
    if missing:
        raise BenchError(f"{path} has no array {', '.join(missing)}; an npz dataset holds {', '.join(REQUIRED)} "
                         f"(it holds {', '.join(sorted(arrays)) or 'nothing'})")
    layout = str(arrays["layout"]) if "layout" in arrays else None
    classes = [str(c) for c in arrays["classes"]] if "classes" in arrays else None
    ood = {key[4:]: value for key, value in arrays.items() if key.startswith("ood_") and not key.endswith("_labels")}
    labels = {key[4:-7]: value for key, value in arrays.items() if key.startswith("ood_") and key.endswith("_labels")}
    orphans = sorted(set(labels) - set(ood))
    if orphans:
        raise BenchError(f"{path} has ood_{orphans[0]}_labels but no ood_{orphans[0]} images")
    try:
        return from_arrays(path.stem, arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"],
                           ood, labels, classes, layout, mislabeled=arrays.get("mislabeled"))
    except BenchError as error:
        raise BenchError(f"{path}: {error}") from None

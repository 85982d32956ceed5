"""What a dataset is to the harness: a training split, a clean test split and OoD splits, and the
changes a run makes to one (label noise, a smaller training split, other datasets as OoD splits,
exact copies of in-distribution images dropped from the OoD splits).

A dataset is fixed for a given name: the corrupted copies and the label noise do not change
with the run's seed, only training does, as with the static MNIST-C files.

Files are looked up in the data roots, in order: ``--data-dir``, the ``BENCH_DATA``
environment variable, then ``datasets/`` at the project root. Files that bench creates
(downloads, generated corruptions) go to the first of them.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from bench.data.filerows import FileRows
from bench.errors import BenchError

PROJECT_DATA = Path(__file__).resolve().parents[2] / "datasets"
LABEL_NOISE_SEED = 0
STATISTICS_CHUNK = 4096  # images converted to float64 at once for the channel statistics
# What an OoD split is to the OoD task, which averages each kind apart (``mean:<kind>``): near and far semantic
# OoD as OpenOOD v1.5 splits them, covariate shift (a corruption of the test split), or semantic OoD of no stated
# distance (another dataset of no known pair).
OOD_KINDS = ("near", "far", "covariate", "semantic")
# OpenOOD v1.5's near and far OoD of CIFAR-10 (its DATA_INFO), as (in-distribution, OoD dataset) -> kind, for the
# datasets bench loads by name; CIFAR-100's fine and coarse labels share its test images. Its others have no loader
# here (TinyImageNet near; SVHN, Places365 far) or another dataset under the name: bench's ``textures`` is cut from
# scikit-image's brick, grass and gravel, not OpenOOD's Textures (DTD). Those take a stated kind (``ood_kind``).
OPENOOD_KINDS = {("cifar10", "cifar100"): "near", ("cifar10", "cifar100-coarse"): "near", ("cifar10", "mnist"): "far"}


@dataclass(frozen=True)
class Split:
    """Examples of one split. ``inputs`` of dtype uint8 are pixel intensities in [0, 255]."""

    inputs: np.ndarray  # (n, h, w) for one channel, (n, c, h, w) for several
    labels: np.ndarray  # (n,) int64; -1 where the label is unknown (an OoD split of another dataset)
    noisy: np.ndarray | None = None  # (n,) bool, True where label noise changed the label
    boundary_distance: np.ndarray | None = None  # (n,) distance to the Bayes boundary, where the data's generator knows it
    paired_with_test: bool = False  # image i is the test split's image i corrupted: the two are resampled together

    def __post_init__(self) -> None:
        if len(self.inputs) != len(self.labels):
            raise ValueError(f"split has {len(self.inputs)} inputs but {len(self.labels)} labels")
        if self.boundary_distance is not None and len(self.boundary_distance) != len(self.labels):
            raise ValueError(f"split has {len(self.labels)} labels but {len(self.boundary_distance)} boundary distances")

    def subset(self, index: np.ndarray) -> Split:
        """The examples at ``index``, in its order, no longer paired with the test split's images."""
        return dataclasses.replace(
            self, inputs=self.inputs[index], labels=self.labels[index], paired_with_test=False,
            noisy=None if self.noisy is None else self.noisy[index],
            boundary_distance=None if self.boundary_distance is None else self.boundary_distance[index])

    def __len__(self) -> int:
        return len(self.labels)


class LazySplits(Mapping[str, Split]):
    """OoD splits whose arrays are read or generated when first used, a group at a time, then kept.

    ``groups`` maps a group to the names of its splits and ``make(group)`` returns them (a colour
    corruption's 5 severities come from one file): a dataset used for its test split alone (``--ood``),
    or for some of its corruptions, never reads or generates the others.
    """

    def __init__(self, groups: Mapping[str, Sequence[str]], make: Callable[[str], Mapping[str, Split]]) -> None:
        self._group = {split: group for group, splits in groups.items() for split in splits}
        self._make = make
        self._made: dict[str, Split] = {}

    def __getitem__(self, split: str) -> Split:
        if split not in self._made:
            self._made.update(self._make(self._group[split]))
        return self._made[split]

    def __contains__(self, split: object) -> bool:
        return split in self._group  # Mapping's would make the split to find out

    def __iter__(self) -> Iterator[str]:
        return iter(self._group)

    def __len__(self) -> int:
        return len(self._group)


def lazy_view(owners: Mapping[str, Mapping[str, Split]]) -> LazySplits:
    """The splits named in ``owners`` (split -> the mapping that holds it), each taken from its mapping when first used."""
    return LazySplits({split: (split,) for split in owners}, functools.partial(_taken_from, dict(owners)))


def _taken_from(owners: dict[str, Mapping[str, Split]], split: str) -> dict[str, Split]:
    return {split: owners[split][split]}


@dataclass(frozen=True)
class Dataset:
    name: str
    n_classes: int
    train: Split
    test: Split  # clean, in-distribution
    ood: Mapping[str, Split] = field(default_factory=dict)  # OoD split name -> split (a corruption, another dataset); may be a LazySplits
    source: str = ""  # where the data comes from, precisely enough that different data never share a cache entry
    training_source: str = ""  # the part of ``source`` a trained model depends on, where OoD splits were added later
    classes: tuple[str, ...] = ()  # class names, where the data has them (image folders, CIFAR)
    ood_kinds: dict[str, str] = field(default_factory=dict)  # OoD split -> one of OOD_KINDS; "covariate" if absent
    ood_dropped: dict[str, int] = field(default_factory=dict)  # OoD split -> images dropped: in-distribution copies

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one model input; grayscale images get a channel axis."""
        shape = self.train.inputs.shape[1:]
        return (1, *shape) if len(shape) == 2 else shape

    @property
    def trained_on(self) -> str:
        """The provenance of what a model trains on: ``source`` without the OoD splits added to the dataset (``--ood``,
        dropped copies), so that adding or changing them reuses the trained models and rescores them."""
        return self.training_source or self.source

    def splits(self) -> dict[str, Split]:
        """Every scored split by name: train, test, then the OoD splits."""
        return {"train": self.train, "test": self.test, **self.ood}

    def channel_statistics(self) -> tuple[list[float], list[float]]:
        """Per-channel mean and (population) standard deviation of the training images, on the scale the
        model sees (uint8 pixels / 255): the input normalisation of ``normalize = true``."""
        images = self.train.inputs
        rows = FileRows.of(images) or images  # a memory-mapped file is read, not mapped page by page
        shape = (len(images), 1, *images.shape[1:]) if images.ndim == 3 else images.shape
        total, squares = np.zeros(shape[1]), np.zeros(shape[1])
        for start in range(0, len(images), STATISTICS_CHUNK):  # float64 a chunk at a time, not a copy of the split
            chunk = rows[start:start + STATISTICS_CHUNK].astype(np.float64).reshape(-1, *shape[1:])
            total += chunk.sum(axis=(0, 2, 3))
            squares += np.square(chunk).sum(axis=(0, 2, 3))
        count = shape[0] * shape[2] * shape[3]
        scale = 255.0 if images.dtype == np.uint8 else 1.0
        mean = total / count
        std = np.sqrt(np.maximum(squares / count - mean**2, 0.0))
        return (mean / scale).tolist(), (std / scale).tolist()


def data_roots(data_dir: str | Path | None = None) -> list[Path]:
    """The folders searched for data, in order; the first one receives what bench writes."""
    roots = [Path(data_dir)] if data_dir else []
    if os.environ.get("BENCH_DATA"):
        roots.append(Path(os.environ["BENCH_DATA"]))
    roots.append(PROJECT_DATA if PROJECT_DATA.is_dir() else Path.cwd() / "datasets")
    return list(dict.fromkeys(roots))


def to_channels(inputs: np.ndarray, channels: int) -> np.ndarray:
    """Images with 1 or 3 channels as ``channels`` channels: gray repeated into RGB, or RGB to its
    luma (ITU-R 601, 0.299 R + 0.587 G + 0.114 B, as Pillow's ``convert("L")``)."""
    have = 1 if inputs.ndim == 3 else inputs.shape[1]
    if have == channels:
        return inputs
    if channels == 3:
        return np.repeat(inputs[:, None], 3, axis=1)
    luma = np.tensordot(inputs.astype(np.float64), [0.299, 0.587, 0.114], axes=([1], [0]))
    return np.rint(luma).astype(np.uint8) if inputs.dtype == np.uint8 else luma.astype(inputs.dtype)


def openood_resize(images: np.ndarray, side: int) -> np.ndarray:
    """Images resized as OpenOOD v1.5 evaluates every set, torchvision's ``Resize(side)`` then ``CenterCrop(side)``
    on a PIL image: the shorter side scaled to ``side`` and the longer to ``int(side * long / short)`` by Pillow's
    bilinear filter, then the centre ``side`` x ``side`` cut, its offsets ``int(round((extent - side) / 2))``
    (Python's round, as torchvision's); an image already ``side`` x ``side`` is left as it is. Each channel is
    resized on its own (Pillow's mode L for uint8, F for floats), which equals Pillow on the RGB image."""
    from PIL import Image

    height, width = images.shape[-2:]
    if (height, width) == (side, side):
        return images
    size = (side, int(side * width / height)) if height <= width else (int(side * height / width), side)
    top, left = (int(round((extent - side) / 2.0)) for extent in size)
    channels = images.reshape(-1, height, width)
    out = np.empty((len(channels), side, side), images.dtype)
    for i, channel in enumerate(channels):
        scaled = np.asarray(Image.fromarray(channel).resize(size[::-1], Image.BILINEAR))
        out[i] = scaled[top:top + side, left:left + side]
    return out.reshape(*images.shape[:-2], side, side)


def with_ood_splits(dataset: Dataset, splits: dict[str, Split], kind: str, source: str, what: str) -> Dataset:
    """``dataset`` with ``splits`` added as OoD splits of ``kind`` and ``source`` added to its provenance;
    a split name it already has is refused (``what`` says where the new splits come from)."""
    taken = sorted(set(splits) & {"train", "test", *dataset.ood})
    if taken:
        raise BenchError(f"{what}: {dataset.name} already has a split of that name ({taken[0]}); rename one of them")
    owners = {**dict.fromkeys(dataset.ood, dataset.ood), **dict.fromkeys(splits, splits)}  # nothing read here
    return dataclasses.replace(dataset, ood=lazy_view(owners),
                               ood_kinds={**dataset.ood_kinds, **dict.fromkeys(splits, kind)},
                               source=f"{dataset.source}; {source}", training_source=dataset.trained_on)


def with_semantic_ood(dataset: Dataset, others: list[Dataset], kinds: Mapping[str, str] | None = None,
                      resize: str = "none") -> Dataset:
    """Add the test split of each of ``others`` as an OoD split named after it, of the kind ``kinds`` states for
    that name (``ood_kind``), else OpenOOD v1.5's for the pair (``OPENOOD_KINDS``: ``cifar100`` is near OoD of
    ``cifar10``, ``mnist`` far), else ``semantic``. The kind is written in the provenance, so a unit made under
    another kind is not reused.

    Channels are converted by ``to_channels``; pixel types must match. An image of another size is refused, or
    with ``resize="openood"`` (``ood_resize``) resized after the channels by ``openood_resize`` to the square size
    of the dataset's images, as OpenOOD converts to RGB before it resizes; the rule and the sizes are written in
    the provenance of each split it resizes. Their labels are unknown (-1).
    """
    if resize not in ("none", "openood"):
        raise BenchError(f"ood_resize {resize!r} is no rule; none (another size refused) or openood")
    kinds = dict(kinds or {})
    for name, kind in kinds.items():
        if kind not in OOD_KINDS:
            raise BenchError(f"ood_kind {name}={kind}: {kind!r} is no kind of OoD; one of {', '.join(OOD_KINDS)}")
        if name not in {other.name for other in others}:
            names = ", ".join(other.name for other in others) or "none"
            raise BenchError(f"ood_kind {name}={kind}: no --ood dataset is named {name} (the OoD datasets, named as "
                             f"their splits: {names}); name one of them, or add it with --ood")
    home = dataset.name.split("[")[0]  # without [label_noise=...], [train_size=...]
    shape = dataset.test.inputs.shape[1:]
    channels = 1 if len(shape) == 2 else shape[0]
    size = "x".join(map(str, shape[-2:]))
    for other in others:
        images, resized = other.test.inputs, ""
        if (images.dtype == np.uint8) != (dataset.test.inputs.dtype == np.uint8):
            raise BenchError(f"--ood {other.name}: its pixels are {images.dtype} but those of {dataset.name} "
                             f"{dataset.test.inputs.dtype}; give both as uint8 or both as floats")
        images = to_channels(images, channels)
        if images.shape[-2:] != shape[-2:]:
            own = "x".join(map(str, images.shape[-2:]))
            if resize == "none":
                raise BenchError(f"--ood {other.name}: its images are {own} but those of {dataset.name} {size}, and "
                                 "images are never resized silently; give --ood-resize openood (config key ood_resize) "
                                 "for OpenOOD's rule (the shorter side scaled to the size by Pillow's bilinear filter, "
                                 "then the centre crop), or resize them yourself")
            if shape[-1] != shape[-2]:
                raise BenchError(f"--ood {other.name}: --ood-resize openood resizes to a square (OpenOOD's Resize(S) + "
                                 f"CenterCrop(S)), but the images of {dataset.name} are {size}; resize them yourself")
            images = openood_resize(images, shape[-1])
            resized = (f"; resized from {own} to {size} by ood_resize openood (OpenOOD v1.5's Resize({shape[-1]}) + "
                       f"CenterCrop({shape[-1]}): the shorter side by Pillow's bilinear filter, the centre crop)")
        kind = kinds.get(other.name) or OPENOOD_KINDS.get((home, other.name), "semantic")
        split = Split(images, np.full(len(images), -1))
        dataset = with_ood_splits(dataset, {other.name: split}, kind,
                                  f"{kind} OoD {other.name}: {other.source}{resized}", f"--ood {other.name}")
    return dataset


def _image_digests(images: np.ndarray, dtype: np.dtype) -> Iterator[bytes]:
    """The SHA-256 of each image's bytes, as an array of ``dtype``."""
    for image in images.reshape(len(images), -1):
        yield hashlib.sha256(np.ascontiguousarray(image, dtype)).digest()


def copies_of(images: np.ndarray, *references: np.ndarray) -> np.ndarray:
    """Which of ``images`` are exact copies of an image of ``references``: one bool per image, by a content hash
    (SHA-256) of each image's bytes, every array in the dtype they share (``numpy.result_type``) and in the layout
    it has, so the images must already be in the references' layout (an OoD split is, in the dataset it joins)."""
    dtype = np.result_type(images.dtype, *(reference.dtype for reference in references))
    return _found(images, dtype, _digest_set(references, dtype))


def _digest_set(references: Sequence[np.ndarray], dtype: np.dtype) -> set[bytes]:
    return {digest for reference in references for digest in _image_digests(reference, dtype)}


def _found(images: np.ndarray, dtype: np.dtype, seen: set[bytes]) -> np.ndarray:
    """Which of ``images`` have their digest (as ``dtype``) in ``seen``."""
    return np.fromiter((digest in seen for digest in _image_digests(images, dtype)), bool, len(images))


def without_in_distribution_copies(dataset: Dataset, published: Dataset) -> Dataset:
    """``dataset`` with every image of an OoD split that is an exact copy (``copies_of``) of an in-distribution
    image dropped before anything scores it: an image of the training or test split of ``published``, the dataset
    as loaded (its training split whole, where ``dataset`` trains on fewer examples). A copy is no OoD example,
    whether another dataset holds it (two records of CIFAR-100's test set are CIFAR-10 images) or a corruption
    left an image unchanged.

    The count of each split that loses images goes into ``ood_dropped`` (the units' meta, then the notes of its
    leaderboard rows) and into the provenance; a split without copies stays as it is, and a dataset whose splits
    have none is returned unchanged, so its cache entries stay valid. A corrupted split that loses images is no longer paired with the
    test split (its intervals are stratified, as for another dataset's images); one left empty is refused.
    """
    reference = (published.train.inputs, published.test.inputs)
    splits, dropped = {}, {}
    seen: dict[np.dtype, set[bytes]] = {}  # the in-distribution digests, hashed once per dtype, not once per split
    for name, split in dataset.ood.items():
        dtype = np.result_type(split.inputs.dtype, *(images.dtype for images in reference))
        if dtype not in seen:
            seen[dtype] = _digest_set(reference, dtype)
        copies = _found(split.inputs, dtype, seen[dtype])
        if copies.all():
            raise BenchError(f"OoD split {name} of {dataset.name}: each of its {len(copies)} images is an exact copy of "
                             "an in-distribution image (training or test split), so none is left to score as OoD; "
                             "leave it out (--ood, --corruptions) or give other images")
        if copies.any():
            splits[name] = split.subset(~copies)
            dropped[name] = int(copies.sum())
    if not dropped:
        return dataset
    counts = ", ".join(f"{name} {count}" for name, count in dropped.items())
    return dataclasses.replace(dataset, ood={**dataset.ood, **splits}, ood_dropped=dropped,
                               training_source=dataset.trained_on,
                               source=f"{dataset.source}; exact copies of in-distribution images dropped from the OoD "
                                      f"splits: {counts}")


def with_label_noise(dataset: Dataset, fraction: float, seed: int = LABEL_NOISE_SEED) -> Dataset:
    """Shuffle the labels of a random ``fraction`` of the training examples among themselves.

    This is the VoG paper's Sec. 4.1 protocol. An example whose shuffled label happens to
    equal its own is not counted as noisy: ``noisy`` marks the labels that are wrong.
    """
    if not 0.0 <= fraction < 1.0:
        raise BenchError(f"label noise {fraction} is outside [0, 1); give the fraction of training labels to shuffle, e.g. 0.2")
    if fraction == 0.0:
        return dataset
    if dataset.train.noisy is not None:
        raise BenchError(f"{dataset.name} carries its own flags of mislabeled training labels, which the mislabel task "
                         "finds; label noise would shuffle labels over them: leave label_noise at 0, or drop the flags")
    rng = np.random.default_rng(seed)
    labels = dataset.train.labels.copy()
    chosen = rng.choice(len(labels), size=round(fraction * len(labels)), replace=False)
    labels[chosen] = labels[rng.permutation(chosen)]
    train = dataclasses.replace(dataset.train, labels=labels, noisy=labels != dataset.train.labels)
    return _with_new_training(dataset, f"label noise {fraction} (seed {seed})",
                              name=f"{dataset.name}[label_noise={fraction}]", train=train)


def with_train_size(dataset: Dataset, size: int, seed: int = 0) -> Dataset:
    """``dataset`` with ``size`` of its training examples, drawn per class in proportion to the class's share
    (scikit-learn's stratified split, seed ``seed``), in their original order; all of them for 0."""
    if not size or size >= len(dataset.train.labels):
        return dataset
    train = dataset.train.subset(stratified_sample(dataset.train.labels, size, seed))
    return _with_new_training(dataset, f"{size} training examples (stratified, seed {seed})",
                              name=f"{dataset.name}[train_size={size}]", train=train)


def stratified_sample(labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    """The sorted indices of ``size`` of ``labels``, drawn per class in proportion (scikit-learn's stratified split)."""
    from sklearn.model_selection import train_test_split

    kept, _ = train_test_split(np.arange(len(labels)), train_size=size, stratify=labels, random_state=seed)
    return np.sort(kept)


def with_corrupted_size(dataset: Dataset, size: int, seed: int = 0) -> Dataset:
    """``dataset`` with each split of corrupted test images cut to the copies of the same ``size`` test images,
    drawn per class in proportion (``stratified_sample``, seed ``seed``), in their order; all for 0 or a ``size`` of
    at least the test split's. A cut split is scored apart from the clean images it corrupts (stratified intervals,
    no longer paired with the test split). The cut is written in the provenance, not in the training's."""
    if not size or size >= len(dataset.test):
        return dataset  # before the splits are read: lazy ones stay unread
    paired = [name for name, split in dataset.ood.items() if split.paired_with_test]
    if not paired:
        return dataset
    kept = stratified_sample(dataset.test.labels, size, seed)
    splits = {name: dataset.ood[name].subset(kept) for name in paired}
    return dataclasses.replace(dataset, ood={**dataset.ood, **splits}, training_source=dataset.trained_on,
                               source=f"{dataset.source}; the corrupted copies of {size} test images in each corrupted "
                                      f"split (stratified, seed {seed})")


def _with_new_training(dataset: Dataset, note: str, **changes: Any) -> Dataset:
    """``dataset`` with ``changes`` to what a model trains on, and ``note`` added to both of its provenances."""
    training_source = f"{dataset.training_source}; {note}" if dataset.training_source else ""
    return dataclasses.replace(dataset, **changes, source=f"{dataset.source}; {note}", training_source=training_source)


def refuse_test_set_alone(dataset: Dataset) -> None:
    """Refuse a dataset without training images (a test set alone, as CIFAR-100's test file without ``train.bin``)
    as the dataset of a run, to train on or to corrupt: it serves as an OoD split only (``--ood``)."""
    if not len(dataset.train):
        raise BenchError(f"{dataset.name} has no training images ({dataset.source}); a test set alone serves only as "
                         f"an OoD split (--ood {dataset.name}, config key ood): train on another dataset, or add its "
                         "training files")


def with_training_set(dataset: Dataset, train_size: int, label_noise: float) -> Dataset:
    """The training split a run trains on: ``train_size`` examples of it (all for 0), then ``label_noise`` of
    their labels shuffled, so that the noise does not depend on which examples the subset keeps out. A test set
    alone is refused (``refuse_test_set_alone``)."""
    refuse_test_set_alone(dataset)
    return with_label_noise(with_train_size(dataset, train_size), label_noise)

"""``patches`` and ``textures``: small embedded image datasets cut from the sample photos that
scikit-image and scikit-learn ship in their wheels, so the colour path runs with no download.

``patches`` (colour, 10 classes): the class of a 32x32 RGB patch is the photo it was cut from
(astronaut, cat, coffee, galaxies, stained tissue, motorcycle, retina, rocket, China, flower).
``textures`` (grayscale, 3 classes): patches of brick, grass and gravel, a second source for
semantic OoD (``--ood textures``). ``patches-c`` adds the CIFAR-10-C corruptions of the test
split at 5 severities, generated once into the data root (about 15 s). Each photo is scaled so its shorter side is 160 pixels;
training patches are cut from its top 70% and test patches from its bottom 30%, so no pixel is
in both splits. Patches are drawn at random positions with a fixed seed.

What they are good for: exercising loading, training, probing, every scorer and every task on
colour data in seconds, in CI. What they are not: a benchmark. The classes are single photos,
patches of one photo overlap and share its statistics, and the task is colour and texture
recognition rather than objects.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.data.dataset import Dataset
from bench.data.arrays import from_arrays, with_corruptions

SIDE = 32
SHORTER = 160  # pixels on the shorter side of a photo, after scaling
TRAIN_FRACTION = 0.7  # of the rows of a photo, from the top, that training patches come from
SEED = 0
PHOTOS = {  # class name -> (package, file)
    "astronaut": ("skimage", "astronaut.png"), "cat": ("skimage", "chelsea.png"), "coffee": ("skimage", "coffee.png"),
    "galaxies": ("skimage", "hubble_deep_field.jpg"), "tissue": ("skimage", "ihc.png"),
    "motorcycle": ("skimage", "motorcycle_left.png"), "retina": ("skimage", "retina.jpg"),
    "rocket": ("skimage", "rocket.jpg"), "china": ("sklearn", "china.jpg"), "flower": ("sklearn", "flower.jpg"),
}
TEXTURES = {"brick": ("skimage", "brick.png"), "grass": ("skimage", "grass.png"), "gravel": ("skimage", "gravel.png")}


def _photo(package: str, name: str, mode: str) -> np.ndarray:
    from PIL import Image

    if package == "skimage":
        import skimage.data

        folder = Path(skimage.data.__file__).parent
    else:
        import sklearn.datasets

        folder = Path(sklearn.datasets.__file__).parent / "images"
    with Image.open(folder / name) as image:
        image = image.convert(mode)
        scale = SHORTER / min(image.size)
        return np.asarray(image.resize((round(image.width * scale), round(image.height * scale)), Image.BILINEAR))


def _cut(photo: np.ndarray, count: int, rows: slice, rng: np.random.Generator) -> np.ndarray:
    region = photo[rows]
    tops = rng.integers(0, region.shape[0] - SIDE + 1, count)
    lefts = rng.integers(0, region.shape[1] - SIDE + 1, count)
    return np.stack([region[top:top + SIDE, left:left + SIDE] for top, left in zip(tops, lefts)])


def _patches(name: str, photos: dict[str, tuple[str, str]], mode: str, train: int, test: int) -> Dataset:
    rng = np.random.default_rng(SEED)
    x_train, y_train, x_test, y_test = [], [], [], []
    for label, (package, file) in enumerate(photos.values()):
        photo = _photo(package, file, mode)
        split = round(TRAIN_FRACTION * photo.shape[0])
        x_train.append(_cut(photo, train, slice(0, split), rng))
        x_test.append(_cut(photo, test, slice(split, None), rng))
        y_train += [label] * train
        y_test += [label] * test
    return from_arrays(name, np.concatenate(x_train), np.array(y_train), np.concatenate(x_test), np.array(y_test),
                       classes=list(photos), layout="nhwc" if mode == "RGB" else None,
                       origin=f"{name}: {SIDE}x{SIDE} patches of the sample photos of scikit-image and scikit-learn, "
                              f"seed {SEED}")


def load_patches(roots: list[Path]) -> Dataset:
    return _patches("patches", PHOTOS, "RGB", train=120, test=40)


def load_patches_c(roots: list[Path]) -> Dataset:
    """``patches`` with its test split under the CIFAR-10-C corruptions at 5 severities (generated once)."""
    return with_corruptions(load_patches(roots), roots)


def load_textures(roots: list[Path]) -> Dataset:
    return _patches("textures", TEXTURES, "L", train=60, test=40)

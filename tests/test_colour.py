"""The CIFAR-10-C colour corruptions: against independent ports where the recipe is deterministic, in
statistics where it is random, severity by severity; and the generated variant of a colour dataset."""

import colorsys
import importlib.util
import io
import sys
from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from bench.data import Split, corrupted, load_dataset
from bench.data.colour import (COLOUR_CORRUPTIONS, FROST_PHOTOS, SEVERITIES, SYNTHETIC_FROST, corrupt_colour, frost,
                               frost_blend, frost_photographs, frost_textures)
from bench.errors import BenchError


@pytest.fixture(scope="module")
def images():
    """Sixteen 32x32 colour patches (n, 3, h, w) uint8."""
    return load_dataset("patches").test.inputs[::25]


def nhwc(x):
    return x.transpose(0, 2, 3, 1).astype(np.float64) / 255


def as_uint8(x):
    """The official script's np.uint8 of clip(x) * 255: truncation."""
    return (np.clip(x, 0, 1) * 255).astype(np.uint8).transpose(0, 3, 1, 2)


@pytest.mark.parametrize("name", COLOUR_CORRUPTIONS)
def test_every_corruption_keeps_the_shape_is_a_function_of_the_seed_and_changes_the_image(images, name):
    for severity in (1, SEVERITIES):
        first = corrupt_colour(images, name, severity, seed=0)
        assert first.shape == images.shape and first.dtype == np.uint8
        np.testing.assert_array_equal(first, corrupt_colour(images, name, severity, seed=0))
        assert (first != images).any()


MONOTONE = [name for name in COLOUR_CORRUPTIONS if name not in ("glass_blur", "elastic_transform", "frost")]


@pytest.mark.parametrize("name", MONOTONE)
def test_severity_moves_the_image_further_from_the_clean_one(images, name):
    """Not for glass_blur (severities 3 and 5 blur the same pixel moves more widely than 2 and 4), elastic_transform,
    whose recipe trades affine jitter (largest at severity 1) for displacement as severity grows, nor frost, whose
    recipe dims the image (weights 1, 1, 0.9, 0.85, 0.75) faster than it adds frost (0.2, 0.3, 0.4, 0.4, 0.45) after
    severity 3: the official photographs move the patches 32, 46, 54, 51 and 52 gray levels on average."""
    distance = [np.abs(corrupt_colour(images, name, s, seed=0).astype(float) - images).mean() for s in range(1, 6)]
    assert all(a <= b + 0.05 for a, b in zip(distance, distance[1:])), distance


def test_contrast_scales_each_channel_about_its_mean(images):
    x = nhwc(images)
    for severity, factor in enumerate([0.75, 0.5, 0.4, 0.3, 0.15], start=1):
        expected = np.stack([(image - image.mean(axis=(0, 1))) * factor + image.mean(axis=(0, 1)) for image in x])
        np.testing.assert_array_equal(corrupt_colour(images, "contrast", severity, 0), as_uint8(expected))


def test_brightness_raises_the_hsv_value_as_colorsys_computes_it(images):
    x = nhwc(images[:2])
    for severity, amount in ((1, 0.05), (5, 0.3)):
        expected = np.array([[[colorsys.hsv_to_rgb(h, s, min(v + amount, 1.0))
                               for h, s, v in (colorsys.rgb_to_hsv(*pixel) for pixel in row)] for row in image]
                             for image in x])
        got = corrupt_colour(images[:2], "brightness", severity, 0).astype(int)
        assert np.abs(got - as_uint8(expected).astype(int)).max() <= 1  # float rounding before truncation


def test_pixelate_and_jpeg_match_pillow_one_image_at_a_time(images):
    for severity, (factor, quality) in enumerate(zip([0.95, 0.9, 0.85, 0.75, 0.65], [80, 65, 58, 50, 40]), start=1):
        pixelated, compressed = [], []
        for image in images.transpose(0, 2, 3, 1):
            pil = Image.fromarray(image)
            side = int(32 * factor)
            pixelated.append(np.asarray(pil.resize((side, side), Image.BOX).resize((32, 32), Image.BOX)))
            buffer = io.BytesIO()
            pil.save(buffer, "JPEG", quality=quality)
            compressed.append(np.asarray(Image.open(buffer)))
        np.testing.assert_array_equal(corrupt_colour(images, "pixelate", severity, 0), np.stack(pixelated).transpose(0, 3, 1, 2))
        np.testing.assert_array_equal(corrupt_colour(images, "jpeg_compression", severity, 0),
                                      np.stack(compressed).transpose(0, 3, 1, 2))


def test_defocus_blur_is_the_antialiased_disk_of_the_original(images):
    """An independent port: the disk built and blurred with explicit loops, edges reflected without the edge pixel."""
    x = nhwc(images[:3])
    for severity, (radius, alias) in enumerate([(0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)], start=1):
        grid = np.arange(-8, 9)
        disk = np.array([[float(r * r + c * c <= radius * radius) for c in grid] for r in grid])
        disk /= disk.sum()
        taps = np.exp(-np.array([1.0, 0.0, 1.0]) / (2 * alias * alias))
        taps /= taps.sum()
        padded = np.pad(disk, 1, mode="reflect")  # numpy's reflect is OpenCV's reflect-101
        kernel = sum(taps[i] * taps[j] * padded[i:i + 17, j:j + 17] for i in range(3) for j in range(3))
        padded = np.pad(x, ((0, 0), (8, 8), (8, 8), (0, 0)), mode="reflect")
        expected = sum(kernel[i, j] * padded[:, i:i + 32, j:j + 32] for i in range(17) for j in range(17))
        got = corrupt_colour(images[:3], "defocus_blur", severity, 0).astype(int)
        assert np.abs(got - as_uint8(expected).astype(int)).max() <= 1


def test_zoom_blur_averages_centre_zooms_as_the_original_clipped_zoom(images):
    x = nhwc(images[:2]).astype(np.float32)
    for severity, top in ((1, 1.06), (5, 1.26)):
        expected = []
        for image in x:
            total = np.zeros_like(image)
            factors = np.arange(1, top, 0.01)
            for factor in factors:
                crop = int(np.ceil(32 / factor))
                start = (32 - crop) // 2
                zoomed = ndimage.zoom(image[start:start + crop, start:start + crop], (factor, factor, 1), order=1)
                trim = (zoomed.shape[0] - 32) // 2
                total += zoomed[trim:trim + 32, trim:trim + 32]
            expected.append((image + total) / (len(factors) + 1))
        np.testing.assert_array_equal(corrupt_colour(images[:2], "zoom_blur", severity, 0), as_uint8(np.stack(expected)))


def test_the_noises_have_the_recipes_statistics():
    gray = np.full((64, 3, 32, 32), 128, np.uint8)
    level = 128 / 255
    for severity, scale in ((1, 0.04), (5, 0.10)):
        noise = corrupt_colour(gray, "gaussian_noise", severity, 0) / 255 - level
        assert noise.std() == pytest.approx(scale, rel=0.05)
    for severity, photons in ((1, 500), (5, 50)):
        counts = corrupt_colour(gray, "shot_noise", severity, 0) / 255
        assert counts.mean() == pytest.approx(level, abs=0.005)
        assert counts.var() == pytest.approx(level / photons, rel=0.1)  # Poisson: variance = mean / photons
    for severity, amount in ((1, 0.01), (5, 0.07)):
        hit = corrupt_colour(gray, "impulse_noise", severity, 0)
        assert ((hit == 0) | (hit == 255)).mean() == pytest.approx(amount, rel=0.1)
        assert (hit == 255).sum() == pytest.approx((hit == 0).sum(), rel=0.15)  # salt as often as pepper


def test_blurs_and_warps_leave_a_flat_image_flat_fog_keeps_the_brightest_value_and_snow_brightens():
    flat = np.full((8, 3, 32, 32), 100, np.uint8)
    for name in ("glass_blur", "motion_blur", "elastic_transform", "defocus_blur", "zoom_blur"):
        out = corrupt_colour(flat, name, 5, 0).astype(int)
        assert np.abs(out - 100).max() <= 1, name
    fogged = corrupt_colour(flat, "fog", 5, 0)
    assert fogged.max() <= 100 and fogged.std() > 5  # (x + a p) m / (m + a) never passes the brightest m
    assert corrupt_colour(flat, "snow", 5, 0).mean() > 100


def test_frost_blend_is_the_closed_form_of_the_original():
    x = np.array([[[[0.5, 1.0, 0.0], [0.2, 0.4, 0.6]]]])
    texture = np.array([[[[0.5, 0.8, 1.0], [0.0, 0.5, 1.0]]]])
    np.testing.assert_allclose(frost_blend(x, texture, 1), [[[[0.6, 1.0, 0.2], [0.2, 0.5, 0.8]]]])
    np.testing.assert_allclose(frost_blend(x, texture, 3), [[[[0.65, 1.0, 0.4], [0.18, 0.56, 0.94]]]])
    np.testing.assert_allclose(frost_blend(x, texture, 5), [[[[0.6, 1.0, 0.45], [0.15, 0.525, 0.9]]]])


WHEEL = importlib.util.find_spec("torch_uncertainty_assets") is not None
needs_wheel = pytest.mark.skipif(not WHEEL, reason="the frost photographs' wheel is not installed: pip install -e '.[frost]'")


@pytest.fixture
def no_wheel(monkeypatch):
    """torch_uncertainty_assets cannot be imported, installed or not."""
    monkeypatch.setitem(sys.modules, "torch_uncertainty_assets", None)


def test_frost_crops_a_texture_without_the_wheel_and_differs_between_seeds(images, no_wheel):
    """On black images frost is 0.45 times its crop: every crop is a 32x32 window of one of the textures drawn
    first, at an offset the original draws (below 64 and 96)."""
    assert frost_photographs((32, 32)) == (None, SYNTHETIC_FROST)
    out = frost(np.zeros((16, 32, 32, 3)), 5, np.random.default_rng(7)) / 0.45
    textures = frost_textures((96, 128), np.random.default_rng(7))
    for crop in out:
        starts = zip(*np.nonzero((np.abs(textures[:, :64, :96] - crop[0, 0]) < 1e-9).all(axis=-1)))
        assert any(np.allclose(textures[k, a:a + 32, b:b + 32], crop) for k, a, b in starts)
    assert (corrupt_colour(images, "frost", 3, seed=0) != corrupt_colour(images, "frost", 3, seed=1)).any()


# The official draws (frost1.png, frost2.png, frost3.png, the same photograph as frost2.png, frost4.jpg and frost5.jpg)
# by their numbers in the wheel, which holds frost1-2 re-encoded as JPEG and frost4-6.jpg as frost3-5.jpg.
OFFICIAL_IN_WHEEL = [1, 2, 2, 3, 4]


def opencv_resize_by_a_fifth(image):
    """OpenCV's bilinear ``resize(image, (0, 0), fx=0.2, fy=0.2)``: round(0.2 n) pixels per axis, output pixel i
    interpolated at input (i + 0.5) / 0.2 - 0.5, the last pixel repeated past the edge."""
    for axis in (0, 1):
        n = image.shape[axis]
        at = (np.arange(round(0.2 * n)) + 0.5) / 0.2 - 0.5
        low = np.floor(at).astype(int)
        weight = np.expand_dims(at - low, 1 - axis)[..., None]
        image = (1 - weight) * image.take(low, axis) + weight * image.take(np.minimum(low + 1, n - 1), axis)
    return image


def wheel_photograph(number):
    """A wheel photograph read as the original reads its own (RGB after BGR), resized by 0.2, in gray levels."""
    with (files("torch_uncertainty_assets") / "frost" / f"frost{number}.jpg").open("rb") as handle:
        return opencv_resize_by_a_fifth(np.asarray(Image.open(handle).convert("RGB"), dtype=np.float64))


@needs_wheel
def test_frost_blends_a_crop_of_a_resized_official_photograph(images):
    """The original's draws from the same generator: a photograph, then the crop's top and left below its height and
    width less 32; the image blended with that crop in closed form. Seeds differ."""
    x, photos = nhwc(images), [wheel_photograph(number) for number in OFFICIAL_IN_WHEEL]
    rng = np.random.default_rng(11)
    pick = rng.integers(5, size=len(x))
    top = rng.integers(0, [photos[k].shape[0] - 32 for k in pick])
    left = rng.integers(0, [photos[k].shape[1] - 32 for k in pick])
    assert len(set(pick)) > 2
    for severity, (image_weight, frost_weight) in ((1, (1, 0.2)), (5, (0.75, 0.45))):
        got = frost(x, severity, np.random.default_rng(11)) * 255
        for i, (k, a, b) in enumerate(zip(pick, top, left)):
            expected = np.clip(image_weight * x[i] * 255 + frost_weight * photos[k][a:a + 32, b:b + 32], 0, 255)
            np.testing.assert_allclose(got[i], expected, atol=1e-6)
    assert (corrupt_colour(images, "frost", 3, seed=0) != corrupt_colour(images, "frost", 3, seed=1)).any()


@needs_wheel
def test_the_wheel_holds_the_official_photographs():
    """After the 0.2 resize, the wheel's photographs for the five draws have the mean R, G, B and luma standard deviation
    measured on the official ones (FROST_PHOTOS) within 0.5 gray levels: frost1.png and frost2.png, re-encoded as JPEG,
    are 0.3 apart at most, the others are the official files. Images too large for a crop get the textures."""
    photos, source = frost_photographs((32, 32))
    assert source.startswith("frost photographs: torch-uncertainty-assets ")
    stats = [[*(photo * 255).mean(axis=(0, 1)), (photo * 255 @ [0.299, 0.587, 0.114]).std()] for photo in photos]
    np.testing.assert_allclose(stats, FROST_PHOTOS, atol=0.5)
    for photo, number in zip(photos, OFFICIAL_IN_WHEEL):
        np.testing.assert_allclose(photo * 255, wheel_photograph(number), atol=1e-9)
    assert frost_photographs((63, 32)) == (None, f"{SYNTHETIC_FROST} (the resized photographs hold no 63x32 crop)")
    assert frost(np.zeros((2, 63, 32, 3)), 1, np.random.default_rng(0)).shape == (2, 63, 32, 3)


def test_the_frost_used_names_the_generated_folder_its_manifest_and_the_source(images, monkeypatch, no_wheel):
    """Variants with different frost never share a folder, a manifest or a source line (and so no cached result)."""
    test = Split(images, np.arange(len(images)))

    def identity():
        return (corrupted.colour_folder("patches", test, Path("data")), corrupted._colour_recipe(test)["frost"],
                corrupted._colour_source(test))

    synthetic = identity()
    photographs = "frost photographs: torch-uncertainty-assets 0.5.2"
    monkeypatch.setattr(corrupted, "frost_photographs", lambda shape: (None, photographs))
    assert synthetic[1] == SYNTHETIC_FROST and synthetic[2].endswith(f"seed 0, {SYNTHETIC_FROST})")
    folder, recipe, source = identity()
    assert recipe == photographs and source.endswith(f"seed 0, {photographs})")
    assert folder.parent == synthetic[0].parent and folder.name.startswith("patches-c-") and folder != synthetic[0]


def test_frost_textures_have_the_statistics_of_the_official_photographs():
    """Per texture: the mean R, G, B (bluish: B > G > R) and luma contrast of its photograph, neighbour differences of
    0.59-0.75 of the contrast and crops holding 0.79-0.89 of it, as the photographs' (after the 0.2 resize)."""
    textures = frost_textures((96, 128), np.random.default_rng(0)) * 255
    assert textures.shape == (5, 96, 128, 3) and textures.min() >= 0 and textures.max() <= 255
    np.testing.assert_allclose(textures.mean(axis=(1, 2)), FROST_PHOTOS[:, :3], atol=1.5)
    luma = textures @ np.array([0.299, 0.587, 0.114])
    np.testing.assert_allclose(luma.std(axis=(1, 2)), FROST_PHOTOS[:, 3], rtol=0.06)
    assert (np.diff(textures.mean(axis=(1, 2)), axis=1) > 0).all()
    steps = np.abs(np.diff(luma, axis=2)).mean(axis=(1, 2)) / luma.std(axis=(1, 2))
    assert ((0.59 < steps) & (steps < 0.75)).all(), steps
    crops = np.stack([luma[:, a:a + 32, b:b + 32] for a in range(0, 64, 8) for b in range(0, 96, 8)], axis=1)
    held = crops.std(axis=(2, 3)).mean(axis=1) / luma.std(axis=(1, 2))
    assert ((0.79 < held) & (held < 0.89)).all(), held


def test_frost_severity_follows_the_recipe(images):
    """Further from the clean image up to severity 3; 4 and 5 stay further than 2 (see the monotone test)."""
    distance = [np.abs(corrupt_colour(images, "frost", s, seed=0).astype(float) - images).mean() for s in range(1, 6)]
    assert distance[0] < distance[1] < distance[2] and min(distance[3:]) > distance[1], distance


def test_unknown_corruptions_and_wrong_images_are_refused(images):
    with pytest.raises(BenchError, match="unknown colour corruption 'frosting'; known: .*snow, frost, fog"):
        corrupt_colour(images, "frosting", 1, 0)
    with pytest.raises(BenchError, match="takes uint8 images of shape"):
        corrupt_colour(images[:, 0], "fog", 1, 0)


@pytest.mark.slow
def test_a_colour_dataset_gets_its_corrupted_variant_once(tmp_path, capsys):
    first = load_dataset("patches-c", data_dir=tmp_path)
    assert len(first.ood) == len(COLOUR_CORRUPTIONS) * SEVERITIES and "CIFAR-10-C recipe" in first.source
    assert {split.rpartition("@")[2] for split in first.ood} == {"1", "2", "3", "4", "5"}
    [folder] = tmp_path.iterdir()
    assert folder.name.startswith("patches-c-") and (folder / "generated.json").is_file()
    stamp = (folder / "fog.npy").stat().st_mtime_ns
    again = load_dataset("patches-c", data_dir=tmp_path)
    assert (folder / "fog.npy").stat().st_mtime_ns == stamp  # read, not built again
    np.testing.assert_array_equal(again.ood["fog@3"].inputs, first.ood["fog@3"].inputs)
    np.testing.assert_array_equal(first.ood["contrast@2"].inputs, corrupt_colour(first.test.inputs, "contrast", 2, 0))

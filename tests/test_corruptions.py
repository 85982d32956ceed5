"""Each MNIST-C corruption against its defining property, and the affine ones against scikit-image."""

import numpy as np
import pytest
from scipy import stats

from bench.data.corruptions import CORRUPTIONS, corrupt
from bench.data.digits import load_digits_c


@pytest.fixture(scope="module")
def digits():
    return load_digits_c().test.inputs  # uint8 (540, 28, 28), digits inside a centred 20x20 box


def ink(images):
    return images.reshape(len(images), -1).astype(np.float64).sum(axis=1)


def centre_of_mass(images):
    rows, cols = np.indices(images.shape[1:])
    mass = ink(images)
    return np.stack([(images * rows).sum((1, 2)) / mass, (images * cols).sum((1, 2)) / mass], axis=1)


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_shape_dtype_range_and_determinism(digits, name):
    out = corrupt(digits, name, seed=3)
    assert out.shape == digits.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out, corrupt(digits, name, seed=3))
    assert not np.array_equal(out, digits)


@pytest.mark.parametrize("name", ["shot_noise", "impulse_noise", "glass_blur", "motion_blur", "shear", "rotate", "translate",
                                  "fog", "spatter", "dotted_line", "zigzag"])
def test_random_corruptions_change_with_the_seed(digits, name):
    assert not np.array_equal(corrupt(digits, name, seed=1), corrupt(digits, name, seed=2))


def test_stripe_inverts_exactly_columns_0_to_6_and_21_to_27(digits):
    out = corrupt(digits, "stripe", 0)
    inverted = np.r_[0:7, 21:28]
    np.testing.assert_array_equal(out[:, :, inverted], 255 - digits[:, :, inverted])
    np.testing.assert_array_equal(out[:, :, 7:21], digits[:, :, 7:21])


def test_brightness_is_clip_x_plus_half(digits):
    expected = np.round(np.clip(digits / 255.0 + 0.5, 0, 1) * 255).astype(np.uint8)
    np.testing.assert_array_equal(corrupt(digits, "brightness", 0), expected)


def test_translate_moves_the_centre_of_mass_3_pixels_on_both_axes(digits):
    moved = centre_of_mass(corrupt(digits, "translate", 0)) - centre_of_mass(digits)
    np.testing.assert_allclose(np.abs(moved), 3.0, atol=1e-9)
    assert {tuple(np.sign(m).astype(int)) for m in moved} == {(-1, -1), (-1, 1), (1, -1), (1, 1)}


def test_rotate_keeps_the_ink_mass(digits):
    np.testing.assert_allclose(ink(corrupt(digits, "rotate", 0)) / ink(digits), 1.0, atol=0.01)


def test_shear_scales_the_ink_mass_by_one_over_cos_s(digits):
    """The legacy shear matrix [[1, -sin s], [0, cos s]] has determinant cos s."""
    np.testing.assert_allclose(ink(corrupt(digits, "shear", 0)) / ink(digits), 1 / np.cos(0.4), rtol=0.01)


def test_scale_shrinks_the_ink_mass_to_factor_squared(digits):
    np.testing.assert_allclose(ink(corrupt(digits, "scale", 0)) / ink(digits), 0.7**2, rtol=0.03)


def test_shot_noise_mean_matches_the_clipped_poisson_expectation(digits):
    values = digits / 255.0
    counts = np.arange(60)
    # E[min(P / 3, 1)] for P ~ Poisson(3 v), for every pixel value v
    expected = (np.minimum(counts / 3, 1)[:, None, None, None] * stats.poisson.pmf(counts[:, None, None, None], 3 * values)).sum(0)
    observed = corrupt(digits, "shot_noise", 0) / 255.0
    assert observed.mean() == pytest.approx(expected.mean(), rel=0.01)


def test_impulse_noise_salts_half_of_the_hit_fraction(digits):
    out = corrupt(digits, "impulse_noise", 0)
    black = digits == 0
    assert (out[black] == 255).mean() == pytest.approx(0.17 / 2, abs=0.005)


@pytest.mark.parametrize("name, angle_or_shear", [("rotate", 0.4), ("shear", 0.4)])
def test_affine_corruptions_equal_scikit_image_legacy_warps(digits, name, angle_or_shear):
    """Each image equals skimage's warp with the legacy matrix for +s or for -s."""
    transform = pytest.importorskip("skimage.transform")
    images = digits[:20]
    out = corrupt(images, name, 0)

    def legacy(sign):
        s = sign * angle_or_shear
        linear = np.array([[np.cos(s), -np.sin(s)], [np.sin(s), np.cos(s)]]) if name == "rotate" else \
            np.array([[1, -np.sin(s)], [0, np.cos(s)]])
        matrix = np.eye(3)
        matrix[:2, :2] = linear
        matrix[:2, 2] = 13.5 * (1 - linear.sum(axis=1))
        return transform.AffineTransform(matrix=matrix)

    for image, corrupted in zip(images, out):
        candidates = [np.round(np.clip(transform.warp(image / 255.0, legacy(sign), order=1), 0, 1) * 255)
                      for sign in (1, -1)]
        assert min(np.abs(c - corrupted).max() for c in candidates) <= 1


def test_glass_blur_blurs_along_rows_only_like_legacy_multichannel_gaussian(digits):
    """skimage's legacy gaussian(multichannel=True) on a 2-D image is today's channel_axis=-1."""
    filters = pytest.importorskip("skimage.filters")
    from bench.data.corruptions import _blur

    images = digits[:5] / 255.0
    expected = np.stack([filters.gaussian(image, sigma=0.7, channel_axis=-1, mode="nearest", truncate=4.0)
                         for image in images])
    np.testing.assert_allclose(_blur(images, (0.7, 0)), expected, atol=1e-12)


def test_glass_blur_swaps_equal_the_original_per_image_loop():
    from bench.data.corruptions import shuffle_locally

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(7, 28, 28), dtype=np.uint8)
    swapping = rng.random((26, 26, 7)) < 0.5
    offsets = rng.integers(-1, 1, size=(26, 26, 7, 2))
    expected = images.copy()
    for b in range(7):  # the original's loop, one image at a time
        x = expected[b]
        for i, h in enumerate(range(27, 1, -1)):
            for j, w in enumerate(range(27, 1, -1)):
                if swapping[i, j, b]:
                    dx, dy = offsets[i, j, b]
                    x[h, w], x[h + dy, w + dx] = x[h + dy, w + dx], x[h, w]
    np.testing.assert_array_equal(shuffle_locally(images.copy(), swapping, offsets, delta=1), expected)


def test_motion_blur_equals_the_per_image_shift_and_add_port():
    import math

    from bench.data.corruptions import blur_along

    def shift(image, dx, dy):  # whole-pixel shift with edge replication, one image
        padded = np.pad(image, 28, mode="edge")
        return padded[28 - dy: 56 - dy, 28 - dx: 56 - dx]

    rng = np.random.default_rng(1)
    images = rng.random((4, 28, 28))
    angles = np.deg2rad(rng.uniform(-45, 45, size=4))
    kernel = np.exp(-np.arange(21) ** 2 / 18.0)
    kernel /= kernel.sum()
    for image, angle, blurred in zip(images, angles, blur_along(images, angles)):
        expected = sum(weight * shift(image, -math.ceil(i * math.cos(angle) - 0.5), -math.ceil(i * math.sin(angle) - 0.5))
                       for i, weight in enumerate(kernel))
        np.testing.assert_allclose(blurred, expected, atol=1e-12)


def test_fog_never_exceeds_the_brightest_clean_pixel_and_plasma_spans_0_to_1(digits):
    from bench.data.corruptions import plasma_fractal

    plasma = plasma_fractal(3, np.random.default_rng(0))
    np.testing.assert_allclose(plasma.min(axis=(1, 2)), 0)
    np.testing.assert_allclose(plasma.max(axis=(1, 2)), 1)
    out = corrupt(digits, "fog", 0).astype(int)
    assert (out.max(axis=(1, 2)) <= digits.max(axis=(1, 2)).astype(int) + 1).all()


def test_spatter_leaves_pixels_or_pulls_them_most_of_the_way_to_mud_gray(digits):
    out, clean, mud = corrupt(digits, "spatter", 0) / 255.0, digits / 255.0, 63 / 255
    changed = np.abs(out - clean) > 1 / 255
    assert changed.any()
    # x' = x (1 - m) + mud m with m >= 0.8 where it acts
    assert (np.abs(out[changed] - mud) <= 0.2 * np.abs(clean[changed] - mud) + 1 / 255).all()


def test_dotted_line_adds_ink_only_in_the_on_columns(digits):
    added = corrupt(digits, "dotted_line", 0).astype(int) - digits.astype(int)
    assert (added >= 0).all()
    off = np.r_[[c for block in range(0, 28, 4) for c in (block, block + 1)], 27]
    assert (added[:, :, off] == 0).all() and (added > 0).sum(axis=(1, 2)).min() > 0


def test_zigzag_adds_ink_between_its_end_columns(digits):
    added = corrupt(digits, "zigzag", 0).astype(int) - digits.astype(int)
    assert (added >= 0).all() and (added > 0).sum(axis=(1, 2)).min() > 0
    assert (added[:, :, :1] == 0).all() and (added[:, :, 27:] == 0).all()


def test_canny_returns_a_binary_edge_map_on_the_strokes(digits):
    out = corrupt(digits, "canny_edges", 0)
    assert set(np.unique(out)) <= {0, 255}
    rows, cols = np.nonzero(out[0])
    assert len(rows) > 10
    neighbourhood = np.pad(digits[0], 1)  # every edge pixel touches ink in the clean digit
    assert all(neighbourhood[r:r + 3, c:c + 3].max() > 0 for r, c in zip(rows, cols))

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


@pytest.mark.parametrize("name", ["shot_noise", "impulse_noise", "shear", "rotate", "translate"])
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

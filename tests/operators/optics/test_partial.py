"""PartiallyCoherent against coherent imaging (one source, tilted source), linearity in the
source weights, stacked patterns; source_points' geometry; Zernike gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import calcil as cc
from tests.helpers import fd_grad

O = cc.operators
SHAPE, DX, WL, NA = (24, 20), 0.25, 0.5, 0.6


def _sample(seed=0):
    rng = np.random.default_rng(seed)
    return np.exp(1j * rng.uniform(0, 1, SHAPE)) * rng.uniform(0.5, 1, SHAPE)


def test_one_source_at_zero_is_coherent_imaging():
    t = _sample()
    with jax.enable_x64(True):
        z = np.array([0, 0.1, -0.2, 0.4])
        A = O.PartiallyCoherent(SHAPE, DX, WL, NA, (np.zeros((1, 2)), np.ones(1)), zernike=z)
        want = (O.Intensity() @ O.Pupil(SHAPE, DX, WL, NA, zernike=z))(t)
        np.testing.assert_allclose(A(t), want, atol=1e-12)


def test_a_tilted_source_is_the_coherent_image_of_the_tilted_field():
    t = _sample(1)
    f = np.array([[0.3, -0.45]])  # (fy, fx), cycles per unit length
    y, x = np.meshgrid(np.arange(SHAPE[0]) * DX, np.arange(SHAPE[1]) * DX, indexing="ij")
    tilted = t * np.exp(2j * np.pi * (f[0, 0] * y + f[0, 1] * x))
    with jax.enable_x64(True):
        A = O.PartiallyCoherent(SHAPE, DX, WL, NA, (f, np.array([2.0])))
        want = 2.0 * np.abs(O.Pupil(SHAPE, DX, WL, NA)(tilted)) ** 2
        np.testing.assert_allclose(A(t), want, atol=1e-12)


def test_linear_in_the_weights_and_stacked_patterns():
    t = _sample(2)
    f = np.array([[0.0, 0.0], [0.25, 0.2], [-0.4, 0.1]])
    w1, w2 = np.array([1.0, 0.0, 0.5]), np.array([0.2, 1.0, 0.0])
    with jax.enable_x64(True):

        def image(w):
            return O.PartiallyCoherent(SHAPE, DX, WL, NA, (f, w))(t)

        np.testing.assert_allclose(
            image(2 * w1 + 3 * w2), 2 * image(w1) + 3 * image(w2), atol=1e-12
        )
        both = O.PartiallyCoherent(SHAPE, DX, WL, NA, [(f, w1), (f, w2)])
        out = both(t)
        assert out.shape == (2, *SHAPE)
        np.testing.assert_allclose(out[1], image(w2), atol=1e-12)


def test_source_points():
    r = 0.4 / 0.5
    f, w = O.source_points("disk", 0.4, 0.5, 9)
    assert np.all(np.hypot(*f.T) <= r * (1 + 1e-9)) and np.isclose(w.sum(), 1)
    assert len(f) == np.sum(
        np.hypot(*np.meshgrid(np.linspace(-1, 1, 9), np.linspace(-1, 1, 9))) <= 1 + 1e-9
    )
    f, _ = O.source_points("annulus", 0.4, 0.5, 12)
    np.testing.assert_allclose(np.hypot(*f.T), r)
    f, _ = O.source_points("half", 0.4, 0.5, 9, angle=np.pi / 2)  # toward +y
    assert np.all(f[:, 0] >= -1e-12) and f[:, 0].max() > 0
    f, _ = O.source_points("half", 0.4, 0.5, 9, angle=np.pi)  # toward -x
    assert np.all(f[:, 1] <= 1e-12)
    with pytest.raises(ValueError, match="kind must be one of"):
        O.source_points("ring", 0.4, 0.5, 9)
    with pytest.raises(ValueError, match="na_illumination must be a positive"):
        O.source_points("disk", -0.4, 0.5, 9)


@pytest.mark.parametrize("n", [7, 8])
def test_opposite_half_disks_add_up_to_the_disk(n):
    """The diameter's points (odd n) are in both halves at half weight."""
    t = _sample(5)
    with jax.enable_x64(True):
        disk = O.PartiallyCoherent(SHAPE, DX, WL, NA, O.source_points("disk", 0.5, WL, n))(t)
        for angle in (0.0, np.pi / 2, np.pi / 4):
            halves = [O.source_points("half", 0.5, WL, n, angle=a) for a in (angle, angle + np.pi)]
            both = O.PartiallyCoherent(SHAPE, DX, WL, NA, halves)(t)
            np.testing.assert_allclose(both[0] + both[1], 2 * disk, atol=1e-12)
    _, w = O.source_points("half", 0.5, WL, 7)
    assert np.isclose(w.sum(), 1) and np.isclose(w.max(), 2 * w.min())  # 7 on the diameter


def test_gradient_with_respect_to_the_zernike_coefficients():
    t = _sample(3)
    f, w = O.source_points("annulus", 0.3, 0.5, 4)
    weights = np.random.default_rng(4).standard_normal(SHAPE)
    with jax.enable_x64(True):

        def loss(c):
            return jnp.sum(weights * O.PartiallyCoherent(SHAPE, DX, WL, NA, (f, w), zernike=c)(t))

        c = np.array([0.0, 0.2, -0.1, 0.3])
        np.testing.assert_allclose(jax.grad(loss)(c), fd_grad(loss, c), rtol=1e-5, atol=1e-7)


def test_malformed_sources_are_refused():
    with pytest.raises(ValueError, match=r"frequencies must have shape \(n, 2\)"):
        O.PartiallyCoherent(SHAPE, DX, WL, NA, (np.zeros((3, 3)), np.ones(3)))
    with pytest.raises(ValueError, match="same n"):
        O.PartiallyCoherent(
            SHAPE, DX, WL, NA, [(np.zeros((3, 2)), np.ones(3)), (np.zeros((2, 2)), np.ones(2))]
        )

"""Ptychography against the NumPy far field of probe * crop (integer positions) and of the
Fourier-shifted probe (sub-pixel positions); energy; gradients with respect to the positions,
the probe and the object against finite differences; traced leaves; bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import calcil as cc
from tests.helpers import fd_grad

O = cc.operators
SHAPE = (30, 34)


def _complex(rng, shape):
    return rng.uniform(0.5, 1.0, shape) * np.exp(1j * rng.uniform(-np.pi, np.pi, shape))


def _numpy_far_field(t, probe, position):
    """|fftshift(fft2(probe shifted by frac(p) * t[floor(p) ...], norm="ortho"))|^2 (odd
    probe sizes: the Fourier shift has no Nyquist term)."""
    corner = np.floor(position).astype(int)
    r = np.asarray(position) - corner
    py, px = probe.shape
    fy, fx = np.meshgrid(np.fft.fftfreq(py), np.fft.fftfreq(px), indexing="ij")
    shifted = np.fft.ifft2(np.fft.fft2(probe) * np.exp(-2j * np.pi * (fy * r[0] + fx * r[1])))
    crop = t[corner[0] : corner[0] + py, corner[1] : corner[1] + px]
    return np.abs(np.fft.fftshift(np.fft.fft2(shifted * crop, norm="ortho"))) ** 2


@pytest.mark.parametrize("probe_shape", [(8, 10), (9, 11)])
def test_integer_positions_equal_the_numpy_far_field(probe_shape):
    rng = np.random.default_rng(0)
    t, probe = _complex(rng, SHAPE), _complex(rng, probe_shape)
    positions = np.array([[0, 0], [3, 7], [SHAPE[0] - probe_shape[0], SHAPE[1] - probe_shape[1]]])
    with jax.enable_x64(True):
        A = O.Ptychography(SHAPE, probe, positions)
        out = np.asarray(A(t))
    assert out.shape == (3, *probe_shape) and out.dtype == np.float64
    for image, p in zip(out, positions, strict=True):
        crop = t[p[0] : p[0] + probe_shape[0], p[1] : p[1] + probe_shape[1]]
        want = np.abs(np.fft.fftshift(np.fft.fft2(probe * crop))) ** 2 / probe.size
        np.testing.assert_allclose(image, want, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(image.sum(), np.sum(np.abs(probe * crop) ** 2), rtol=1e-10)


def test_sub_pixel_positions_shift_the_probe():
    rng = np.random.default_rng(1)
    t, probe = _complex(rng, SHAPE), _complex(rng, (9, 11))
    positions = np.array([[2.25, 5.5], [10.9, 0.1], [20.5, 22.75]])
    with jax.enable_x64(True):
        out = np.asarray(O.Ptychography(SHAPE, probe, positions)(t))
    for image, p in zip(out, positions, strict=True):
        np.testing.assert_allclose(image, _numpy_far_field(t, probe, p), rtol=1e-9, atol=1e-12)


def test_a_smooth_probe_moves_continuously_across_a_pixel_boundary():
    """A probe well inside its window: position 4.999 and 5.0 give nearly the same pattern."""
    yy, xx = np.meshgrid(np.arange(16) - 7.5, np.arange(16) - 7.5, indexing="ij")
    probe = np.exp(-(yy**2 + xx**2) / (2 * 2.0**2)).astype(np.complex128)
    t = _complex(np.random.default_rng(2), SHAPE)
    with jax.enable_x64(True):
        A = O.Ptychography(SHAPE, probe, [[5.0 - 1e-4, 6.0], [5.0, 6.0]])
        out = np.asarray(A(t))
    np.testing.assert_allclose(out[0], out[1], atol=1e-3 * out[1].max())


def test_gradients_with_respect_to_positions_probe_and_object():
    rng = np.random.default_rng(3)
    t, probe = _complex(rng, (14, 15)), _complex(rng, (7, 6))
    positions = np.array([[1.3, 2.6], [4.7, 0.4], [6.2, 8.1]])
    with jax.enable_x64(True):
        y = O.Ptychography((14, 15), probe, np.round(positions))(t)

        @jax.jit
        def loss(pos, pr, obj):
            return 0.5 * jnp.sum((O.Ptychography((14, 15), pr, pos)(obj) - y) ** 2)

        got = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(positions, probe, t)
        want_pos = fd_grad(lambda p: loss(p, probe, t), positions)
        np.testing.assert_allclose(got[0], want_pos, rtol=1e-6, atol=1e-8)
        want_probe = np.conj(fd_grad(lambda p: loss(positions, p, t), probe))
        np.testing.assert_allclose(got[1], want_probe, rtol=1e-6, atol=1e-8)
        want_t = np.conj(fd_grad(lambda o: loss(positions, probe, o), t))
        np.testing.assert_allclose(got[2], want_t, rtol=1e-6, atol=1e-8)


def test_leaves_and_single_precision():
    rng = np.random.default_rng(4)
    probe = _complex(rng, (8, 8)).astype(np.complex64)
    A = O.Ptychography(SHAPE, probe, [[1, 2], [3.5, 4.5]])
    assert A.probe.dtype == jnp.complex64 and A.positions.dtype == jnp.float32
    assert A.output_shape == (2, 8, 8) and A.output_dtype == jnp.float32
    leaves = jax.tree_util.tree_leaves(A)
    assert any(leaf is A.probe for leaf in leaves) and any(leaf is A.positions for leaf in leaves)
    t = jnp.asarray(_complex(rng, SHAPE), jnp.complex64)
    with jax.enable_x64(True):
        A64 = O.Ptychography(SHAPE, probe.astype(complex), [[1, 2], [3.5, 4.5]])
        want = np.asarray(A64(np.asarray(t, complex)))
    np.testing.assert_allclose(A(t), want, rtol=2e-5, atol=2e-5 * want.max())


@pytest.mark.parametrize(
    ("probe_shape", "positions", "match"),
    [
        ((8, 8), [[-1, 0]], r"outside the object.*rows must lie in \[0, 23\)"),
        ((8, 8), [[0, 27.0]], r"outside the object.*columns in \[0, 27\)"),
        ((8, 8), [[0.0, 0.0, 1.0]], r"shape \(n_positions, 2\)"),
        ((8, 8), [[np.inf, 0.0]], "finite"),
        ((31, 8), [[0, 0]], "larger than the object"),
        ((8,), [[0, 0]], "2-d complex array"),
    ],
)
def test_bad_input(probe_shape, positions, match):
    with pytest.raises(ValueError, match=match):
        O.Ptychography(SHAPE, np.ones(probe_shape, np.complex64), positions)


def test_object_must_be_two_dimensional():
    with pytest.raises(ValueError, match=r"object_shape must be \(ny, nx\)"):
        O.Ptychography((2, *SHAPE), np.ones((4, 4)), [[0, 0]])


def test_concrete_positions_are_checked_also_inside_jit():
    t = jnp.ones(SHAPE, jnp.complex64)
    with pytest.raises(ValueError, match="outside the object"):
        jax.jit(lambda o: O.Ptychography(SHAPE, np.ones((8, 8)), [[-1.0, 0.0]])(o))(t)

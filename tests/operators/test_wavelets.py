"""Wavelet: PyWavelets' periodization coefficients in the coeffs_to_array layout, orthonormal,
inverse = adjoint, under jit/vmap/grad, and its errors."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import calcil as cc
from calcil.operators.wavelets import FAMILIES, filters

pywt = pytest.importorskip("pywt")

# Applied compiled: one compilation per operator instead of one per primitive and shape.
apply = jax.jit(lambda op, x: op(x))


@jax.jit
def roundtrip(op, x, z):
    """``W x``, ``W^H W x`` and ``W^H z``."""
    y = op(x)
    return y, op.H(y), op.H(z)


def _pywt(x, wavelet, levels, axes=None):
    """PyWavelets' coefficients packed into one array (``coeffs_to_array``, no padding)."""
    with warnings.catch_warnings():  # levels beyond dwt_max_level: boundary-effect warning
        warnings.simplefilter("ignore", UserWarning)
        coeffs = pywt.wavedecn(x, wavelet, mode="periodization", level=levels, axes=axes)
    return pywt.coeffs_to_array(coeffs, padding=0, axes=axes)[0]


def _random(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    if np.issubdtype(dtype, np.complexfloating):
        x = x + 1j * rng.standard_normal(shape)
    return x.astype(dtype)


@pytest.mark.parametrize("wavelet", FAMILIES)
def test_filters_are_pywavelets(wavelet):
    h, g = filters(wavelet)
    np.testing.assert_array_equal(h, pywt.Wavelet(wavelet).dec_lo)
    np.testing.assert_array_equal(g, pywt.Wavelet(wavelet).dec_hi)


# (shape, levels, axes): 2D and 3D at 1-3 levels, and subsets of the axes; db8 (16 taps) on
# axes shorter than its filter too.
CASES = [
    ((16, 32), 1, None),
    ((16, 32), 3, None),
    ((8, 16, 8), 2, None),
    ((8, 6, 16), 1, (0, 2)),
    ((16, 8, 8), 3, (1, 0)),
]


@pytest.mark.parametrize("wavelet", ["haar", "db2", "db4", "db8"])
@pytest.mark.parametrize(("shape", "levels", "axes"), CASES)
def test_coefficients_equal_pywavelets(wavelet, shape, levels, axes):
    with jax.enable_x64(True):
        x = _random(shape, np.float64)
        W = cc.operators.Wavelet(shape, wavelet, levels, axes)
        y, back, _ = roundtrip(W, x, x)
    np.testing.assert_allclose(y, _pywt(x, wavelet, levels, axes), rtol=0, atol=1e-13)
    np.testing.assert_allclose(back, x, rtol=0, atol=1e-13)


@pytest.mark.parametrize("wavelet", FAMILIES)
def test_every_family_in_single_precision(wavelet):
    x = _random((16, 8), np.float32)
    y = apply(cc.operators.Wavelet(x.shape, wavelet, levels=2), x)
    assert y.dtype == jnp.float32
    np.testing.assert_allclose(y, _pywt(x.astype(np.float64), wavelet, 2), atol=2e-5)


def test_packing_layout():
    """A constant image: all its energy in the coarsest approximation corner."""
    W = cc.operators.Wavelet((16, 8), "db4", levels=2)
    y = np.array(apply(W, jnp.ones((16, 8))))
    np.testing.assert_allclose(y[:4, :2], 4.0, atol=1e-5)  # (2^levels)^(ndim/2) = 4
    y[:4, :2] = 0
    np.testing.assert_allclose(y, 0.0, atol=1e-5)


@pytest.mark.parametrize("dtype", ["float32", "float64", "complex64", "complex128"])
def test_orthonormal_and_inverse(dtype):
    with jax.enable_x64(dtype in ("float64", "complex128")):
        W = cc.operators.Wavelet((8, 16, 8), "db3", levels=2, axes=(0, 1))
        x, z = _random(W.input_shape, dtype, seed=1), _random(W.input_shape, dtype, seed=2)
        y, back, adjoint = roundtrip(W, x, z)
        assert y.dtype == back.dtype == adjoint.dtype == jnp.dtype(dtype)
        tol = 1e-6 if dtype in ("float32", "complex64") else 1e-14
        assert abs(np.linalg.norm(y) / np.linalg.norm(x) - 1) < tol
        np.testing.assert_allclose(back, x, atol=10 * tol)
        # Dot-product test: Re <W x, z> = Re <x, W^H z>.
        lhs, rhs = np.vdot(y, z).real, np.vdot(x, adjoint).real
        assert abs(lhs - rhs) < tol * np.linalg.norm(x) * np.linalg.norm(z)
        assert isinstance(W.gram, cc.operators.Identity)


def test_vmap_and_grad():
    W = cc.operators.Wavelet((16, 16), "db2", levels=3)
    xs = jnp.asarray(_random((3, 16, 16), np.float32, seed=2))
    batched = jax.jit(jax.vmap(W))(xs)
    np.testing.assert_allclose(batched, jnp.stack([apply(W, x) for x in xs]), atol=1e-6)
    np.testing.assert_allclose(jax.jit(jax.vmap(W.H))(batched), xs, atol=1e-5)
    cc.testing.check_unitary_factorization(W, jax.random.key(1))
    grad = jax.jit(jax.grad(lambda x: jnp.sum(W(x) ** 2)))(xs[0])  # ||W x||^2 = ||x||^2
    np.testing.assert_allclose(grad, 2 * xs[0], atol=1e-5)


def test_errors():
    with pytest.raises(ValueError, match=r"haar, db1, .*db8"):
        cc.operators.Wavelet((16, 16), "sym4")
    with pytest.raises(ValueError, match=r"levels <= 2.*\(16, 16\)"):
        cc.operators.Wavelet((12, 16), "db2", levels=3)
    with pytest.raises(ValueError, match=r"odd length.*\(16, 8\)"):
        cc.operators.Wavelet((15, 8), levels=3)
    with pytest.raises(ValueError, match="levels must be an integer >= 1"):
        cc.operators.Wavelet((16, 16), levels=0)
    with pytest.raises(ValueError, match="out of range"):
        cc.operators.Wavelet((16, 16), axes=(2,))
    cc.operators.Wavelet((15, 8), levels=3, axes=(1,))  # odd axes need not be transformed
    with pytest.raises(ValueError, match=r"expects input of shape \(8, 8\)"):
        cc.operators.Wavelet((8, 8), levels=1)(jnp.ones((8, 4)))

"""FFT against numpy.fft and against the explicit DFT matrix."""

import jax
import numpy as np
import pytest

import calcil as cc
from calcil.operators import FFT
from tests.helpers import assert_close, complex_of, randn, x64

# (real dtype of the test, relative tolerance)
PRECISIONS = [
    pytest.param(np.float32, 1e-5, id="f32"),
    pytest.param(np.float64, 1e-12, id="f64"),
]
NORMS = ["ortho", "backward", "forward"]
SHAPE = (4, 5, 7)  # odd sizes make fftshift and ifftshift differ
AXES = [None, (0,), (2,), (0, 2), (-1, -2), (0, 1, 2)]


def axes_tuple(axes, ndim):
    return tuple(range(ndim)) if axes is None else tuple(a % ndim for a in axes)


def scale(norm, n):
    """The factor s in X[k] = s sum_n x[n] exp(-2 pi i k n / N)."""
    return {"ortho": 1 / np.sqrt(n), "backward": 1.0, "forward": 1.0 / n}[norm]


def numpy_adjoint(y, axes, norm, centered):
    """The conjugate transpose of fftn(norm): s * N * ifftn(norm="backward")."""
    n = np.prod([y.shape[a] for a in axes])
    if centered:  # (fftshift F ifftshift)^H = fftshift F^H ifftshift
        y = np.fft.ifftshift(y, axes=axes)
    x = scale(norm, n) * n * np.fft.ifftn(y, axes=axes)
    if centered:
        x = np.fft.fftshift(x, axes=axes)
    return x


@pytest.mark.parametrize("real, rtol", PRECISIONS)
@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("axes", AXES)
@pytest.mark.parametrize("centered", [False, True])
def test_forward_matches_numpy(real, rtol, norm, axes, centered):
    dtype = complex_of(real)
    x = randn(np.random.default_rng(0), SHAPE, dtype)
    ax = axes_tuple(axes, len(SHAPE))
    xr = x.astype(np.complex128)
    if centered:
        want = np.fft.fftshift(
            np.fft.fftn(np.fft.ifftshift(xr, axes=ax), axes=ax, norm=norm), axes=ax
        )
    else:
        want = np.fft.fftn(xr, axes=ax, norm=norm)
    with x64(real):
        op = FFT(SHAPE, axes=axes, norm=norm, centered=centered)
        y = op(x)
    assert op.input_dtype == dtype and op.output_dtype == dtype
    assert y.dtype == dtype and op.output_shape == SHAPE
    assert_close(y, want, rtol)


@pytest.mark.parametrize("real, rtol", PRECISIONS)
@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("axes", AXES)
@pytest.mark.parametrize("centered", [False, True])
def test_adjoint_matches_numpy(real, rtol, norm, axes, centered):
    dtype = complex_of(real)
    y = randn(np.random.default_rng(1), SHAPE, dtype)
    ax = axes_tuple(axes, len(SHAPE))
    want = numpy_adjoint(y.astype(np.complex128), ax, norm, centered)
    with x64(real):
        op = FFT(SHAPE, axes=axes, norm=norm, centered=centered)
        x = op.H(y)
    assert x.dtype == dtype
    assert_close(x, want, rtol)


@pytest.mark.parametrize("norm", NORMS)
def test_adjoint_of_backward_is_n_times_ifftn(norm):
    """Spelled out for one case: backward -> N ifftn, forward -> ifftn / 1, ortho -> sqrt(N)."""
    y = randn(np.random.default_rng(3), (8, 6), np.complex128)
    n = 48
    factor = {"backward": n, "forward": 1.0, "ortho": np.sqrt(n)}[norm]
    with x64(np.float64):
        x = FFT((8, 6), norm=norm).H(y)
    assert_close(x, factor * np.fft.ifftn(y), 1e-12)


@pytest.mark.parametrize("real, rtol", PRECISIONS)
@pytest.mark.parametrize("norm", NORMS)
def test_matches_dft_matrix(real, rtol, norm):
    """The operator and its adjoint as matrices: M[k, n] = s exp(-2 pi i k n / N) and M^H."""
    n = 6
    k = np.arange(n)
    m = scale(norm, n) * np.exp(-2j * np.pi * np.outer(k, k) / n)
    eye = np.eye(n, dtype=complex_of(real))
    with x64(real):
        op = FFT((n,), norm=norm)
        fwd = np.stack([np.asarray(op(e)) for e in eye], axis=1)
        adj = np.stack([np.asarray(op.H(e)) for e in eye], axis=1)
    assert_close(fwd, m, rtol)
    assert_close(adj, m.conj().T, rtol)


@pytest.mark.parametrize("real, rtol", PRECISIONS)
def test_centered_puts_origin_in_the_middle(real, rtol):
    """A delta at index n // 2 transforms to a constant; a constant to a delta at n // 2."""
    n = 7
    with x64(real):
        op = FFT((n,), centered=True)
        delta = np.zeros(n, complex_of(real))
        delta[n // 2] = 1
        assert_close(op(delta), np.full(n, 1 / np.sqrt(n)), rtol)
        want = np.zeros(n)
        want[n // 2] = np.sqrt(n)
        assert_close(op(np.ones(n, complex_of(real))), want, rtol)


@pytest.mark.parametrize("real, rtol", PRECISIONS)
@pytest.mark.parametrize("norm", NORMS)
def test_real_input_dtype(real, rtol, norm):
    """A real input dtype: complex output, and the adjoint returns the real part (real dtype)."""
    rng = np.random.default_rng(4)
    shape, ax = (6, 5), (0, 1)
    x = rng.standard_normal(shape).astype(real)
    y = randn(rng, shape, complex_of(real))
    with x64(real):
        op = FFT(shape, norm=norm, input_dtype=real)
        fx, hy = op(x), op.H(y)
        cc.testing.check_adjoint(op, jax.random.key(5))
    assert op.input_dtype == real and op.output_dtype == complex_of(real)
    assert fx.dtype == complex_of(real)
    assert hy.dtype == real
    assert_close(fx, np.fft.fftn(x.astype(np.float64), norm=norm), rtol)
    assert_close(hy, numpy_adjoint(y.astype(np.complex128), ax, norm, False).real, rtol)


@pytest.mark.parametrize("real, rtol", PRECISIONS)
@pytest.mark.parametrize("norm", NORMS)
def test_gram(real, rtol, norm):
    """F^H F = s^2 N I: the identity for ortho, N I for backward, I / N for forward."""
    shape = (4, 6)
    n = 24
    x = randn(np.random.default_rng(6), shape, complex_of(real))
    with x64(real):
        g = FFT(shape, norm=norm).gram(x)
    assert_close(g, scale(norm, n) ** 2 * n * x.astype(np.complex128), rtol)


def test_inverse_roundtrip_ortho():
    x = randn(np.random.default_rng(7), SHAPE, np.complex64)
    op = FFT(SHAPE, axes=(0, 2), centered=True)
    assert_close(op.H(op(x)), x, 1e-5)


def test_errors():
    with pytest.raises(ValueError, match="norm must be one of"):
        FFT((4,), norm="unitary")
    with pytest.raises(ValueError, match="out of range"):
        FFT((4, 4), axes=(2,))
    with pytest.raises(ValueError, match="repeats an axis"):
        FFT((4, 4), axes=(0, -2))
    with pytest.raises(ValueError, match=r"expects input of shape \(4, 4\), got \(4, 5\)"):
        FFT((4, 4))(np.zeros((4, 5), np.complex64))

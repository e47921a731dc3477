"""Identity, Diagonal, Intensity and Exp against NumPy, including their adjoints/Jacobians."""

import jax
import numpy as np
import pytest

import calcil as cc
from calcil.operators import FFT, Diagonal, Exp, Identity, Intensity
from tests.helpers import assert_close, randn, x64

DTYPES = [
    pytest.param(np.float32, 1e-5, id="f32"),
    pytest.param(np.complex64, 1e-5, id="c64"),
    pytest.param(np.float64, 1e-12, id="f64"),
    pytest.param(np.complex128, 1e-12, id="c128"),
]


def is_cx(dtype):
    return np.issubdtype(dtype, np.complexfloating)


# ------------------------------------------------------------------------------ Identity
@pytest.mark.parametrize("dtype, rtol", DTYPES)
def test_identity(dtype, rtol):
    x = randn(np.random.default_rng(0), (3, 4), dtype)
    with x64(dtype):
        op = Identity((3, 4), dtype)
        fx, hy = op(x), op.H(x)
        assert op.gram is op
    assert fx.dtype == dtype and hy.dtype == dtype
    np.testing.assert_array_equal(fx, x)
    np.testing.assert_array_equal(hy, x)


def test_identity_default_dtype():
    assert Identity((2,)).input_dtype == np.float32
    with x64(np.float64):
        assert Identity((2,)).input_dtype == np.float64


# ------------------------------------------------------------------------------ Diagonal
@pytest.mark.parametrize("dtype, rtol", DTYPES)
@pytest.mark.parametrize(
    "w_shape, in_shape, sum_axes",
    [
        ((4, 5), None, ()),
        ((5,), (4, 5), ()),  # weights broadcast over the input
        ((3, 1, 1), (4, 5), (0,)),  # three patterns on one object: (3, 4, 5) out
        ((3, 4, 5), (4, 5), (0,)),
        ((4, 1), (1, 5), (0,)),  # both broadcast: the adjoint keeps the input's unit axis
        ((2, 3, 1, 5), (4, 1), (0, 1, 3)),
    ],
)
def test_diagonal(dtype, rtol, w_shape, in_shape, sum_axes):
    rng = np.random.default_rng(1)
    w = randn(rng, w_shape, dtype)
    shape = w_shape if in_shape is None else in_shape
    x = randn(rng, shape, dtype)
    want = w.astype(np.complex128) * x
    y = randn(rng, want.shape, dtype)
    # adjoint: conj(w) y summed over the broadcast axes, back to the input shape
    want_adj = np.sum(np.conj(w) * y.astype(np.complex128), axis=sum_axes, keepdims=True)
    want_adj = want_adj.reshape(shape)
    if not is_cx(dtype):
        want, want_adj = want.real, want_adj.real
    with x64(dtype):
        op = Diagonal(w, in_shape)
        fx, hy = jax.jit(lambda op, x, y: (op(x), op.H(y)))(op, x, y)
    assert op.input_dtype == dtype and op.output_shape == want.shape
    assert fx.dtype == dtype and hy.dtype == dtype
    assert_close(fx, want, rtol)
    assert_close(hy, want_adj, rtol)


@pytest.mark.parametrize(
    "real, rtol",
    [pytest.param(np.float32, 1e-5, id="f32"), pytest.param(np.float64, 1e-12, id="f64")],
)
def test_diagonal_complex_weights_real_input(real, rtol):
    """A phase screen on a real object: complex output; the adjoint is Re(conj(w) y)."""
    rng = np.random.default_rng(2)
    cx = np.result_type(real, np.complex64)
    w, x, y = randn(rng, (3, 1, 1), cx), randn(rng, (4, 5), real), randn(rng, (3, 4, 5), cx)
    with x64(real):
        op = Diagonal(w, (4, 5), input_dtype=real)
        fx, hy = op(x), op.H(y)
    assert op.output_dtype == cx and fx.dtype == cx and hy.dtype == real
    assert_close(fx, w.astype(np.complex128) * x, rtol)
    assert_close(hy, np.sum(np.conj(w) * y.astype(np.complex128), axis=0).real, rtol)


def test_diagonal_by_hand():
    op = Diagonal(np.array([1 + 1j, 2j], np.complex64))
    np.testing.assert_array_equal(op(np.array([1, 1], np.complex64)), [1 + 1j, 2j])
    np.testing.assert_array_equal(op.H(np.array([1, 1], np.complex64)), [1 - 1j, -2j])
    cc.testing.check_adjoint(Diagonal(np.ones((3, 1), np.complex64), (1, 4)))


def test_diagonal_dtypes():
    assert Diagonal(np.ones(3, np.int32)).input_dtype == np.float32
    assert Diagonal(np.ones(3, np.complex64)).input_dtype == np.complex64


def test_diagonal_errors():
    with pytest.raises(ValueError, match=r"weights of shape \(3,\) do not broadcast"):
        Diagonal(np.ones(3), (4, 5))
    with pytest.raises(ValueError, match=r"expects input of shape \(3,\), got \(4,\)"):
        Diagonal(np.ones(3, np.float32))(np.ones(4, np.float32))


# ----------------------------------------------------------------------------- Intensity
@pytest.mark.parametrize("dtype, rtol", DTYPES)
@pytest.mark.parametrize("shape", [(5,), (3, 4), (2, 3, 4)])
def test_intensity(dtype, rtol, shape):
    u = randn(np.random.default_rng(3), shape, dtype)
    want = np.abs(u.astype(np.complex128)) ** 2
    with x64(dtype):
        y = Intensity()(u)
    assert y.dtype == np.finfo(dtype).dtype  # real output in the input's precision
    assert_close(y, want, rtol)


@pytest.mark.parametrize("dtype, rtol", DTYPES)
def test_intensity_jacobian(dtype, rtol):
    """J v = 2 Re(conj(u) v); J^H r = 2 u r (real r) under Re<.,.>."""
    rng = np.random.default_rng(4)
    u, v = randn(rng, (3, 4), dtype), randn(rng, (3, 4), dtype)
    r = randn(rng, (3, 4), np.finfo(dtype).dtype)
    uu = u.astype(np.complex128)
    with x64(dtype):
        jac = Intensity((3, 4), dtype).linearize(u)
        jv, jhr = jac(v), jac.H(r)
    assert jv.dtype == np.finfo(dtype).dtype and jhr.dtype == dtype
    assert_close(jv, 2 * np.real(np.conj(uu) * v), rtol)
    want = 2 * uu * r
    assert_close(jhr, want if is_cx(dtype) else want.real, rtol)


@pytest.mark.parametrize(
    "dtype, rtol",
    [pytest.param(np.complex64, 1e-5, id="c64"), pytest.param(np.complex128, 1e-12, id="c128")],
)
@pytest.mark.parametrize("axes, centered", [(None, False), ((1,), True)])
def test_intensity_after_fft(dtype, rtol, axes, centered):
    """Intensity() takes its shapes from the operator it is composed with."""
    shape = (4, 6)
    u = randn(np.random.default_rng(5), shape, dtype)
    ax = (0, 1) if axes is None else axes
    uu = u.astype(np.complex128)
    if centered:
        uu = np.fft.ifftshift(uu, axes=ax)
    f = np.fft.fftn(uu, axes=ax, norm="ortho")
    if centered:
        f = np.fft.fftshift(f, axes=ax)
    with x64(dtype):
        op = Intensity() @ FFT(shape, axes=axes, centered=centered)
        y = op(u)
    assert op.input_shape == shape and op.output_shape == shape
    assert op.input_dtype == dtype and op.output_dtype == np.finfo(dtype).dtype
    assert y.dtype == np.finfo(dtype).dtype
    assert_close(y, np.abs(f) ** 2, rtol)


def test_intensity_is_shape_polymorphic():
    op = Intensity()
    assert op.input_shape is None and op.output_shape is None
    assert not op.linear
    np.testing.assert_array_equal(op(np.array([3 + 4j, 1j], np.complex64)), [25, 1])


# ----------------------------------------------------------------------------------- Exp
@pytest.mark.parametrize("dtype, rtol", DTYPES)
def test_exp(dtype, rtol):
    rng = np.random.default_rng(6)
    x, v, y = (randn(rng, (3, 4), dtype) for _ in range(3))
    ex = np.exp(x.astype(np.complex128))
    if not is_cx(dtype):
        ex = ex.real
    with x64(dtype):
        fx = Exp()(x)
        jac = Exp((3, 4), dtype).linearize(x)
        jv, jhy = jac(v), jac.H(y)
    assert fx.dtype == dtype and jv.dtype == dtype and jhy.dtype == dtype
    assert_close(fx, ex, rtol)
    assert_close(jv, ex * v, rtol)  # J v = exp(x) v
    assert_close(jhy, np.conj(ex) * y, rtol)  # J^H y = conj(exp(x)) y


def test_exp_phase_screen():
    """exp(i phi) has unit modulus and phase phi."""
    phi = np.linspace(-3, 3, 7)
    with x64(np.float64):
        u = np.asarray(Exp()(1j * phi))
    assert_close(np.abs(u), np.ones(7), 1e-12)
    assert_close(np.angle(u), phi, 1e-12)

"""Convolve against a direct circular sum (np.roll) and scipy.signal.fftconvolve."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.signal

from calcil.operators import Convolve
from tests.helpers import assert_close, complex_of, randn, x64

PRECISIONS = [
    pytest.param(np.float32, 1e-5, id="f32"),
    pytest.param(np.float64, 1e-12, id="f64"),
]
# (input shape, kernel shape): 1-D and 2-D, odd and even kernels, odd and even inputs
SHAPES = [((15,), (4,)), ((9, 12), (3, 5)), ((8, 7), (4, 3))]
# (real dtype, tolerance, input complex, kernel complex): mixed real/complex in float32
CASES = [
    pytest.param(np.float32, 1e-5, False, False, id="f32-real"),
    pytest.param(np.float32, 1e-5, True, False, id="f32-cx-input"),
    pytest.param(np.float32, 1e-5, False, True, id="f32-cx-kernel"),
    pytest.param(np.float32, 1e-5, True, True, id="f32-cx-both"),
    pytest.param(np.float64, 1e-12, False, False, id="f64-real"),
    pytest.param(np.float64, 1e-12, True, True, id="f64-cx-both"),
]


def dtype_of(real, cx):
    """The real dtype ``real``, or its complex counterpart with ``cx``."""
    return complex_of(real) if cx else real


def circular_reference(x, k, axes):
    """y[n] = sum_m k[m] x[n - m + c] (indices mod N), c = k.shape // 2, with np.roll."""
    x, k = np.asarray(x, np.complex128), np.asarray(k, np.complex128)
    y = np.zeros_like(x)
    c = [s // 2 for s in k.shape]
    for m in itertools.product(*map(range, k.shape)):
        # np.roll(x, s)[n] = x[n - s]
        y += k[m] * np.roll(x, [mi - ci for mi, ci in zip(m, c, strict=True)], axis=axes)
    return y


def reference(x, k, mode):
    x, k = np.asarray(x, np.complex128), np.asarray(k, np.complex128)
    if mode == "circular":
        return circular_reference(x, k, tuple(range(x.ndim)))
    return scipy.signal.fftconvolve(x, k, mode)


def dense(fn, shape, dtype):
    """The matrix of a linear map, column by column on basis vectors."""
    eye = np.eye(int(np.prod(shape)), dtype=dtype)
    return np.stack([np.ravel(fn(e.reshape(shape))) for e in eye], axis=1)


@jax.jit
def apply_both(op, x, y):
    """Forward and adjoint in one compiled call (compiling once is faster than op by op)."""
    return op(x), op.H(y)


def cast_like(want, cx_out):
    return want if cx_out else want.real


@pytest.mark.parametrize("real, rtol, cx_x, cx_k", CASES)
@pytest.mark.parametrize("mode", ["circular", "full", "same", "valid"])
@pytest.mark.parametrize("shape, kshape", SHAPES)
def test_matches_reference(real, rtol, cx_x, cx_k, mode, shape, kshape):
    """Forward vs the reference; adjoint vs M^H, M built column by column from the reference."""
    rng = np.random.default_rng(0)
    x, k = randn(rng, shape, dtype_of(real, cx_x)), randn(rng, kshape, dtype_of(real, cx_k))
    cx_out = cx_x or cx_k
    want = cast_like(reference(x, k, mode), cx_out)
    y = randn(rng, want.shape, dtype_of(real, cx_out))
    m = dense(lambda e: reference(e, k, mode), shape, np.float64)
    want_adj = (m.conj().T @ y.astype(np.complex128).ravel()).reshape(shape)
    want_adj = want_adj if cx_x else want_adj.real  # real input space: Re(M^H y)
    with x64(real):
        op = Convolve(k, shape, mode=mode, input_dtype=x.dtype)
        got, got_adj = apply_both(op, x, y)
    out_dtype = np.result_type(x.dtype, k.dtype)
    assert op.real == (not cx_out)
    assert op.output_shape == want.shape
    assert op.output_dtype == out_dtype and got.dtype == out_dtype
    assert got_adj.dtype == x.dtype
    assert_close(got, want, rtol)
    assert_close(got_adj, want_adj, rtol)


@pytest.mark.parametrize("real, rtol, cx_x, cx_k", CASES)
@pytest.mark.parametrize("mode", ["circular", "full", "same", "valid"])
def test_gram_is_mh_m(real, rtol, cx_x, cx_k, mode):
    """A.gram x = M^H M x (its real part on a real input space), in the input's dtype."""
    rng = np.random.default_rng(13)
    shape = (6, 7)
    x, k = randn(rng, shape, dtype_of(real, cx_x)), randn(rng, (3, 4), dtype_of(real, cx_k))
    m = dense(lambda e: reference(e, k, mode), shape, np.float64)
    want = (m.conj().T @ m @ x.astype(np.complex128).ravel()).reshape(shape)
    want = want if cx_x else want.real
    with x64(real):
        gram = Convolve(k, shape, mode=mode, input_dtype=x.dtype).gram
        got = gram(x)
    assert gram.output_dtype == x.dtype and got.dtype == x.dtype
    assert_close(got, want, rtol)


@pytest.mark.parametrize("kshape", [(1, 3, 2), (3, 3, 2)])
def test_circular_gram_with_batch_kernels(kshape):
    """One kernel for all entries, or one per entry: gram = per-entry M_b^T M_b."""
    rng = np.random.default_rng(14)
    x, k = rng.standard_normal((3, 6, 5)), rng.standard_normal(kshape)
    want = []
    for b, xb in enumerate(x):
        kb = k[b % kshape[0]]
        m = dense(lambda e, kb=kb: reference(e, kb, "circular").real, (6, 5), np.float64)
        want.append((m.T @ m @ xb.ravel()).reshape(6, 5))
    with x64(np.float64):
        got = Convolve(k, x.shape, axes=(1, 2)).gram(x)
    assert_close(got, np.stack(want), 1e-12)


@pytest.mark.parametrize("kshape", [(5, 5), (4, 4), (3, 4), (1, 1)])
def test_circular_centred_delta_is_identity(kshape):
    x = np.random.default_rng(2).standard_normal((8, 9)).astype(np.float32)
    k = np.zeros(kshape, np.float32)
    k[kshape[0] // 2, kshape[1] // 2] = 1
    op = Convolve(k, x.shape)
    assert_close(op(x), x, 1e-6)
    assert_close(op.H(x), x, 1e-6)


@pytest.mark.parametrize("kshape", [(5, 5), (4, 6)])
@pytest.mark.parametrize("offset", [(1, 0), (0, 2), (-2, 1), (1, -1)])
def test_circular_offcentre_delta_shifts(kshape, offset):
    """A delta at centre + d moves the image by +d (y[n] = x[n - d]) with wrap-around."""
    x = np.random.default_rng(3).standard_normal((8, 9)).astype(np.float32)
    k = np.zeros(kshape, np.float32)
    k[kshape[0] // 2 + offset[0], kshape[1] // 2 + offset[1]] = 1
    op = Convolve(k, x.shape)
    assert_close(op(x), np.roll(x, offset, axis=(0, 1)), 1e-6)
    assert_close(op.H(x), np.roll(x, [-d for d in offset], axis=(0, 1)), 1e-6)


def test_circular_shift_example_by_hand():
    """1-D: kernel [0, 0, 0, 1, 0] (centre 2, delta at 3) maps e_0 to e_1."""
    op = Convolve(np.array([0, 0, 0, 1, 0], np.float32), (6,))
    np.testing.assert_allclose(op(np.eye(6, dtype=np.float32)[0]), np.eye(6)[1], atol=1e-6)


@pytest.mark.parametrize("shape", [(8, 8), (7, 9), (6, 5)])
def test_circular_full_size_psf_is_ifftshift_convention(shape):
    """A full-size PSF image with its centre at shape // 2: y = ifft(fft(ifftshift(k)) fft(x))."""
    rng = np.random.default_rng(4)
    x, k = rng.standard_normal(shape), rng.standard_normal(shape)
    want = np.fft.ifftn(np.fft.fftn(np.fft.ifftshift(k)) * np.fft.fftn(x)).real
    with x64(np.float64):
        assert_close(Convolve(k, shape)(x), want, 1e-12)


@pytest.mark.parametrize("real, rtol", PRECISIONS)
@pytest.mark.parametrize("mode", ["circular", "full", "same", "valid"])
def test_batch_axes_default_to_last_two(real, rtol, mode):
    """Input (3, 16, 20), kernel (5, 4): each batch entry is convolved separately."""
    rng = np.random.default_rng(5)
    x, k = randn(rng, (3, 16, 20), real), randn(rng, (5, 4), real)
    want = np.stack([reference(xb, k, mode) for xb in x]).real
    y_adj = randn(rng, want.shape, real)
    m = dense(lambda e: reference(e, k, mode).real, (16, 20), np.float64)
    want_adj = np.stack([m.T @ yb.ravel() for yb in y_adj.astype(np.float64)]).reshape(x.shape)
    with x64(real):
        op = Convolve(k, x.shape, mode=mode)
        y, xa = apply_both(op, x, y_adj)
    assert op.axes == (1, 2)
    assert y.dtype == real
    assert_close(y, want, rtol)
    assert_close(xa, want_adj, rtol)


@pytest.mark.parametrize("mode", ["circular", "full", "same", "valid"])
def test_chosen_axes(mode):
    """A 2-D kernel on axes (0, 2) of a 3-D input; axis 1 is a batch axis in the middle."""
    rng = np.random.default_rng(6)
    x, k = rng.standard_normal((10, 3, 8)), rng.standard_normal((3, 2))
    want = np.stack([reference(x[:, j, :], k, mode).real for j in range(3)], axis=1)
    with x64(np.float64):
        y = Convolve(k, x.shape, axes=(0, 2), mode=mode)(x)
    assert_close(y, want, 1e-12)


@pytest.mark.parametrize("mode", ["circular", "full", "same", "valid"])
def test_single_axis_of_2d_input(mode):
    rng = np.random.default_rng(7)
    x, k = rng.standard_normal((5, 12)).astype(np.float32), rng.standard_normal(4)
    k = k.astype(np.float32)
    want = np.stack([reference(x[:, j], k, mode).real for j in range(12)], axis=1)
    y = Convolve(k, x.shape, axes=0, mode=mode)(x)
    assert_close(y, want, 1e-5)


@pytest.mark.parametrize("mode", ["circular", "full", "same", "valid"])
def test_full_ndim_kernel_broadcasts_over_batch_axis(mode):
    """Kernel (1, 5, 4) on input (3, 12, 10) with axes (1, 2): one kernel for every entry."""
    rng = np.random.default_rng(8)
    x, k = rng.standard_normal((3, 12, 10)), rng.standard_normal((1, 5, 4))
    want = np.stack([reference(xb, k[0], mode).real for xb in x])
    with x64(np.float64):
        op = Convolve(k, x.shape, axes=(1, 2), mode=mode)
        y = op(x)
    assert_close(y, want, 1e-12)


@pytest.mark.parametrize("mode", ["circular", "full", "same", "valid"])
def test_full_ndim_kernel_one_per_batch_entry(mode):
    """Kernel (3, 3, 2) on input (3, 8, 7): entry b is convolved with kernel b."""
    rng = np.random.default_rng(9)
    x, k = rng.standard_normal((3, 8, 7)), rng.standard_normal((3, 3, 2))
    want = np.stack([reference(xb, kb, mode).real for xb, kb in zip(x, k, strict=True)])
    with x64(np.float64):
        y = Convolve(k, x.shape, axes=(1, 2), mode=mode)(x)
    assert_close(y, want, 1e-12)


@pytest.mark.parametrize("mode", ["circular", "full", "same", "valid"])
def test_kernel_stack_broadcasts_input(mode):
    """Input (1, 6, 5), kernels (3, 3, 2): three images of one object; the adjoint sums them."""
    rng = np.random.default_rng(10)
    x, k = rng.standard_normal((1, 6, 5)), rng.standard_normal((3, 3, 2))
    want = np.stack([reference(x[0], kb, mode).real for kb in k])
    y = rng.standard_normal(want.shape)
    want_adj = sum(
        dense(lambda e, kb=kb: reference(e, kb, mode), (6, 5), np.float64).T @ yb.ravel()
        for kb, yb in zip(k, y, strict=True)
    ).reshape(x.shape)
    with x64(np.float64):
        op = Convolve(k, x.shape, axes=(1, 2), mode=mode)
        assert op.output_shape == want.shape
        assert_close(op(x), want, 1e-12)
        assert_close(op.H(y), want_adj, 1e-12)


@pytest.mark.parametrize("mode", ["full", "same"])
def test_kernel_larger_than_input(mode):
    rng = np.random.default_rng(11)
    x, k = rng.standard_normal(5), rng.standard_normal(8)
    m = dense(lambda e: reference(e, k, mode).real, (5,), np.float64)
    y = rng.standard_normal(m.shape[0])
    with x64(np.float64):
        op = Convolve(k, x.shape, mode=mode)
        assert_close(op(x), m @ x, 1e-12)
        assert_close(op.H(y), m.T @ y, 1e-12)


def test_rfft_path():
    n = 11
    real_op = Convolve(np.ones((3, 3), np.float32), (6, n))
    assert real_op.real
    assert real_op.spectrum.shape == (6, n // 2 + 1)  # half spectrum: rfftn
    assert not Convolve(np.ones((3, 3), np.complex64), (6, n)).real
    assert not Convolve(np.ones((3, 3), np.float32), (6, n), input_dtype=np.complex64).real


@pytest.mark.parametrize(
    "kernel_dtype, input_dtype, out",
    [
        (np.float32, None, np.float32),
        (np.complex64, None, np.complex64),
        (np.float32, np.complex64, np.complex64),
        (np.complex64, np.float32, np.complex64),
        (np.int32, None, np.float32),
    ],
)
def test_dtypes(kernel_dtype, input_dtype, out):
    op = Convolve(np.ones((3,), kernel_dtype), (8,), input_dtype=input_dtype)
    assert op.output_dtype == out
    assert op(np.ones(8, op.input_dtype)).dtype == out
    assert op.H(np.ones(op.output_shape, out)).dtype == op.input_dtype


def test_dtypes_x64():
    with x64(np.float64):
        op = Convolve(np.ones((3,)), (8,), mode="same")
        assert op.input_dtype == np.float64 and op.output_dtype == np.float64
        assert op(np.ones(8)).dtype == np.float64


def test_gradient_through_kernel():
    """d/dk sum(w * conv(x, k, 'full')) = M_x^T w with M_x the matrix of k -> conv(x, k)."""
    rng = np.random.default_rng(12)
    x, k, w = rng.standard_normal(9), rng.standard_normal(4), rng.standard_normal(12)
    want = dense(lambda e: scipy.signal.fftconvolve(x, e, "full"), (4,), np.float64).T @ w
    with x64(np.float64):
        grad = jax.grad(lambda kk: jnp.sum(w * Convolve(kk, (9,), mode="full")(x)))(k)
    assert_close(grad, want, 1e-12)


def test_errors():
    with pytest.raises(ValueError, match="circular Convolve needs a kernel no larger than"):
        Convolve(np.ones((5, 3)), (4, 8))
    with pytest.raises(ValueError, match="valid Convolve needs the input at least as large"):
        Convolve(np.ones((3, 9)), (4, 8), mode="valid")
    with pytest.raises(ValueError, match="Convolve mode must be one of"):
        Convolve(np.ones(3), (8,), mode="wrap")
    with pytest.raises(ValueError, match="kernel has 2 dimensions but convolves over 1 axes"):
        Convolve(np.ones((3, 3)), (4, 8, 8), axes=(2,))
    with pytest.raises(ValueError, match="has more dimensions than the input shape"):
        Convolve(np.ones((3, 3, 3)), (8, 8))
    with pytest.raises(ValueError, match="does not broadcast with input shape"):
        Convolve(np.ones((2, 3, 3)), (4, 8, 8), axes=(1, 2))
    with pytest.raises(ValueError, match=r"expects input of shape \(8, 8\), got \(8, 9\)"):
        Convolve(np.ones((3, 3), np.float32), (8, 8))(np.ones((8, 9), np.float32))

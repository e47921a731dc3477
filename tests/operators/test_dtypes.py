"""Dtypes follow the data unless pinned; NumPy integers as arguments; empty PSFs and soft masks.

References: NumPy/SciPy computations on the real and imaginary parts, and hand-written
angular-spectrum and circular-convolution formulas.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.signal

import calcil as cc
from calcil.operators.base import LinearOperator
from calcil.operators.convolution import _hermitian_full
from calcil.solvers import _fast_path
from tests.helpers import randn

O = cc.operators


def _field(shape, dtype=np.complex64, seed=0):
    return randn(np.random.default_rng(seed), shape, dtype)


def _angular_spectrum_reference(u, dx, wavelength, z):
    """``ifft2(exp(i 2 pi z sqrt(1/wl^2 - fx^2 - fy^2)) fft2(u))``, every component propagating."""
    fy, fx = (np.fft.fftfreq(n, dx) for n in u.shape)
    kz = np.sqrt(1 / wavelength**2 - fy[:, None] ** 2 - fx[None, :] ** 2)
    return np.fft.ifft2(np.exp(2j * np.pi * z * kz) * np.fft.fft2(u))


# ---------------------------------------------------------------------- what is declared
def test_unpinned_operators_declare_their_real_working_dtype_and_follow():
    for op in (
        O.Identity((4, 4)),
        O.Crop((4, 4), (2, 2)),
        O.Pad((4, 4), 1),
        O.Subsample((4, 4), 2),
        O.Bin((4, 4), 2),
        O.Gather((4, 4), np.array([0, 3])),
        O.Mask(np.eye(4, dtype=bool)),
        O.Diagonal(np.ones((4, 4), np.float32)),
        O.Convolve(np.ones((3, 3), np.float32), (4, 4)),
        O.FiniteDifference((4, 4)),
    ):
        assert op.follows_dtype, op
        assert op.input_dtype == jnp.float32 and op.output_dtype == jnp.float32, op
        assert op.result_dtype(jnp.float32) == jnp.float32
        assert op.result_dtype(jnp.complex64) == jnp.complex64
        assert "float32 or complex64" in repr(op)
    with jax.enable_x64(True):
        op = O.Crop((4, 4), (2, 2))
        assert op.input_dtype == jnp.float64 and op.result_dtype(jnp.complex128) == jnp.complex128


def test_pinned_and_array_forced_dtypes_do_not_follow():
    assert not O.Crop((4,), (2,), input_dtype=jnp.float32).follows_dtype
    assert not O.Crop((4,), (2,), input_dtype=jnp.complex64).follows_dtype
    complex_weights = O.Diagonal(np.ones(3, np.complex64))
    assert not complex_weights.follows_dtype and complex_weights.input_dtype == jnp.complex64
    complex_kernel = O.Convolve(np.ones((3, 3), np.complex64), (4, 4))
    assert not complex_kernel.follows_dtype and complex_kernel.input_dtype == jnp.complex64
    # User functions are pinned: their code need not handle complex input.
    f = O.from_function(jnp.cumsum, (3,), linear=True)
    assert not f.follows_dtype
    with pytest.raises(ValueError, match="got complex64: casting would drop the imaginary"):
        f(jnp.ones(3, jnp.complex64))


def test_integer_weights_follow_at_the_working_precision():
    D = O.Diagonal(np.array([1, 2, 3], np.int32))
    assert D.follows_dtype and D.input_dtype == jnp.float32
    np.testing.assert_allclose(D(jnp.array([1j, 1, 1])), [1j, 2, 3])


# ---------------------------------------------------------------------- the optics example
def test_crop_of_angular_spectrum_builds_and_applies_in_complex64():
    P = O.AngularSpectrum((64, 64), dx=0.5, wavelength=0.5, distance=3.0, bandlimit=False)
    A = O.Crop((64, 64), (32, 32)) @ P
    assert A.input_dtype == A.output_dtype == jnp.complex64 and not A.follows_dtype
    u = _field((64, 64))
    y = A(u)
    assert y.dtype == jnp.complex64
    want = _angular_spectrum_reference(u.astype(np.complex128), 0.5, 0.5, 3.0)[16:48, 16:48]
    np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
    # The adjoint keeps the imaginary part: zero-pad, then propagate back.
    r = _field((32, 32), seed=1)
    padded = np.zeros((64, 64), np.complex128)
    padded[16:48, 16:48] = r
    want_h = _angular_spectrum_reference(padded, 0.5, 0.5, -3.0)
    np.testing.assert_allclose(A.H(r), want_h, rtol=1e-4, atol=1e-4 * np.abs(want_h).max())
    cc.testing.check_adjoint(A)


def test_propagator_of_unpinned_pad_takes_complex_and_promotes_real():
    P = O.AngularSpectrum((40, 40), dx=0.5, wavelength=0.5, distance=2.0, bandlimit=False)
    A = P @ O.Pad((32, 32), 4)
    assert A.input_dtype == jnp.complex64 and A.output_dtype == jnp.complex64
    x = randn(np.random.default_rng(2), (32, 32), np.float32)
    want = _angular_spectrum_reference(np.pad(x, 4).astype(np.complex128), 0.5, 0.5, 2.0)
    y = A(x)
    assert y.dtype == jnp.complex64
    np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
    back = A.H(y)
    assert back.dtype == jnp.complex64  # the complex input space: no real part taken
    np.testing.assert_allclose(back, np.asarray(P.H(y))[4:36, 4:36], rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------- convolution
@pytest.mark.parametrize("mode", ["full", "same", "valid"])
def test_real_kernel_convolves_complex_field_part_by_part(mode):
    rng = np.random.default_rng(3)
    kernel = rng.random((4, 5)).astype(np.float32)
    A = O.Convolve(kernel, (12, 11), mode=mode)
    u = randn(rng, (12, 11), np.complex64)
    y = A(u)
    assert y.dtype == np.complex64
    want = scipy.signal.fftconvolve(u.real, kernel, mode) + 1j * scipy.signal.fftconvolve(
        u.imag, kernel, mode
    )
    np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
    # The adjoint is the correlation, also part by part.
    r = randn(rng, y.shape, np.complex64)
    got = A.H(r)
    assert got.dtype == np.complex64
    np.testing.assert_allclose(got.real, A.H(r.real), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got.imag, A.H(r.imag), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("real", "cplx", "rtol"), [("float32", "complex64", 1e-4), ("float64", "complex128", 1e-11)]
)
def test_circular_real_kernel_on_complex_field(real, cplx, rtol):
    rng = np.random.default_rng(4)
    kernel = rng.random((3, 4)).astype(real)
    u = randn(rng, (2, 9, 8), np.dtype(cplx))
    padded = np.zeros((9, 8))
    padded[:3, :4] = kernel
    padded = np.roll(padded, (-1, -2), (0, 1))  # the PSF centre kernel.shape // 2 at [0, 0]
    want = np.fft.ifft2(np.fft.fft2(padded) * np.fft.fft2(u))
    with jax.enable_x64(real == "float64"):
        A = O.Convolve(kernel, (2, 9, 8))
        y = A(u)
        assert A.input_dtype == np.dtype(real) and y.dtype == np.dtype(cplx)
        np.testing.assert_allclose(y, want, rtol=rtol, atol=rtol * np.abs(want).max())
        cc.testing.check_adjoint(A)
        G = A.gram
        assert isinstance(G, O.Convolve) and G.follows_dtype
        np.testing.assert_allclose(G(u), A.H(A(u)), rtol=rtol, atol=rtol * np.abs(want).max())


def test_convolve_built_from_a_traced_psf_follows_the_field():
    """Blind deconvolution of a complex field: the operator is built from the unknown PSF."""
    rng = np.random.default_rng(5)
    u = randn(rng, (8, 8), np.complex64)
    target = randn(rng, (8, 8), np.complex64)

    def loss(psf):
        r = O.Convolve(psf, (8, 8))(u) - target
        return jnp.sum(jnp.abs(r) ** 2)

    psf = jnp.asarray(rng.random((3, 3)), jnp.float32)
    g = jax.grad(loss)(psf)
    eps = 1e-2
    e = np.zeros((3, 3), np.float32)
    e[1, 2] = eps
    fd = (loss(psf + e) - loss(psf - e)) / (2 * eps)
    assert float(g[1, 2]) == pytest.approx(float(fd), rel=2e-2)


# ---------------------------------------------------------------------- pinning
def test_real_input_into_complex_pinned_operator_is_promoted():
    A = O.Crop((6,), (3,), input_dtype=jnp.complex64)
    y = A(jnp.arange(6.0))
    assert y.dtype == jnp.complex64
    np.testing.assert_array_equal(y, [1, 2, 3])


def test_complex_input_into_real_pinned_operator_is_an_error():
    for op in (
        O.Crop((6,), (3,), input_dtype=jnp.float32),
        O.Convolve(np.ones(3, np.float32), (6,), input_dtype=jnp.float32),
        O.Diagonal(np.ones(6, np.float32), input_dtype=jnp.float32),
    ):
        with pytest.raises(ValueError) as info:
            op(jnp.ones(6, jnp.complex64))
        msg = str(info.value)
        assert "expects input of dtype float32, got complex64" in msg
        assert "imaginary part" in msg and "input_dtype=complex64" in msg


def test_double_input_into_single_precision_operator_says_how_to_fix():
    pinned = O.Bin((4,), 2, input_dtype=jnp.float32)
    following = O.Bin((4,), 2)
    with jax.enable_x64(True):
        with pytest.raises(ValueError, match=r"float32, got float64.*input_dtype=float64"):
            pinned(jnp.ones(4, jnp.float64))
        with pytest.raises(
            ValueError, match=r"float32 or complex64, got complex128.*jax.enable_x64.*complex64"
        ):
            following(jnp.ones(4, jnp.complex128))
        # Single precision into a double-precision operator is promoted.
        assert O.Bin((4,), 2)(jnp.ones(4, jnp.complex64)).dtype == jnp.complex128


# ---------------------------------------------------------------------- resolution
def test_composition_of_following_operators_follows():
    A = O.Crop((8, 8), (4, 4)) @ O.Convolve(np.ones((3, 3), np.float32), (8, 8))
    assert A.follows_dtype and A.input_dtype == jnp.float32
    u = _field((8, 8))
    y = A(u)
    assert y.dtype == jnp.complex64
    np.testing.assert_allclose(y.real, A(u.real), rtol=1e-6)
    np.testing.assert_allclose(y.imag, A(u.imag), rtol=1e-6)


def test_composition_with_real_pinned_operator_is_real():
    A = O.Bin((8,), 2, input_dtype=jnp.float32) @ O.Crop((10,), (8,))
    assert A.input_dtype == jnp.float32 and not A.follows_dtype
    with pytest.raises(ValueError, match="got complex64"):
        A(jnp.ones(10, jnp.complex64))


def test_composition_in_different_precisions_is_an_error():
    with jax.enable_x64(True):
        double = O.Bin((8,), 2, input_dtype=jnp.float64)
    with pytest.raises(ValueError, match=r"produces float64 but the left one takes float32"):
        O.Crop((4,), (2,)) @ double


def test_fft_of_following_operator_is_complex_and_pinned_fft_is_real():
    x = randn(np.random.default_rng(6), (8,), np.float32)
    y = randn(np.random.default_rng(7), (4,), np.complex64)
    A = O.FFT((4,)) @ O.Crop((8,), (4,))
    assert A.input_dtype == jnp.complex64
    np.testing.assert_allclose(A(x), np.fft.fft(x[2:6], norm="ortho"), rtol=1e-5, atol=1e-6)
    want = np.zeros(8, np.complex64)
    want[2:6] = np.fft.ifft(y, norm="ortho")
    np.testing.assert_allclose(A.H(y), want, rtol=1e-5, atol=1e-6)
    R = O.FFT((4,), input_dtype=jnp.float32) @ O.Crop((8,), (4,))
    assert R.input_dtype == jnp.float32 and R.H(y).dtype == jnp.float32
    np.testing.assert_allclose(R.H(y), want.real, rtol=1e-5, atol=1e-6)


def test_sums_resolve_from_their_parts():
    x = _field((5,))
    both = O.Identity((5,)) + O.Diagonal(np.arange(5.0, dtype=np.float32))
    assert both.follows_dtype
    np.testing.assert_allclose(both(x), x * (1 + np.arange(5)), rtol=1e-6)
    w = _field((5,), seed=1)
    mixed = O.Identity((5,)) + O.Diagonal(w)
    assert mixed.input_dtype == jnp.complex64 and not mixed.follows_dtype
    np.testing.assert_allclose(mixed(np.ones(5, np.float32)), 1 + w, rtol=1e-6)
    np.testing.assert_allclose(mixed.H(x), x + np.conj(w) * x, rtol=1e-6)
    with jax.enable_x64(True):
        double = O.Identity((5,), jnp.float64)
    with pytest.raises(ValueError, match="input dtypes float32 or complex64 and float64 differ"):
        O.Identity((5,)) + double


def test_scaling_keeps_following_unless_the_scalar_is_complex():
    A = O.Bin((6,), 2)
    assert (2.0 * A).follows_dtype and (-A).follows_dtype
    C = (1 - 2j) * A
    assert C.input_dtype == C.output_dtype == jnp.complex64 and not C.follows_dtype
    x = _field((6,))
    binned = x.reshape(3, 2).sum(1)
    np.testing.assert_allclose(C(x), (1 - 2j) * binned, rtol=1e-6)
    y = _field((3,), seed=2)
    np.testing.assert_allclose(C.H(y), np.repeat((1 + 2j) * y, 2), rtol=1e-6)
    cc.testing.check_adjoint(C)


def test_nonlinear_composition_with_following_operator():
    A = O.Intensity() @ O.Crop((6,), (4,))
    assert A.follows_dtype and A.output_dtype == jnp.float32
    x = _field((6,))
    y = A(x)
    assert y.dtype == jnp.float32
    np.testing.assert_allclose(y, np.abs(x[1:5]) ** 2, rtol=1e-6)
    assert A.result_dtype(jnp.complex64) == jnp.float32
    scaled = (2.0 * O.Intensity()) @ O.Crop((6,), (4,))
    np.testing.assert_allclose(scaled(x), 2 * np.abs(x[1:5]) ** 2, rtol=1e-6)
    cc.testing.check_operator(A)  # its linearization on real and on complex points


def test_norm_of_following_operator():
    kernel = np.abs(randn(np.random.default_rng(8), (3, 3), np.float32))
    A = O.Convolve(kernel, (16, 16))
    padded = np.zeros((16, 16))
    padded[:3, :3] = kernel
    assert float(A.norm(jax.random.key(0))) == pytest.approx(
        np.abs(np.fft.fft2(padded)).max(), rel=1e-4
    )


# ---------------------------------------------------------------------- check_adjoint
class _RealPartAdjoint(LinearOperator):
    """``2 x`` whose adjoint keeps only the real part: right on real data, wrong on complex."""

    def __init__(self, n, input_dtype=None):
        super().__init__((n,), input_dtype, follows_dtype=input_dtype is None)

    def forward(self, x):
        return 2 * x

    def adjoint(self, y):
        return 2 * jnp.real(y)


def test_check_adjoint_tests_complex_data_for_following_operators():
    assert cc.testing.input_dtypes(_RealPartAdjoint(8)) == (jnp.float32, jnp.complex64)
    cc.testing.check_adjoint(_RealPartAdjoint(8, input_dtype=jnp.float32))  # real: correct
    with pytest.raises(AssertionError, match="on complex64 input"):
        cc.testing.check_adjoint(_RealPartAdjoint(8))
    with pytest.raises(AssertionError, match="complex64"):
        cc.testing.check_operator(_RealPartAdjoint(8))


# ---------------------------------------------------------------------- Gram fast path
@pytest.mark.parametrize(
    ("shape", "axes"),
    [
        ((8, 9), (0, 1)),
        ((7, 6), (0, 1)),
        ((5, 2), (0, 1)),
        ((6, 1), (0, 1)),
        ((2, 6, 5, 4), (1, 2, 3)),
    ],
)
def test_hermitian_extension_of_a_half_spectrum(shape, axes):
    x = np.random.default_rng(9).standard_normal(shape)
    fft_shape = tuple(shape[a] for a in axes)
    with jax.enable_x64(True):
        half = jnp.fft.rfftn(jnp.asarray(x), s=fft_shape, axes=axes)
        full = _hermitian_full(half, fft_shape, axes)
        np.testing.assert_allclose(full, np.fft.fftn(x, axes=axes), rtol=1e-12, atol=1e-12)


def _residual_cases(rng):
    k = rng.random((5, 4)).astype(np.float32)
    w = _field((16, 15), seed=3)
    return [
        ("convolve", O.Convolve(k, (16, 15)), np.complex64, np.complex64),
        ("convolve-real-data", O.Convolve(k, (16, 15)), np.float32, np.float32),
        ("convolve-batched", O.Convolve(k, (2, 16, 15), axes=(1, 2)), np.complex64, np.complex64),
        ("convolve@pad", O.Convolve(k, (16, 15)) @ O.Pad((12, 11), 2), np.complex64, np.complex64),
        ("scaled", 2.5 * O.Convolve(k, (16, 15)), np.complex64, np.complex64),
        # Pinned complex: a real measurement is embedded in the complex output space.
        (
            "convolve@complex-diagonal",
            O.Convolve(k, (16, 15)) @ O.Diagonal(w),
            np.complex64,
            np.float32,
        ),
        ("complex-scaled", (1 - 2j) * O.Convolve(k, (16, 15)), np.float32, np.complex64),
    ]


def test_unitary_factorization_of_following_convolution_on_complex_data():
    rng = np.random.default_rng(10)
    for name, A, x_dtype, y_dtype in _residual_cases(rng):
        U, B = A.unitary_factorization(jnp.dtype(x_dtype))
        x = randn(rng, A.input_shape, x_dtype)
        y = randn(rng, A.output_shape, y_dtype)
        direct = np.linalg.norm((np.asarray(A(x)) - y).ravel())
        # The residual lives in A's output space for this data: y embedded as the solver does.
        uy = U.H(jnp.asarray(y, jnp.result_type(y.dtype, A.result_dtype(jnp.dtype(x_dtype)))))
        fast = np.linalg.norm(np.asarray(B(x) - uy).ravel())
        assert fast == pytest.approx(direct, rel=1e-5), name
        grad = jax.grad(lambda v, B=B, uy=uy: 0.5 * jnp.sum(jnp.abs(B(v) - uy) ** 2))(x)
        want = np.asarray(A.H(A(x) - y))
        if not np.iscomplexobj(x):
            want = want.real
        np.testing.assert_allclose(np.conj(grad), want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


def test_fast_path_on_a_complex_parameter():
    rng = np.random.default_rng(11)
    A = O.Convolve(rng.random((5, 5)).astype(np.float32), (16, 16))
    data = {"y": jnp.asarray(_field((16, 16), seed=4))}
    obj = cc.Objective(lambda p, b: A(p["u"]), cc.losses.L2("y"))
    params = {"u": jnp.asarray(_field((16, 16), seed=5))}
    fast, fast_data, _ = _fast_path.resolve(True, obj, params, data, None)
    assert fast is not None
    value = _fast_path.evaluate(obj, fast, params, fast_data)[0]
    assert float(value) == pytest.approx(float(obj(params, data)[0]), rel=1e-5)
    g_fast = jax.grad(lambda p: _fast_path.evaluate(obj, fast, p, fast_data)[0])(params)["u"]
    g_slow = jax.grad(lambda p: obj(p, data)[0])(params)["u"]
    np.testing.assert_allclose(g_fast, g_slow, rtol=1e-4, atol=1e-4 * np.abs(g_slow).max())


# ---------------------------------------------------------------------- NumPy integers
def test_numpy_integers_are_accepted_as_shapes_factors_axes_and_offsets():
    i = np.int64
    x = np.arange(48.0, dtype=np.float32).reshape(6, 8)
    cases = [
        (O.Identity((i(6), i(8))), x),
        (O.Crop(np.array([6, 8]), (i(4), np.int32(4)), start=(i(1), i(2))), x[1:5, 2:6]),
        (O.Pad((i(6), i(8)), ((i(1), i(0)), (np.int16(0), i(2)))), np.pad(x, ((1, 0), (0, 2)))),
        (O.Subsample((6, 8), (i(2), np.int32(3)), offset=(i(1), i(2))), x[1::2, 2::3]),
        (O.Subsample((6, 8), i(2), offset=i(1)), x[1::2, 1::2]),
        (O.Bin((i(6), i(8)), i(2)), x.reshape(3, 2, 4, 2).sum((1, 3))),
        (O.Gather((i(6), i(8)), np.array([0, 5])), x[[0, 5]]),
        (O.Mask(np.ones(8, bool), input_shape=(i(6), i(8))), x),
        (O.Diagonal(np.float32(2), input_shape=(i(6), i(8))), 2 * x),
        (O.FiniteDifference((6, 8), axes=i(1)), (np.roll(x, -1, 1) - x)[None]),
        (O.FiniteDifference((6, 8), axes=(i(0),), boundary="neumann"), None),
        (O.FFT((i(6), i(8)), axes=i(-1)), np.fft.fft(x, axis=-1, norm="ortho")),
        (O.Convolve(np.ones((1, 1), np.float32), (i(6), i(8)), axes=(i(0), i(1))), x),
    ]
    for op, want in cases:
        y = op(x)
        if want is not None:
            np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5)
    # Shapes of the optics operators too.
    assert O.AngularSpectrum((i(8), i(8)), 0.5, 0.5, 1.0).input_shape == (8, 8)


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: O.Crop((6.0, 8), (4, 4)), r"Crop input_shape must be an integer.*got 6\.0"),
        (lambda: O.Crop((6, 8), (4, 4), start=1.5), "Crop start must be an integer"),
        (lambda: O.Pad((4,), 1.5), "Pad pad_width must be integers"),
        (lambda: O.Subsample((6,), 2.0), "Subsample factors must be an integer"),
        (lambda: O.Bin((6,), (2.0,)), "Bin factors must be an integer"),
        (lambda: O.FFT((4,), axes=0.0), "axes must be an integer"),
        (lambda: O.Identity((4.5,)), "input_shape must be an integer"),
        (lambda: O.Convolve(np.ones(3), (8.0,)), "Convolve input_shape must be an integer"),
    ],
)
def test_non_integer_sizes_are_refused_not_truncated(build, match):
    with pytest.raises(TypeError, match=match):
        build()


# ---------------------------------------------------------------------- empty PSF, soft mask
@pytest.mark.parametrize(
    "kernel", [np.zeros((3, 3)), jnp.zeros(4), np.zeros((0, 3)), np.ones((3, 0))]
)
def test_empty_psf_is_an_error(kernel):
    with pytest.raises(ValueError, match=r"Convolve kernel of shape .* (is all zeros|is empty)"):
        O.Convolve(kernel, (8, 8))


def test_traced_psf_is_not_inspected():
    x = jnp.ones((8, 8))
    y = jax.jit(lambda k: O.Convolve(k, (8, 8))(x))(jnp.zeros((3, 3)))
    np.testing.assert_array_equal(y, np.zeros((8, 8)))
    g = jax.grad(lambda k: jnp.sum(O.Convolve(k, (8, 8))(x)))(jnp.zeros((3, 3)))
    np.testing.assert_allclose(g, np.full((3, 3), 64.0))
    kernels = jnp.stack([jnp.zeros((3, 3)), jnp.ones((3, 3))])
    out = jax.vmap(lambda k: O.Convolve(k, (8, 8))(x))(kernels)
    np.testing.assert_allclose(out[1], np.full((8, 8), 9.0), rtol=1e-6)


def test_concrete_psf_and_mask_are_checked_inside_a_trace():
    """Arrays closed over by a jitted forward model are concrete: checked, not refused."""
    psf, mask = jnp.ones(3) / 3, jnp.array([1.0, 0.0, 1.0])

    @jax.jit
    def forward(x):
        return O.Mask(mask) @ O.Convolve(psf, (3,), mode="same") @ x

    x = np.array([1.0, 2.0, 3.0])
    want = np.array([1, 0, 1]) * scipy.signal.fftconvolve(x, np.ones(3) / 3, "same")
    np.testing.assert_allclose(forward(x), want, rtol=1e-6)
    zeros, soft = jnp.zeros(3), jnp.array([0.5, 1.0])
    with pytest.raises(ValueError, match="all zeros"):
        jax.jit(lambda x: O.Convolve(zeros, (3,))(x))(jnp.ones(3))
    with pytest.raises(ValueError, match="Diagonal"):
        jax.jit(lambda x: O.Mask(soft)(x))(jnp.ones(2))


def test_soft_mask_is_an_error_that_points_to_diagonal():
    with pytest.raises(ValueError, match=r"0/1 mask, got other values \(e\.g\. 0\.5\).*Diagonal"):
        O.Mask(np.array([0.0, 0.5, 1.0]))
    with pytest.raises(ValueError, match="Diagonal"):
        O.Mask(jnp.array([2, 0, 1]))
    # 0/1 numbers are a mask, equal to the boolean one.
    x = jnp.arange(1.0, 4.0)
    np.testing.assert_array_equal(O.Mask(np.array([1, 0, 1]))(x), [1.0, 0.0, 3.0])
    np.testing.assert_array_equal(O.Mask(jnp.array([1.0, 0.0, 1.0]))(x), [1.0, 0.0, 3.0])


def test_traced_mask_is_not_inspected():
    x = jnp.arange(1.0, 4.0)
    y = jax.jit(lambda m: O.Mask(m)(x))(jnp.array([1.0, 0.0, 1.0]))
    np.testing.assert_array_equal(y, [1.0, 0.0, 3.0])

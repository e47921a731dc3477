"""Pupil and Zernike polynomials against Noll's table, quadrature and a NumPy reference."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import calcil as cc
from calcil import operators as O
from tests.helpers import randn, x64

S3, S5, S6, S8, S10 = (np.sqrt(v) for v in (3, 5, 6, 8, 10))

# Noll (1976), table I: (n, m) with m > 0 for cos (even j), m < 0 for sin (odd j).
NOLL_NM = {
    1: (0, 0),
    2: (1, 1),
    3: (1, -1),
    4: (2, 0),
    5: (2, -2),
    6: (2, 2),
    7: (3, -1),
    8: (3, 1),
    9: (3, -3),
    10: (3, 3),
    11: (4, 0),
    12: (4, 2),
    13: (4, -2),
    14: (4, 4),
    15: (4, -4),
}

# Noll (1976), table I, written out independently of calcil's radial-polynomial formula.
CLOSED_FORMS = {
    1: lambda r, t: np.ones_like(r),
    2: lambda r, t: 2 * r * np.cos(t),
    3: lambda r, t: 2 * r * np.sin(t),
    4: lambda r, t: S3 * (2 * r**2 - 1),
    5: lambda r, t: S6 * r**2 * np.sin(2 * t),
    6: lambda r, t: S6 * r**2 * np.cos(2 * t),
    7: lambda r, t: S8 * (3 * r**3 - 2 * r) * np.sin(t),
    8: lambda r, t: S8 * (3 * r**3 - 2 * r) * np.cos(t),
    9: lambda r, t: S8 * r**3 * np.sin(3 * t),
    10: lambda r, t: S8 * r**3 * np.cos(3 * t),
    11: lambda r, t: S5 * (6 * r**4 - 6 * r**2 + 1),
    12: lambda r, t: S10 * (4 * r**4 - 3 * r**2) * np.cos(2 * t),
    13: lambda r, t: S10 * (4 * r**4 - 3 * r**2) * np.sin(2 * t),
    14: lambda r, t: S10 * r**4 * np.cos(4 * t),
    15: lambda r, t: S10 * r**4 * np.sin(4 * t),
}


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def numpy_pupil(u, dx, wl, na, coefficients):
    """Independent reference: fftfreq grid, Noll's closed forms, ``ifft2(P fft2(u))``."""
    ny, nx = u.shape[-2:]
    fy, fx = np.meshgrid(np.fft.fftfreq(ny, dx), np.fft.fftfreq(nx, dx), indexing="ij")
    rho, theta = np.hypot(fx, fy) / (na / wl), np.arctan2(fy, fx)
    phase = sum(c * CLOSED_FORMS[j](rho, theta) for j, c in enumerate(coefficients, start=1))
    pupil = (rho <= 1 + 1e-9) * np.exp(1j * phase)
    return np.fft.ifft2(pupil * np.fft.fft2(np.asarray(u, np.complex128)))


def rel_error(got, want):
    got, want = np.asarray(got, np.complex128), np.asarray(want, np.complex128)
    return np.linalg.norm(got - want) / np.linalg.norm(want)


# ---------------------------------------------------------------------- Zernike polynomials
def test_noll_to_nm_matches_noll_table():
    assert {j: O.noll_to_nm(j) for j in NOLL_NM} == NOLL_NM
    # Every (n, m) with |m| <= n, n - |m| even appears exactly once, in order of n.
    nm = [O.noll_to_nm(j) for j in range(1, 67)]  # orders 0 ... 10
    assert len(set(nm)) == 66 and [n for n, _ in nm] == sorted(n for n, _ in nm)
    assert all(abs(m) <= n and (n - abs(m)) % 2 == 0 for n, m in nm)
    assert all((m > 0) == (j % 2 == 0) for j, (_, m) in enumerate(nm, start=1) if m != 0)


@pytest.mark.parametrize("j", [0, -3, 2.0, True, "4"])
def test_noll_to_nm_rejects_bad_indices(j):
    with pytest.raises(ValueError, match=r"integer >= 1, got"):
        O.noll_to_nm(j)


def test_zernike_matches_noll_closed_forms():
    rng = np.random.default_rng(0)
    rho = rng.uniform(0, 1.3, 2000)  # past the rim as well: the polynomial is not masked
    theta = rng.uniform(-np.pi, np.pi, 2000)
    with jax.enable_x64(True):
        errors = [
            np.abs(np.asarray(O.zernike(j, rho, theta)) - form(rho, theta)).max()
            for j, form in CLOSED_FORMS.items()
        ]
    assert max(errors) < 1e-13  # measured: 1.4e-14
    z32 = O.zernike(11, rho.astype(np.float32), theta.astype(np.float32))
    assert z32.dtype == jnp.float32
    want = CLOSED_FORMS[11](rho, theta)
    np.testing.assert_allclose(z32, want, atol=1e-6 * np.abs(want).max())  # measured: 4e-7


def test_zernike_is_orthonormal_on_the_unit_disk():
    """(1/pi) int_0^1 int_0^2pi Z_i Z_j rho drho dtheta = delta_ij for the first 36 terms.

    Gauss-Legendre in rho (exact for polynomials of degree < 2 * 16) times the trapezoid
    rule in theta (exact for trigonometric polynomials of degree < 32): exact up to rounding.
    """
    x, w = np.polynomial.legendre.leggauss(16)
    rho, w_rho = (x + 1) / 2, w / 2
    theta = np.arange(32) * 2 * np.pi / 32
    r, t = np.meshgrid(rho, theta, indexing="ij")
    weights = (w_rho * rho)[:, None] * np.full(32, 2 * np.pi / 32) / np.pi
    with jax.enable_x64(True):
        Z = np.stack([np.asarray(O.zernike(j, r, t)).ravel() for j in range(1, 37)])
    gram = (Z * weights.ravel()) @ Z.T
    assert np.abs(gram - np.eye(36)).max() < 1e-12  # measured: 3.3e-15


def test_zernike_is_orthonormal_on_a_cartesian_grid_of_the_disk():
    """A cruder, independent quadrature: area-weighted pixels of a 1001^2 grid (float32)."""
    x = np.linspace(-1, 1, 1001)
    xx, yy = np.meshgrid(x, x)
    inside = np.hypot(xx, yy) <= 1
    r, t = np.hypot(xx, yy)[inside], np.arctan2(yy, xx)[inside]
    Z = np.stack([np.asarray(O.zernike(j, r, t), np.float64) for j in range(1, 16)])
    gram = Z @ Z.T * (x[1] - x[0]) ** 2 / np.pi
    assert np.abs(gram - np.eye(15)).max() < 2e-3  # measured: 5.7e-4 (pixelated rim)


def test_zernike_rejects_a_bad_index():
    with pytest.raises(ValueError, match="Noll index j must be an integer >= 1, got 0"):
        O.zernike(0, 0.5, 0.0)


# ---------------------------------------------------------------------- the operator
GRID = dict(dx=0.25, wavelength=0.5, na=0.3)  # cutoff 0.6, Nyquist 2


def test_unaberrated_pupil_is_an_orthogonal_projection():
    P = O.Pupil((2, 32, 40), **GRID)
    x = randn(np.random.default_rng(1), P.input_shape, np.complex64)
    px = P(x)
    assert rel_error(P(px), px) < 1e-6  # measured: 1.2e-7
    assert rel_error(P.H(x), px) < 1e-6  # measured: 0
    assert rel_error(P.gram(x), px) < 1e-6
    assert 0.05 < rel_error(px, x) ** 2 < 0.95  # it does remove something
    # Self-adjoint and idempotent: <P x, x - P x> = 0.
    assert abs(np.vdot(px, x - px)) / np.vdot(x, x).real < 1e-6


def test_plane_waves_inside_the_pupil_pass_and_outside_are_removed():
    ny, nx = 32, 40
    P = O.Pupil((ny, nx), **GRID)
    cutoff = GRID["na"] / GRID["wavelength"]
    yy, xx = np.meshgrid(np.arange(ny) * GRID["dx"], np.arange(nx) * GRID["dx"], indexing="ij")
    fy, fx = np.meshgrid(np.fft.fftfreq(ny, GRID["dx"]), np.fft.fftfreq(nx, GRID["dx"]))
    fy, fx = fy.T.ravel(), fx.T.ravel()  # every frequency of the grid
    waves = np.exp(2j * np.pi * (fy[:, None, None] * yy + fx[:, None, None] * xx))
    out = np.asarray(jax.vmap(P)(waves.astype(np.complex64)))
    f = np.hypot(fy, fx)
    inside, outside = f <= cutoff * (1 + 1e-9), f > cutoff * (1 + 1e-9)
    assert inside.sum() == 89  # about pi r^2 = pi (0.6 / 0.1) (0.6 / 0.125) = 90
    err_in = np.abs(out[inside] - waves[inside]).max()
    err_out = np.abs(out[outside]).max()
    assert err_in < 1e-5 and err_out < 1e-5  # measured: 2.6e-7 and 1.3e-7
    # The rim is inside: fx = 6 / (40 dx) = 0.6000000000000001 == na / wl, up to rounding.
    rim = np.flatnonzero((fy == 0) & np.isclose(fx, cutoff))
    assert rim.size == 1 and inside[rim[0]]


def test_defocus_puts_the_analytic_phase_on_a_flat_field():
    """A flat field is frequency 0 only, where Z4 = -sqrt(3): the output is exp(-i sqrt3 c4)."""
    u = np.full((24, 24), 0.7 - 0.2j, np.complex64)
    for c4 in (0.3, -1.2, 2.5):
        P = O.Pupil((24, 24), **GRID, zernike=[0, 0, 0, c4])
        np.testing.assert_allclose(P(u), np.exp(-1j * S3 * c4) * u, atol=1e-6)
    # At rho = 0 only the m = 0 terms survive: piston 1, defocus -sqrt3, spherical +sqrt5.
    c = np.array([0.4, 0.9, -0.8, 0.3, 1.1, -0.6, 0.5, 0.7, -0.2, 0.1, -0.5])
    P = O.Pupil((24, 24), **GRID, zernike=c)
    np.testing.assert_allclose(P(u), np.exp(1j * (c[0] - S3 * c[3] + S5 * c[10])) * u, atol=1e-6)


@pytest.mark.parametrize("dtype, rtol", [(np.complex64, 1e-5), (np.complex128, 1e-12)])
@pytest.mark.parametrize("shape", [(48, 40), (2, 33, 36)])
def test_matches_an_independent_numpy_pupil(dtype, rtol, shape):
    rng = np.random.default_rng(2)
    u = randn(rng, shape, dtype)
    c = rng.uniform(-2, 2, 11)
    with x64(dtype):
        P = O.Pupil(shape, dx=0.2, wavelength=0.55, na=0.9, zernike=c)
        got = P(u)
    assert got.dtype == dtype
    assert rel_error(got, numpy_pupil(u, 0.2, 0.55, 0.9, c)) < rtol  # measured: <= 3.8e-7, 2.1e-15


@pytest.mark.parametrize("axis, j", [(-1, 2), (-2, 3)])
def test_positive_tilt_moves_the_image_toward_minus_x_or_y(axis, j):
    """Z2 = 2 fx / fc (theta from +x toward +y): c2 = pi fc s dx shifts by s pixels to -x."""
    shape, s = (32, 40), 3
    cutoff = GRID["na"] / GRID["wavelength"]
    x = O.Pupil(shape, **GRID)(randn(np.random.default_rng(3), shape, np.complex64))
    c = np.zeros(j)
    c[j - 1] = np.pi * cutoff * s * GRID["dx"]
    y = O.Pupil(shape, **GRID, zernike=c)(x)
    assert rel_error(y, np.roll(x, -s, axis=axis)) < 1e-5


def test_gram_is_the_unaberrated_pupil():
    c = np.random.default_rng(4).uniform(-1, 1, 15)
    P = O.Pupil((32, 40), **GRID, zernike=c)
    x = randn(np.random.default_rng(5), P.input_shape, np.complex64)
    want = O.Pupil((32, 40), **GRID)(x)
    assert rel_error(P.gram(x), want) < 1e-6
    assert rel_error(P.H(P(x)), want) < 1e-6
    assert isinstance(P.gram, O.Pupil)
    # A real input: the gram is the generic composition (its adjoint takes the real part).
    Pr = O.Pupil((32, 40), **GRID, zernike=c, input_dtype=jnp.float32)
    assert not isinstance(Pr.gram, O.Pupil) and Pr.gram.output_dtype == jnp.float32


def test_pupil_function_is_the_masked_phase_on_the_fftfreq_grid():
    c = np.array([0.0, 0.0, 0.0, 0.8])
    P = O.Pupil((32, 40), **GRID, zernike=c)
    h = np.asarray(P.pupil_function)
    mask = np.asarray(P.mask) > 0
    np.testing.assert_allclose(np.abs(h[mask]), 1, rtol=1e-6)
    assert np.all(h[~mask] == 0)
    np.testing.assert_allclose(h[0, 0], np.exp(-1j * S3 * 0.8), rtol=1e-6)  # frequency 0


# ---------------------------------------------------------------------- gradients
def test_gradients_wrt_zernike_coefficients_match_finite_differences():
    rng = np.random.default_rng(6)
    with jax.enable_x64(True):
        x = jnp.asarray(randn(rng, (2, 24, 28), np.complex128))
        target = jnp.asarray(randn(rng, (2, 24, 28), np.complex128))
        c0 = jnp.asarray(rng.uniform(-1, 1, 11))

        def loss(c):
            y = O.Pupil((2, 24, 28), dx=0.2, wavelength=0.5, na=0.8, zernike=c)(x)
            return 0.5 * jnp.sum(jnp.abs(y - target) ** 2)

        grad = np.asarray(jax.jit(jax.grad(loss))(c0))
        h = 1e-5
        fd = np.array(
            [(loss(c0.at[k].add(h)) - loss(c0.at[k].add(-h))) / (2 * h) for k in range(11)]
        )
        assert np.all(np.isfinite(grad))
        assert np.abs(grad - fd).max() / np.abs(fd).max() < 1e-7  # measured: 3.5e-9

        # The same gradient through the operator as a pytree (its coefficients are a leaf).
        P = O.Pupil((2, 24, 28), dx=0.2, wavelength=0.5, na=0.8, zernike=c0)
        grad_op = jax.grad(lambda op: 0.5 * jnp.sum(jnp.abs(op(x) - target) ** 2))(P)
        np.testing.assert_allclose(grad_op.zernike, grad, rtol=1e-12)


def test_coefficients_can_be_traced_and_vmapped():
    x = randn(np.random.default_rng(7), (24, 24), np.complex64)
    cs = jnp.asarray(np.random.default_rng(8).uniform(-1, 1, (3, 6)), jnp.float32)

    def image(c):
        return O.Pupil((24, 24), **GRID, zernike=c)(x)

    batched = jax.jit(jax.vmap(image))(cs)
    for c, got in zip(cs, batched, strict=True):
        assert rel_error(got, image(c)) < 1e-6


# ---------------------------------------------------------------------- errors, warnings, repr
@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(na=0.0), r"na must be a positive finite number \(a numerical aperture\), got 0.0"),
        (dict(na=-0.5), r"na must be a positive finite number .*got -0.5"),
        (dict(wavelength=0), r"wavelength must be a positive finite number .*got 0"),
        (dict(wavelength=-1.0), r"wavelength must be a positive .*got -1.0"),
        (dict(dx=float("nan")), r"dx must be a positive finite number .*got nan"),
        (dict(input_shape=(16,)), r"at least 2 positive sizes \(\.\.\., ny, nx\), got \(16,\)"),
        (dict(input_shape=(0, 16)), r"at least 2 positive sizes .*got \(0, 16\)"),
        (dict(zernike=np.zeros((2, 3))), r"1-d array of coefficients .*got .*shape \(2, 3\)"),
        (dict(zernike=0.5), r"1-d array of coefficients .*got .*shape \(\)"),
        (dict(zernike=[0.0, np.inf]), r"must be finite"),
    ],
)
def test_bad_arguments_say_what_was_expected_and_given(kwargs, match):
    args = dict(input_shape=(16, 16), dx=0.1, wavelength=0.5, na=0.8) | kwargs
    with pytest.raises(ValueError, match=match):
        O.Pupil(**args)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(input_shape=16), r"input_shape must be a tuple of ints \(\.\.\., ny, nx\), got 16"),
        (dict(na="wide"), r"na must be a positive number \(a numerical aperture\), got 'wide'"),
        (dict(zernike=[1j, 0.0]), r"coefficients must be real .*got dtype complex"),
    ],
)
def test_bad_argument_types(kwargs, match):
    args = dict(input_shape=(16, 16), dx=0.1, wavelength=0.5, na=0.8) | kwargs
    with pytest.raises(TypeError, match=match):
        O.Pupil(**args)


def test_wrong_input_shape_says_expected_and_got():
    with pytest.raises(ValueError, match=r"expects input of shape \(16, 16\), got \(8, 8\)"):
        O.Pupil((16, 16), 0.1, 0.5, 0.8)(jnp.ones((8, 8)))


def test_sampling_warnings():
    # Adequate: cutoff 1.6 < Nyquist 5, radius 1.6 * 64 * 0.1 = 10 pixels.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        P = O.Pupil((64, 64), dx=0.1, wavelength=0.5, na=0.8)
        assert P.adequate_sampling()
    # dx in camera pixels (6.5 um) with wavelength in um: the grid clips the pupil.
    with pytest.warns(UserWarning, match=r"exceeds the grid's Nyquist .*dx <= wavelength / \(2"):
        O.Pupil((64, 64), dx=6.5, wavelength=0.5, na=0.8)
    # A small field: the pupil radius spans 0.8 / 0.5 * 8 * 0.1 = 1.28 pixels along y.
    with pytest.warns(UserWarning, match=r"spans only 1.28 frequency pixels .* along y"):
        P = O.Pupil((8, 64), dx=0.1, wavelength=0.5, na=0.8)
    with pytest.warns(UserWarning, match="spans only"):
        assert not P.adequate_sampling()
    with pytest.warns(UserWarning, match=r"spans only 10.2 .*fewer than 12"):
        assert not quiet(O.Pupil, (64, 64), 0.1, 0.5, 0.8).adequate_sampling(min_radius=12)


def test_repr_shows_the_physical_parameters():
    P = O.Pupil((2, 32, 40), **GRID, zernike=np.zeros(15))
    assert repr(P) == (
        "Pupil(na=0.3, wavelength=0.5, dx=0.25, zernike_terms=15, "
        "(2, 32, 40) complex64 -> (2, 32, 40) complex64)"
    )


def test_real_input_gives_complex_output_of_the_same_precision():
    P = O.Pupil((16, 16), 0.1, 0.5, 0.8, zernike=[0.0, 0.3], input_dtype=jnp.float32)
    y = P(jnp.ones((16, 16)))
    assert y.dtype == jnp.complex64 and P.output_dtype == jnp.complex64
    assert cc.testing.check_adjoint(P) < 1e-5

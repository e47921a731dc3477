"""AngularSpectrum, Fresnel and Fraunhofer against physics (Gaussian beams) and NumPy."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from calcil import operators as O
from tests.helpers import randn, x64

# Several references use band-limited fields (Gaussian beams) on grids whose full band would be
# undersampled: the construction warning is right about the grid, and irrelevant to them.
pytestmark = pytest.mark.filterwarnings("ignore:.*transfer function is undersampled:UserWarning")

WL, DX, N = 0.5, 0.5, 128  # wavelength and pixel in micrometres, grid size


def gaussian(n, dx, w0, tilt=(0.0, 0.0)):
    """``exp(-r^2 / w0^2)`` centred at index ``n // 2``: intensity 1/e^2 radius ``w0``."""
    x = (np.arange(n) - n // 2) * dx
    r2 = x[:, None] ** 2 + x[None, :] ** 2
    return np.exp(-r2 / w0**2 + 2j * np.pi * (tilt[0] * x[:, None] + tilt[1] * x[None, :]))


def beam_width(u, dx):
    """1/e^2 radius from second moments: ``I ~ exp(-2 r^2 / w^2)`` has ``<r^2> = w^2 / 2``."""
    p = np.abs(np.asarray(u, np.complex128)) ** 2
    p = p / p.sum()
    x = (np.arange(p.shape[-1]) - p.shape[-1] // 2) * dx
    y = (np.arange(p.shape[-2]) - p.shape[-2] // 2) * dx
    px, py = p.sum(0), p.sum(1)
    var = (px * (x - px @ x) ** 2).sum() + (py * (y - py @ y) ** 2).sum()
    return np.sqrt(2 * var)


def overlap(a, b):
    """Normalised overlap ``|<a, b>| / (|a| |b|)``."""
    a, b = (np.asarray(v, np.complex128).ravel() for v in (a, b))
    return abs(np.vdot(a, b)) / (np.linalg.norm(a) * np.linalg.norm(b))


def rel_error(got, want):
    got, want = np.asarray(got, np.complex128), np.asarray(want, np.complex128)
    return np.linalg.norm(got - want) / np.linalg.norm(want)


def numpy_angular_spectrum(u, dx, wl, z, n=1.0, bandlimit=True, pad=0):
    """Independent reference: pad by ``pad`` on each side, multiply the spectrum, crop."""
    u = np.pad(np.asarray(u, np.complex128), pad)
    ny, nx = u.shape
    fy, fx = np.meshgrid(np.fft.fftfreq(ny, dx), np.fft.fftfreq(nx, dx), indexing="ij")
    arg = (n / wl) ** 2 - fx**2 - fy**2
    h = np.exp(2j * np.pi * z * np.sqrt(np.maximum(arg, 0))) * (arg > 0)
    if bandlimit:  # Matsushima & Shimobaba 2009, eq. (13), du = 1 / (N dx)
        ux = n / wl / np.sqrt((2 * z / (nx * dx)) ** 2 + 1)
        uy = n / wl / np.sqrt((2 * z / (ny * dx)) ** 2 + 1)
        h = h * (np.abs(fx) < ux) * (np.abs(fy) < uy)
    out = np.fft.ifft2(h * np.fft.fft2(u))
    return out[pad : pad + ny - 2 * pad, pad : pad + nx - 2 * pad]


def quiet(fn, *args):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args)


# ---------------------------------------------------------------------- physics
@pytest.mark.parametrize("n_medium", [1.0, 1.33])
@pytest.mark.parametrize("cls", [O.AngularSpectrum, O.Fresnel])
def test_gaussian_beam_width_follows_w_of_z(cls, n_medium):
    """w(z) = w0 sqrt(1 + (z / zR)^2), zR = pi w0^2 n / wl, forward and backward."""
    w0 = 4.0
    zr = np.pi * w0**2 * n_medium / WL
    z = zr * np.array([0.5, 1.0, 2.0, -2.0])
    P = cls((N, N), DX, WL, z, n_medium=n_medium)
    widths = np.array([beam_width(u, DX) for u in P(gaussian(N, DX, w0).astype(np.complex64))])
    want = w0 * np.sqrt(1 + (z / zr) ** 2)
    np.testing.assert_allclose(widths, want, rtol=2e-3)  # measured: < 0.07 %


@pytest.mark.parametrize("dtype, rtol", [(np.complex64, 1e-4), (np.complex128, 1e-10)])
@pytest.mark.parametrize(
    "z, n_medium, bandlimit, pad_factor",
    [(200.0, 1.0, True, 1), (-200.0, 1.33, True, 1), (30.0, 1.0, False, 1), (80.0, 1.2, True, 2)],
)
def test_angular_spectrum_matches_numpy(dtype, rtol, z, n_medium, bandlimit, pad_factor):
    rng = np.random.default_rng(0)
    u = randn(rng, (64, 64), dtype)
    with x64(dtype):
        P = O.AngularSpectrum((64, 64), 0.3, WL, z, n_medium, bandlimit, pad_factor)
        got = P(u)
    assert got.dtype == dtype
    want = numpy_angular_spectrum(u, 0.3, WL, z, n_medium, bandlimit, pad=32 * (pad_factor - 1))
    assert rel_error(got, want) < rtol


def test_band_limit_removes_exactly_the_matsushima_band():
    z, nx, dx = 300.0, 64, 0.5
    P = O.AngularSpectrum((nx, nx), dx, WL, z)
    f = np.fft.fftfreq(nx, dx)
    limit = 1 / (WL * np.sqrt((2 * z / (nx * dx)) ** 2 + 1))
    kept = np.abs(np.asarray(P.transfer[0])) > 0  # fy = 0 row
    np.testing.assert_array_equal(kept, np.abs(f) < limit)
    assert 0 < kept.sum() < nx  # the limit is active here


def test_evanescent_waves_are_dropped_and_propagating_ones_keep_modulus():
    P = O.AngularSpectrum((32, 32), 0.2, WL, 1.0, bandlimit=False)  # grid band 2.5 > 1/wl
    f = np.fft.fftfreq(32, 0.2)
    f2 = f[:, None] ** 2 + f[None, :] ** 2
    h = np.abs(np.asarray(P.transfer))
    np.testing.assert_array_equal(h[f2 >= (1 / WL) ** 2], 0)
    np.testing.assert_allclose(h[f2 < (1 / WL) ** 2], 1, rtol=1e-6)


def test_plane_wave_gains_the_medium_phase():
    """A normal plane wave acquires exp(i 2 pi n z / wl): the +i sign convention."""
    z, n = 1.3, 1.5
    u = O.AngularSpectrum((16, 16), DX, WL, z, n_medium=n)(jnp.ones((16, 16)))
    np.testing.assert_allclose(u, np.exp(2j * np.pi * n * z / WL) * np.ones((16, 16)), atol=1e-5)


def test_tilted_plane_wave_gains_kz_phase():
    fx = 3 / (32 * DX)  # on the grid
    x = np.arange(32) * DX
    u = np.exp(2j * np.pi * fx * x)[None, :].repeat(32, 0)
    z = 7.0
    kz = np.sqrt(1 / WL**2 - fx**2)
    got = O.AngularSpectrum((32, 32), DX, WL, z)(u.astype(np.complex64))
    np.testing.assert_allclose(got, u * np.exp(2j * np.pi * kz * z), atol=2e-5)


def test_z_stack_matches_single_distances():
    z = np.array([-40.0, 0.0, 15.0, 120.0])
    u = gaussian(64, DX, 3.0, tilt=(0.2, -0.1)).astype(np.complex64)
    stack = O.AngularSpectrum((64, 64), DX, WL, z, pad_factor=1.5)(u)
    assert stack.shape == (4, 64, 64)
    for k, zk in enumerate(z):
        single = O.AngularSpectrum((64, 64), DX, WL, zk, pad_factor=1.5)(u)
        np.testing.assert_allclose(stack[k], single, atol=1e-6)
    np.testing.assert_allclose(stack[1], u, atol=1e-6)  # z = 0 is the identity here


def test_batch_axes_pass_through():
    rng = np.random.default_rng(1)
    u = randn(rng, (3, 2, 16, 16), np.complex64)
    P = O.AngularSpectrum((3, 2, 16, 16), DX, WL, [5.0, 9.0])
    assert P.output_shape == (2, 3, 2, 16, 16)
    single = O.AngularSpectrum((16, 16), DX, WL, 9.0)
    np.testing.assert_allclose(P(u)[1, 2, 1], single(u[2, 1]), atol=1e-6)


@pytest.mark.parametrize("cls", [O.AngularSpectrum, O.Fresnel])
def test_forward_then_backward_returns_the_field(cls):
    u = gaussian(N, DX, 4.0, tilt=(0.1, 0.05)).astype(np.complex64)
    z = 150.0
    back = cls((N, N), DX, WL, -z)(cls((N, N), DX, WL, z)(u))
    assert rel_error(back, u) < 1e-5


def test_backward_propagation_is_the_adjoint_when_unpadded():
    rng = np.random.default_rng(2)
    y = randn(rng, (32, 32), np.complex64)
    for z in (3.0, 400.0):  # band limit inactive and active
        P = O.AngularSpectrum((32, 32), 0.3, WL, z)
        np.testing.assert_allclose(O.AngularSpectrum((32, 32), 0.3, WL, -z)(y), P.H(y), atol=1e-5)


def test_real_input_is_embedded():
    u = gaussian(32, DX, 3.0).real.astype(np.float32)
    P = O.AngularSpectrum((32, 32), DX, WL, 20.0)
    Pr = O.AngularSpectrum((32, 32), DX, WL, 20.0, input_dtype=jnp.float32)
    np.testing.assert_allclose(Pr(u), P(u.astype(np.complex64)), atol=1e-6)
    assert Pr.H(P(u)).dtype == jnp.float32


def test_distance_is_differentiable_when_the_operator_is_built_inside():
    """Autofocus: d/dz of a loss through an operator built from a traced distance."""
    u0 = gaussian(32, DX, 2.0)

    def loss(z, target):  # intensity mismatch: smooth in z, minimal at the true focus
        u = O.AngularSpectrum((32, 32), DX, WL, z)(u0)
        return jnp.sum((jnp.abs(u) ** 2 - jnp.abs(target) ** 2) ** 2)

    with jax.enable_x64(True):
        target = O.AngularSpectrum((32, 32), DX, WL, 12.0)(u0)
        z, eps = 9.0, 1e-4
        grad = float(jax.grad(loss)(z, target))
        fd = float(loss(z + eps, target) - loss(z - eps, target)) / (2 * eps)
        assert grad == pytest.approx(fd, rel=1e-6)
        assert grad < 0  # the loss decreases toward the true focus z = 12
        for cls in (O.AngularSpectrum, O.Fresnel):  # jax.numpy path == NumPy path
            traced = jax.jit(lambda z, cls=cls: cls((32, 32), DX, WL, z, 1.33).transfer)(z)
            concrete = cls((32, 32), DX, WL, z, 1.33).transfer
            np.testing.assert_allclose(traced, concrete, atol=1e-12)


# ---------------------------------------------------------------------- Fresnel, Fraunhofer
def test_fresnel_agrees_with_angular_spectrum_for_paraxial_beams():
    u = gaussian(N, DX, 4.0, tilt=(0.02, 0.0)).astype(np.complex64)
    for z in (50.0, 200.0):
        a = O.AngularSpectrum((N, N), DX, WL, z, n_medium=1.33)(u)
        f = O.Fresnel((N, N), DX, WL, z, n_medium=1.33)(u)
        assert overlap(a, f) > 0.999  # measured: > 0.99999


def test_fresnel_matches_its_transfer_function():
    rng = np.random.default_rng(3)
    u = randn(rng, (32, 48), np.complex128)
    z, n, dx = 25.0, 1.5, 0.4
    f = np.fft.fftfreq(32, dx)[:, None] ** 2 + np.fft.fftfreq(48, dx)[None, :] ** 2
    h = np.exp(2j * np.pi * n * z / WL) * np.exp(-1j * np.pi * WL * z * f / n)
    want = np.fft.ifft2(h * np.fft.fft2(u))
    with jax.enable_x64(True):
        got = O.Fresnel((32, 48), dx, WL, z, n_medium=n)(u)
    assert rel_error(got, want) < 1e-10


@pytest.mark.parametrize("shape", [(32, 32), (15, 20)])
def test_fraunhofer_intensity_is_the_centred_dft(shape):
    rng = np.random.default_rng(4)
    u = randn(rng, shape, np.complex64)
    want = np.abs(np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(u)))) ** 2
    for phase in (False, True):
        F = O.Fraunhofer(shape, dx=1.0, wavelength=WL, distance=5e3, phase=phase)
        got = np.abs(np.asarray(F(u))) ** 2
        scale = want.sum() / got.sum()
        assert scale == pytest.approx(u.size, rel=1e-5)  # unitary: energy kept
        np.testing.assert_allclose(got * scale, want, rtol=1e-4, atol=1e-4 * want.max())


def test_fraunhofer_output_grid_and_centre():
    F = O.Fraunhofer((30, 40), dx=2.0, wavelength=0.5, distance=1e4, n_medium=1.25)
    assert F.dx_out == pytest.approx(0.5 * 1e4 / (1.25 * 40 * 2.0))
    assert F.dy_out == pytest.approx(0.5 * 1e4 / (1.25 * 30 * 2.0))
    u = np.zeros((30, 40), np.complex64)
    u[15, 20] = 1  # a point at the centre: flat far field
    np.testing.assert_allclose(np.abs(F(u)), 1 / np.sqrt(1200), rtol=1e-5)
    U = F(np.ones((30, 40), np.complex64))  # a uniform field: all at zero frequency
    assert np.argmax(np.abs(U)) == np.ravel_multi_index((15, 20), (30, 40))


def test_fraunhofer_with_phase_matches_fresnel_in_the_far_field():
    """At z = N dx^2 / wl the far-field grid equals the input grid (dx_out = dx), and a small
    Gaussian is in its far field: the complex fields (phase included) must agree."""
    n, dx, w0 = 128, 0.5, 1.0
    z = n * dx**2 / WL
    F = O.Fraunhofer((n, n), dx, WL, z, phase=True)
    assert F.dx_out == pytest.approx(dx)
    u = gaussian(n, dx, w0).astype(np.complex64)
    far = O.Fresnel((n, n), dx, WL, z, pad_factor=2)(u)
    assert overlap(F(u), far) > 0.99  # measured 0.9988
    assert overlap(O.Fraunhofer((n, n), dx, WL, z)(u), far) < 0.9  # the phase matters


# ---------------------------------------------------------------------- sampling checks
def test_angular_spectrum_adequate_sampling():
    assert O.AngularSpectrum((64, 64), DX, WL, 5.0).adequate_sampling()
    P = O.AngularSpectrum((64, 64), DX, WL, 500.0)
    with pytest.warns(UserWarning, match="undersampled.*band limit removes"):
        assert not P.adequate_sampling()
    assert P.adequate_sampling(na=0.02)  # a low-NA field is fine
    with pytest.warns(UserWarning, match="set bandlimit=True"):
        O.AngularSpectrum((64, 64), DX, WL, 500.0, bandlimit=False).adequate_sampling()
    # padding doubles the window: the same distance becomes adequate for a moderate NA
    na = 0.15  # shift 120 * 0.3 / 1.98 = 18: more than 16, less than 32
    assert not quiet(O.AngularSpectrum((64, 64), DX, WL, 120.0).adequate_sampling, na)
    assert O.AngularSpectrum((64, 64), DX, WL, 120.0, pad_factor=2).adequate_sampling(na)


def test_operators_that_would_alias_warn_when_built():
    """Fresnel and AngularSpectrum(bandlimit=False) past the sampling limit alias or wrap the
    field around: the construction says so. The band limit removes the undersampled band
    (asked for by adequate_sampling); an adequately sampled operator is built silently."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        O.AngularSpectrum((64, 64), DX, WL, 5.0, bandlimit=False)
        O.AngularSpectrum((64, 64), DX, WL, 500.0)  # band-limited: correct, resolution lost
        O.Fresnel((64, 64), 0.5, WL, 30.0)
        jax.jit(lambda z: O.Fresnel((64, 64), 0.5, WL, z)(jnp.ones((64, 64))))(1e4)  # traced
    with pytest.warns(UserWarning, match="AngularSpectrum: .*undersampled.*wrap") as seen:
        O.AngularSpectrum((64, 64), DX, WL, 500.0, bandlimit=False)
    assert seen[0].filename == __file__  # points at the caller's line
    with pytest.warns(UserWarning, match="Fresnel: .*undersampled.*Voelz"):
        O.Fresnel((64, 64), 0.5, WL, 1e4)


def test_adequate_sampling_is_the_band_limit_condition():
    """Adequate up to frequency f exactly when Matsushima's band limit keeps f."""
    z, n, dx = 100.0, 64, 0.5
    limit = 1 / (WL * np.sqrt((2 * z / (n * dx)) ** 2 + 1))
    P = O.AngularSpectrum((n, n), dx, WL, z)
    assert P.adequate_sampling(na=0.99 * limit * WL)
    assert not quiet(P.adequate_sampling, 1.01 * limit * WL)


def test_fresnel_adequate_sampling_is_voelz_criterion():
    """TF approach adequate when dx >= wl z / (n L)."""
    n, dx, nm = 64, 0.5, 1.33
    critical = dx * n * dx * nm / WL  # the z at which dx = wl z / (n L)
    assert O.Fresnel((n, n), dx, WL, 0.99 * critical, n_medium=nm).adequate_sampling()
    with pytest.warns(UserWarning, match="Voelz"):
        assert not O.Fresnel((n, n), dx, WL, -1.01 * critical, n_medium=nm).adequate_sampling()
    assert O.Fresnel((n, n), dx, WL, 1.9 * critical, pad_factor=2, n_medium=nm).adequate_sampling()


def test_fraunhofer_adequate_sampling_is_the_fraunhofer_distance():
    F = O.Fraunhofer((64, 64), dx=1.0, wavelength=WL, distance=1e4)
    with pytest.warns(UserWarning, match="Fraunhofer distance"):
        assert not F.adequate_sampling()  # 2 * 64^2 / 0.5 = 16384 > 1e4
    assert F.adequate_sampling(support=49.0)  # 2 * 49^2 / 0.5 = 9604 <= 1e4


# ---------------------------------------------------------------------- repr and errors
def test_repr_shows_physical_parameters():
    text = repr(O.AngularSpectrum((8, 8), 0.25, 0.532, 10.0, n_medium=1.33, pad_factor=2))
    for part in ("dx=0.25", "wavelength=0.532", "distance=10", "n_medium=1.33", "pad_factor=2"):
        assert part in text
    assert "bandlimit=True" in text and "(8, 8) complex64 -> (8, 8) complex64" in text
    assert "distance=f4[3]" in repr(O.Fresnel((8, 8), 0.25, 0.5, [1.0, 2.0, 3.0]))
    text = repr(O.Fraunhofer((8, 8), 1.0, 0.5, 100.0))
    assert "dx_out=6.25" in text and "phase=False" in text


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"wavelength": -0.5}, "wavelength must be a positive finite number"),
        ({"dx": 0.0}, "dx must be a positive finite number"),
        ({"n_medium": float("nan")}, "n_medium must be a positive finite number"),
        ({"distance": np.zeros((2, 2))}, "scalar or a 1-d array"),
        ({"distance": np.inf}, "distance must be finite"),
        ({"input_shape": (16,)}, r"at least 2 positive sizes \(..., ny, nx\), got \(16,\)"),
        ({"pad_factor": 0.5}, "pad_factor must be >= 1"),
    ],
)
def test_bad_arguments_are_explained(kwargs, match):
    args = {"input_shape": (8, 8), "dx": 0.5, "wavelength": 0.5, "distance": 1.0, **kwargs}
    with pytest.raises(ValueError, match=match):
        O.AngularSpectrum(**args)


def test_fraunhofer_needs_a_positive_distance():
    with pytest.raises(ValueError, match="Fraunhofer distance must be a positive"):
        O.Fraunhofer((8, 8), 0.5, 0.5, -10.0)


def test_wrong_field_shape_says_expected_and_given():
    with pytest.raises(ValueError, match=r"expects input of shape \(8, 8\), got \(8, 9\)"):
        O.Fresnel((8, 8), 0.5, 0.5, 1.0)(jnp.ones((8, 9)))

"""MultiSlice: physics (slabs, absorption, energy), a NumPy reference, gradients, batching."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from calcil import operators as O
from tests.helpers import randn, x64

WL, DX, DZ, NM = 0.5, 0.2, 0.4, 1.33  # micrometres; water


def numpy_multislice(dn, dx, dz, wl, n, u0):
    """Independent reference: thin phase screen, then the band-limited angular spectrum over
    dz without the background phase exp(i 2 pi n dz / wl)."""
    dn = np.asarray(dn, np.complex128)
    ny, nx = dn.shape[1:]
    fy, fx = np.meshgrid(np.fft.fftfreq(ny, dx), np.fft.fftfreq(nx, dx), indexing="ij")
    k = n / wl
    arg = k**2 - fx**2 - fy**2
    h = np.exp(2j * np.pi * dz * (np.sqrt(np.maximum(arg, 0)) - k)) * (arg > 0)
    for f, size in ((fx, nx), (fy, ny)):
        h = h * (np.abs(f) < k / np.sqrt((2 * dz / (size * dx)) ** 2 + 1))
    u = np.asarray(u0, np.complex128)
    for s in dn:
        u = np.fft.ifft2(h * np.fft.fft2(u * np.exp(2j * np.pi * dz * s / wl)))
    return u


def smooth_object(shape, amplitude, seed=0, sigma=2.0):
    """A smooth random contrast: white noise low-passed by a Gaussian of ``sigma`` pixels."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(shape)
    f2 = np.fft.fftfreq(shape[-2])[:, None] ** 2 + np.fft.fftfreq(shape[-1])[None, :] ** 2
    smooth = np.fft.ifft2(np.fft.fft2(noise) * np.exp(-2 * (np.pi * sigma) ** 2 * f2)).real
    return amplitude * smooth / np.abs(smooth).max()


def tilted_wave(shape, dx, cycles):
    """A plane wave with ``cycles`` periods across the window along (y, x): on the grid."""
    y, x = (np.arange(n)[:, None] if i == 0 else np.arange(n)[None, :] for i, n in enumerate(shape))
    return np.exp(2j * np.pi * (cycles[0] * y / shape[0] + cycles[1] * x / shape[1]))


# ---------------------------------------------------------------------- physics
@pytest.mark.parametrize("dn, nz, dz", [(0.01, 10, 0.5), (0.05, 24, 1.0), (-0.02, 7, 0.3)])
def test_homogeneous_slab_adds_its_optical_path(dn, nz, dz):
    """Phase 2 pi dn L / wl relative to the incident wave, modulo 2 pi."""
    M = O.MultiSlice((nz, 16, 16), DX, dz, WL, n_medium=NM)
    u = M(jnp.full((nz, 16, 16), dn))
    want = np.exp(2j * np.pi * dn * nz * dz / WL)
    np.testing.assert_allclose(u, np.full((16, 16), want), atol=1e-5)


def test_absorbing_slab_attenuates_by_beer_lambert():
    dn, nz = 0.01 + 0.002j, 12
    M = O.MultiSlice((nz, 16, 16), DX, DZ, WL, input_dtype=jnp.complex64)
    u = np.asarray(M(jnp.full((nz, 16, 16), dn, jnp.complex64)))
    L = nz * DZ
    np.testing.assert_allclose(np.abs(u), np.exp(-2 * np.pi * dn.imag * L / WL), rtol=1e-5)
    np.testing.assert_allclose(np.angle(u), 2 * np.pi * dn.real * L / WL, atol=1e-5)


def test_empty_volume_propagates_the_illumination():
    """Normal incidence is unchanged; a tilted plane wave gains exp(i 2 pi (kz - k) L)."""
    nz, shape = 8, (16, 20)
    assert np.allclose(O.MultiSlice((nz, *shape), DX, DZ, WL, NM)(jnp.zeros((nz, *shape))), 1)
    u0 = tilted_wave(shape, DX, (2, -3))
    f2 = (2 / (shape[0] * DX)) ** 2 + (3 / (shape[1] * DX)) ** 2
    k = NM / WL
    M = O.MultiSlice((nz, *shape), DX, DZ, WL, NM, illumination=u0)
    got = M(jnp.zeros((nz, *shape)))
    np.testing.assert_allclose(
        got, u0 * np.exp(2j * np.pi * (np.sqrt(k**2 - f2) - k) * nz * DZ), atol=1e-5
    )


def test_phase_object_conserves_energy():
    dn = smooth_object((16, 64, 64), 0.05).astype(np.float32)
    u0 = tilted_wave((64, 64), DX, (3, 1))
    u = O.MultiSlice(dn.shape, DX, DZ, WL, NM, illumination=u0)(dn)
    energy = float(jnp.sum(jnp.abs(u) ** 2))
    assert energy == pytest.approx(float(np.sum(np.abs(u0) ** 2)), rel=1e-5)


@pytest.mark.parametrize(
    "dtype, rtol",
    [(np.float32, 1e-4), (np.complex64, 1e-4), (np.float64, 1e-10), (np.complex128, 1e-10)],
)
def test_matches_numpy_reference(dtype, rtol):
    dn = smooth_object((6, 32, 24), 0.1, seed=1)
    if np.issubdtype(dtype, np.complexfloating):
        dn = dn + 0.2j * np.abs(smooth_object((6, 32, 24), 0.1, seed=2))
    dn = dn.astype(dtype)
    u0 = tilted_wave((32, 24), DX, (1, 4)) * (1 + 0.5 * smooth_object((32, 24), 1.0, seed=3))
    with x64(dtype):
        got = O.MultiSlice(dn.shape, DX, DZ, WL, NM, illumination=u0, input_dtype=dtype)(dn)
    want = numpy_multislice(dn, DX, DZ, WL, NM, u0)
    err = np.linalg.norm(np.asarray(got) - want) / np.linalg.norm(want)
    assert err < rtol


# ---------------------------------------------------------------------- gradients
def _losses(u, weights, target):
    return {
        "weighted-intensity": jnp.sum(weights * jnp.abs(u) ** 2),
        "field-misfit": jnp.sum(jnp.abs(u - target) ** 2),
    }


@pytest.mark.parametrize("loss_name", ["weighted-intensity", "field-misfit"])
@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
def test_gradients_match_central_differences(dtype, loss_name):
    """Directional derivatives of jax.grad (Re sum(g * v), JAX's convention for complex
    inputs) against central finite differences, in float64."""
    rng = np.random.default_rng(5)
    shape = (4, 16, 12)
    dn = 0.05 * randn(rng, shape, dtype)
    if dn.dtype.kind == "c":
        dn = dn.real + 1j * np.abs(dn.imag)
    weights = rng.uniform(0, 1, shape[1:])
    target = randn(rng, shape[1:], np.complex128)
    with jax.enable_x64(True):
        M = O.MultiSlice(shape, 0.25, 0.5, WL, NM, input_dtype=dtype)

        def loss(x):
            return _losses(M(x), weights, target)[loss_name]

        grad = np.asarray(jax.grad(loss)(dn))
        assert np.all(np.isfinite(grad))
        eps = 1e-6
        for _ in range(3):
            v = randn(rng, shape, dtype)
            fd = float(loss(dn + eps * v) - loss(dn - eps * v)) / (2 * eps)
            assert np.real(np.sum(grad * v)) == pytest.approx(fd, rel=1e-6)  # measured < 1e-9


@pytest.mark.parametrize("remat", [True, 1, 3, 4, 8])  # 3: two segments and a rest of 2
def test_remat_gives_identical_outputs_and_gradients(remat):
    dn = smooth_object((8, 32, 32), 0.05, seed=4).astype(np.float32)
    u0 = tilted_wave((32, 32), DX, (1, 2))
    plain = O.MultiSlice(dn.shape, DX, DZ, WL, NM, illumination=u0, remat=False)
    other = O.MultiSlice(dn.shape, DX, DZ, WL, NM, illumination=u0, remat=remat)

    def loss(M, x):
        return jnp.sum(jnp.abs(M(x)) ** 4)

    np.testing.assert_allclose(other(dn), plain(dn), rtol=0, atol=1e-7)
    g_plain = jax.grad(loss, argnums=1)(plain, dn)
    g_other = jax.grad(loss, argnums=1)(other, dn)
    np.testing.assert_allclose(g_other, g_plain, rtol=1e-6, atol=1e-6 * np.abs(g_plain).max())


def _backward_temp_bytes(M):
    def loss(x):
        return jnp.sum(jnp.abs(M(x)) ** 2)

    spec = jax.ShapeDtypeStruct(M.input_shape, M.input_dtype)
    return jax.jit(jax.grad(loss)).lower(spec).compile().memory_analysis().temp_size_in_bytes


def test_remat_bounds_the_memory_of_the_gradient():
    """Compiled temporaries: 2 nz fields without remat, nz with it, nz / s + 2 s in segments."""
    shape = (64, 32, 32)
    field = 32 * 32 * 8  # complex64
    temp = {
        r: _backward_temp_bytes(O.MultiSlice(shape, DX, DZ, WL, NM, remat=r))
        for r in (False, True, 8)
    }
    assert 2 * 64 * field <= temp[False] < 2.5 * 64 * field
    assert 64 * field <= temp[True] < 1.3 * 64 * field
    # 8 segment inputs, 2 x 8 fields inside the segment being differentiated, a few working
    # fields: measured 28 F, against 131 F without remat.
    assert temp[8] < 32 * field


def test_remat_must_be_a_bool_or_a_positive_segment_length():
    for bad in (0, -2, 2.5, "sqrt"):
        with pytest.raises(ValueError, match="segment length"):
            O.MultiSlice((4, 8, 8), DX, DZ, WL, NM, remat=bad)


# ---------------------------------------------------------------------- batching, composition
def test_batch_of_illuminations_equals_separate_runs_and_vmap():
    dn = smooth_object((5, 16, 16), 0.05).astype(np.float32)
    waves = np.stack([tilted_wave((16, 16), DX, c) for c in ((0, 0), (1, 2), (-3, 1))])
    M = O.MultiSlice(dn.shape, DX, DZ, WL, NM, illumination=waves)
    assert M.output_shape == (3, 16, 16)
    batch = M(dn)

    def exit_field(u0):
        return O.MultiSlice(dn.shape, DX, DZ, WL, NM, illumination=u0)(dn)

    for b, wave in enumerate(waves):
        np.testing.assert_allclose(batch[b], exit_field(wave), atol=1e-6)
    np.testing.assert_allclose(jax.vmap(exit_field)(jnp.asarray(waves)), batch, atol=1e-6)


def test_refocus_by_composing_with_angular_spectrum():
    """Propagating the exit field back by L / 2 is a composition with AngularSpectrum."""
    nz = 6
    M = O.MultiSlice((nz, 16, 16), DX, DZ, WL, NM)
    refocus = O.AngularSpectrum((16, 16), DX, WL, -nz * DZ / 2, n_medium=NM)
    A = refocus @ M
    assert A.output_shape == (16, 16) and not A.linear
    dn = smooth_object((nz, 16, 16), 0.05).astype(np.float32)
    np.testing.assert_allclose(A(dn), refocus(M(dn)), atol=1e-6)


# ---------------------------------------------------------------------- checks and errors
def test_adequate_sampling_of_the_slice_propagator():
    assert O.MultiSlice((4, 64, 64), DX, DZ, WL, NM).adequate_sampling()
    with pytest.warns(UserWarning, match="undersampled"):
        assert not O.MultiSlice((4, 16, 16), DX, 20.0, WL, NM).adequate_sampling()


def test_repr_shows_physical_parameters():
    text = repr(O.MultiSlice((4, 8, 8), DX, DZ, WL, NM, remat=True))
    for part in ("dx=0.2", "dz=0.4", "wavelength=0.5", "n_medium=1.33", "remat=True"):
        assert part in text
    assert "(4, 8, 8) float32 -> (8, 8) complex64" in text


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        (((8, 8), DX, DZ, WL), {}, r"input_shape with at least 3 positive sizes"),
        (((2, 4, 8, 8), DX, DZ, WL), {}, r"\(nz, ny, nx\), got \(2, 4, 8, 8\)"),
        (((4, 8, 8), DX, 0.0, WL), {}, "dz must be a positive finite number"),
        (((4, 8, 8), DX, DZ, -WL), {}, "wavelength must be a positive"),
        (
            ((4, 8, 8), DX, DZ, WL),
            {"illumination": np.ones((8, 9))},
            r"illumination must have shape \(8, 8\)",
        ),
    ],
)
def test_bad_arguments_are_explained(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        O.MultiSlice(*args, **kwargs)

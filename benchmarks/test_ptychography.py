"""Ptychography benchmarks: FourierPtychography and Ptychography against the same maths
written by hand in ``jax.numpy``.

Groups (``benchmark.group``) and what one timed call computes:

- ``fourier-ptychography-forward-512`` and ``fourier-ptychography-value-grad-512``: a 512 x 512
  complex64 object, 49 LEDs (a 7 x 7 array, pitch 4 mm at 70 mm: illumination NA up to 0.17),
  objective NA 0.1, wavelength 0.52 µm, object pixel 0.5 µm, ``downsample=4`` (49 images of
  128 x 128); six Zernike coefficients. The forward images, then ``jax.value_and_grad`` of the
  amplitude loss ``0.5 sum (sqrt(I + eps) - sqrt(y + eps))^2`` with respect to the object and
  the Zernike coefficients (the pupil recovery of a reconstruction). ``impl="calcil"`` builds
  ``FourierPtychography(..., zernike=c)`` inside the jitted function; ``impl="jax"`` is written
  as FPM codes do it: the centred spectrum ``fftshift(fft2(t))``, one ``dynamic_slice`` per
  LED (``vmap``), the pupil ``circ * exp(i sum c_j Z_j)`` from a basis computed in NumPy, and
  ``ifft2`` of the product.
- ``ptychography-forward-512`` and ``ptychography-value-grad-512``: a 512 x 512 complex64
  object, a 64 x 64 probe (a defocused disc), 100 positions (a 10 x 10 raster, step 40 pixels,
  sub-pixel offsets). The diffraction intensities, then ``jax.value_and_grad`` of the
  amplitude loss with respect to the object, the probe and the positions. ``impl="jax"`` shifts
  the probe by the sub-pixel remainder with a phase ramp on its precomputed spectrum (the
  Hermitian ``cos(pi r)`` at the Nyquist frequency, as ``Shift`` defines it), cuts the
  object window with ``dynamic_slice`` and takes ``fft2(norm="ortho")``, ``vmap``-ed over the
  positions.

Before timing, each group checks that its sides agree (``assert_allclose`` on the images, the
loss and the gradients). Peak memory as in ``test_optics.py``: ``extra_info["peak_bytes"]``
from the compiled program's ``memory_analysis()``.

Pairs are timed in alternating blocks (calcil, jax, jax, calcil, ...) which ``report.py``
pools; ``CALCIL_BENCH_ROUNDS`` scales the rounds per block. The file takes about 1.5 minutes
on 2 CPU cores.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import device_kind, device_memory_info, memory_info, scaled_rounds

import calcil as cc

O = cc.operators
N = 512
EPS = 1e-6

# ---------------------------------------------------------------------- Fourier ptychography
FP = {"dx": 0.5, "wavelength": 0.52, "na": 0.1, "downsample": 4}
LEDS = O.led_array((7, 7), pitch=4.0, distance=70.0)
ZERNIKE = np.array([0.0, 0.0, 0.0, 0.8, -0.3, 0.2], np.float32)

# ---------------------------------------------------------------------- ptychography
PROBE = 64
STEP = 40
BLOCKS = 6
ROUNDS = 8


def _blocks(groups):
    for group in groups:
        for b in range(BLOCKS):
            for impl in ("calcil", "jax") if b % 2 == 0 else ("jax", "calcil"):
                yield group, b, impl


def _amplitude_loss(intensity, measured):
    return 0.5 * jnp.sum((jnp.sqrt(intensity + EPS) - jnp.sqrt(measured + EPS)) ** 2)


def _object(seed):
    k1, k2 = jax.random.split(jax.random.key(seed))
    amplitude = 0.7 + 0.3 * jax.random.uniform(k1, (N, N))
    phase = jax.random.uniform(k2, (N, N), minval=-1.0, maxval=1.0)
    return (amplitude * jnp.exp(1j * phase)).astype(jnp.complex64)


# ---------------------------------------------------------------------- by hand: FPM
def _fp_tables():
    """Window corners in the centred spectrum and the pupil's mask and Zernike basis (NumPy)."""
    m, d, wl = N // FP["downsample"], FP["dx"], FP["wavelength"]
    shifts = np.round(LEDS / wl * (N * d)).astype(int)  # spectrum pixels (y, x)
    corners = N // 2 - shifts - m // 2  # of the window centred at -shift
    f = np.fft.fftshift(np.fft.fftfreq(m, d * FP["downsample"]))
    fy, fx = np.meshgrid(f, f, indexing="ij")
    rho, theta = np.hypot(fy, fx) / (FP["na"] / wl), np.arctan2(fy, fx)
    inside = rho <= 1 + 1e-9
    basis = np.stack(
        [np.where(inside, np.asarray(O.zernike(j + 1, rho, theta)), 0) for j in range(6)]
    )
    return jnp.asarray(corners, jnp.int32), jnp.asarray(inside, jnp.float32), jnp.asarray(basis)


def fp_by_hand(t, zernike, corners, mask, basis):
    m = N // FP["downsample"]
    pupil = mask * jnp.exp(1j * jnp.tensordot(zernike, basis, axes=1))
    spectrum = jnp.fft.fftshift(jnp.fft.fft2(t))

    def image(corner):
        window = jax.lax.dynamic_slice(spectrum, corner, (m, m))
        field = jnp.fft.ifft2(jnp.fft.ifftshift(pupil * window)) / FP["downsample"] ** 2
        return jnp.abs(field) ** 2

    return jax.vmap(image)(corners)


def _fp_calcil(t, zernike):
    return O.FourierPtychography((N, N), led_na=LEDS, zernike=zernike, **FP)(t)


@jax.jit
def _fp_calcil_forward(t, zernike):
    return _fp_calcil(t, zernike)


@jax.jit
def _fp_calcil_value_grad(t, zernike, measured):
    return jax.value_and_grad(
        lambda a, c: _amplitude_loss(_fp_calcil(a, c), measured), argnums=(0, 1)
    )(t, zernike)


_fp_jax_forward = jax.jit(fp_by_hand)


@jax.jit
def _fp_jax_value_grad(t, zernike, measured, corners, mask, basis):
    return jax.value_and_grad(
        lambda a, c: _amplitude_loss(fp_by_hand(a, c, corners, mask, basis), measured),
        argnums=(0, 1),
    )(t, zernike)


# ---------------------------------------------------------------------- by hand: ptychography
def ptychography_by_hand(t, probe, positions):
    corners = jnp.floor(positions)
    remainder = positions - corners
    f = jnp.fft.fftfreq(PROBE)
    nyquist = jnp.arange(PROBE) == PROBE // 2
    spectrum = jnp.fft.fft2(probe)

    def axis_ramp(r):  # exp(-2 pi i f r), Hermitian cos(pi r) at the Nyquist frequency
        return jnp.where(nyquist, jnp.cos(jnp.pi * r), jnp.exp(-2j * jnp.pi * f * r))

    def pattern(corner, r):
        ramp = axis_ramp(r[0])[:, None] * axis_ramp(r[1])[None, :]
        shifted = jnp.fft.ifft2(spectrum * ramp)
        window = jax.lax.dynamic_slice(t, corner.astype(jnp.int32), (PROBE, PROBE))
        wave = jnp.fft.fft2(shifted * window, norm="ortho")
        return jnp.fft.fftshift(jnp.abs(wave) ** 2)

    return jax.vmap(pattern)(corners, remainder)


@jax.jit
def _pt_calcil_forward(t, probe, positions):
    return O.Ptychography((N, N), probe, positions)(t)


@jax.jit
def _pt_calcil_value_grad(t, probe, positions, measured):
    def loss(a, p, q):
        return _amplitude_loss(O.Ptychography((N, N), p, q)(a), measured)

    return jax.value_and_grad(loss, argnums=(0, 1, 2))(t, probe, positions)


_pt_jax_forward = jax.jit(ptychography_by_hand)


@jax.jit
def _pt_jax_value_grad(t, probe, positions, measured):
    def loss(a, p, q):
        return _amplitude_loss(ptychography_by_hand(a, p, q), measured)

    return jax.value_and_grad(loss, argnums=(0, 1, 2))(t, probe, positions)


def _probe():
    """A disc of radius 16 px with a quadratic phase (defocus), centred in 64 x 64."""
    r = np.arange(PROBE) - PROBE / 2 + 0.5
    rr = r[:, None] ** 2 + r[None, :] ** 2
    disc = 1 / (1 + np.exp((np.sqrt(rr) - 16) / 1.0))  # soft edge: band-limited enough
    return jnp.asarray(disc * np.exp(1j * rr / 200), jnp.complex64)


def _positions(seed):
    grid = np.stack(np.meshgrid(np.arange(10), np.arange(10), indexing="ij"), -1).reshape(-1, 2)
    jitter = np.random.default_rng(seed).uniform(-0.5, 0.5, (100, 2))
    return jnp.asarray(20.0 + STEP * grid + jitter, jnp.float32)


# ---------------------------------------------------------------------- building and checking
def _agree(ours, theirs, rtol):
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs), strict=True):
        a, b = np.asarray(a), np.asarray(b)
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * float(np.abs(b).max()))


@functools.lru_cache(maxsize=1)
def build(group):
    """``{impl: (fn, args, memory)}`` for one group, checked to agree."""
    if group.startswith("fourier"):
        tables = _fp_tables()
        truth, start = _object(0), _object(1)
        zernike = jnp.asarray(ZERNIKE)
        measured = _fp_jax_forward(truth, zernike, *tables)
        _agree(_fp_calcil_forward(truth, zernike), measured, 1e-4)
        assert float(measured[len(LEDS) // 2].mean()) > 0.3  # the centre LED: brightfield
        if group.endswith("forward-512"):
            sides = {
                "calcil": (_fp_calcil_forward, (start, zernike)),
                "jax": (_fp_jax_forward, (start, zernike, *tables)),
            }
        else:
            sides = {
                "calcil": (_fp_calcil_value_grad, (start, 0 * zernike, measured)),
                "jax": (_fp_jax_value_grad, (start, 0 * zernike, measured, *tables)),
            }
    else:
        probe, truth, start = _probe(), _object(2), _object(3)
        true_positions, positions = _positions(0), _positions(1)
        measured = _pt_jax_forward(truth, probe, true_positions)
        _agree(_pt_calcil_forward(truth, probe, true_positions), measured, 1e-4)
        if group.endswith("forward-512"):
            sides = {
                "calcil": (_pt_calcil_forward, (start, probe, positions)),
                "jax": (_pt_jax_forward, (start, probe, positions)),
            }
        else:
            sides = {
                "calcil": (_pt_calcil_value_grad, (start, probe, positions, measured)),
                "jax": (_pt_jax_value_grad, (start, probe, positions, measured)),
            }
    outputs = {impl: fn(*args) for impl, (fn, args) in sides.items()}
    _agree(outputs["calcil"], outputs["jax"], 2e-3)
    return {impl: (fn, args, memory_info(fn, args)) for impl, (fn, args) in sides.items()}


GROUPS = (
    "fourier-ptychography-forward-512",
    "fourier-ptychography-value-grad-512",
    "ptychography-forward-512",
    "ptychography-value-grad-512",
)


@pytest.mark.parametrize(("group", "rep", "impl"), list(_blocks(GROUPS)))
def test_ptychography(benchmark, run_jitted, group, rep, impl):
    fn, args, memory = build(group)[impl]
    run_jitted(
        fn,
        args,
        group=group,
        impl=impl,
        size=N,
        rounds=scaled_rounds(ROUNDS),
        rep=rep,
        device=device_kind(),
        **memory,
    )
    benchmark.extra_info.update(device_memory_info())

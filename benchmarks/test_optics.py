"""Optics benchmarks: AngularSpectrum and MultiSlice against the same maths written by hand.

Groups (``benchmark.group``) and what one timed call computes:

- ``angular-spectrum-fwd-adj-<n>`` (n = 1024, 4096): forward then adjoint of
  ``AngularSpectrum((n, n), dx=0.2, wavelength=0.5, distance=50.0)`` (``n_medium=1``, default
  band limit, no padding) on a complex64 field. ``impl="calcil"`` jits
  ``lambda op, x: op.H(op(x))`` with the operator passed as a pytree argument; ``impl="jax"``
  jits ``ifft2(conj(H) * fft2(ifft2(H * fft2(x))))`` with the transfer function ``H``
  computed independently in NumPy (float64, cast to complex64) and passed as an argument.
- ``multislice-value-grad-<n>`` (n = 128, 256, an ``(n, n, n)`` float32 contrast volume):
  ``jax.value_and_grad`` of ``0.5 * sum((|u_exit|^2 - measured)^2)`` with respect to the
  volume, ``u_exit`` the exit field of ``MultiSlice((n, n, n), dx=0.2, dz=0.2,
  wavelength=0.5, n_medium=1.33)`` under a unit plane wave. ``impl="calcil"`` uses the
  default operator (``remat=True``: each slice under ``jax.checkpoint``),
  ``impl="calcil-segments"`` the one built with ``remat=isqrt(n // 2)`` (segments of slices
  under a second checkpoint: memory growing as ``sqrt(nz)``), ``impl="jax"`` a hand-written
  ``lax.scan`` over the slices without checkpoints:
  ``u = u * exp(i k0 dz dn_k)``, then ``u = ifft2(fft2(u) * H_dz)``, ``H_dz`` the
  angular-spectrum transfer function over ``dz`` without the background phase, computed in
  NumPy and passed as an argument.

Before timing, each group checks that its sides agree (``assert_allclose``): the hand-written
transfer functions against the operators' own, the outputs (value and gradient) against each
other, and the hand-written multislice against the analytic slab phase ``2 pi dn L / wl``.

Peak memory: every row records the compiled program's memory from
``jax.jit(f).lower(*args).compile().memory_analysis()`` in ``extra_info``:
``peak_bytes = argument + output + temp - alias`` (what the executable holds at once) and the
parts (``argument_bytes``, ``output_bytes``, ``temp_bytes``, ``alias_bytes``). Where the
device reports memory statistics (GPU; ``memory_stats()`` is ``None`` on CPU), the row also
records ``device_peak_bytes_in_use``, the process-wide high-water mark after the block, and
``device_bytes_in_use``. ``extra_info["device"]`` is ``jax.devices()[0].device_kind``.

Pairs are timed in alternating blocks (calcil, jax, jax, calcil, ...; for the three
multislice impls, blocks cycling through the six orders of the three) which ``report.py``
pools, so that load from other processes lands on every side alike. ``CALCIL_BENCH_ROUNDS``
scales the rounds per block (at least 3). ``report.py`` shows ``calcil-segments`` as an extra
row against ``jax``; ``report.py ... --candidate calcil-segments --baseline calcil`` gives the
cost of segments alone.
"""

import functools
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import device_kind, device_memory_info, memory_info, scaled_rounds

import calcil as cc

# ---------------------------------------------------------------------- parameters (µm)
# Lateral pixel 0.2 µm: Nyquist 2.5 cycles/µm > n/wl, so the evanescent mask cuts the corners
# of the spectrum (and the band limit cuts more at the AngularSpectrum distance).
DX = 0.2
WAVELENGTH = 0.5
AS_DISTANCE = 50.0
AS_N_MEDIUM = 1.0
MS_DZ = 0.2
MS_N_MEDIUM = 1.33
MS_CONTRAST = 0.01  # dn in [0, 0.01)

AS_SIZES = (1024, 4096)
MS_SIZES = (128, 256)

# Alternating blocks: calcil, jax, jax, calcil, ... (rounds per block at
# CALCIL_BENCH_ROUNDS=1). One call takes ~30 ms at 1024^2, ~0.9 s at 4096^2 on 2 CPU cores.
# The large sizes get many short blocks: on a shared, loaded machine the speed can change by
# up to 2x for seconds at a time, and short blocks spread those changes over all sides.
AS_BLOCKS = {1024: 10, 4096: 8}
AS_ROUNDS = {1024: 10, 4096: 3}
# Multislice: blocks cycle through the 6 orders of the three impls. One call takes ~60 ms at
# 128^3, ~0.4-0.55 s at 256^3 on 2 CPU cores. The whole file: 3-3.5 minutes there.
MS_IMPLS = ("calcil", "calcil-segments", "jax")
MS_ORDERS = list(itertools.permutations(MS_IMPLS))
MS_BLOCKS = {128: 6, 256: 12}
MS_ROUNDS = {128: 10, 256: 3}


def _as_blocks():
    for n in AS_SIZES:
        for b in range(AS_BLOCKS[n]):
            for impl in ("calcil", "jax") if b % 2 == 0 else ("jax", "calcil"):
                yield n, b, impl


def _ms_blocks():
    for n in MS_SIZES:
        for b in range(MS_BLOCKS[n]):
            for impl in MS_ORDERS[b % len(MS_ORDERS)]:
                yield n, b, impl


# ---------------------------------------------------------------------- transfer functions
def angular_spectrum_transfer(n, dx, wavelength, z, n_medium, background=True):
    """Band-limited angular-spectrum transfer function on an ``n x n`` grid (NumPy, float64).

    ``H = exp(i 2 pi z kz)``, ``kz = sqrt((n_medium/wl)^2 - fx^2 - fy^2)``, zero where
    ``kz^2 <= 0`` (evanescent) or outside Matsushima & Shimobaba's band
    ``|f| < k / sqrt((2 z / (n dx))^2 + 1)`` on either axis. ``background=False`` gives
    ``exp(i 2 pi z (kz - k))`` (the field relative to the background plane wave).
    """
    k = n_medium / wavelength
    f = np.fft.fftfreq(n, dx)
    fy, fx = f[:, None], f[None, :]
    kz2 = k**2 - fx**2 - fy**2
    kz = np.sqrt(np.maximum(kz2, 0.0))
    u_limit = k / np.sqrt((2 * z / (n * dx)) ** 2 + 1)
    keep = (kz2 > 0) & (np.abs(fx) < u_limit) & (np.abs(fy) < u_limit)
    phase = 2 * np.pi * z * (kz if background else kz - k)
    return np.where(keep, np.exp(1j * phase), 0)


def _check_transfer(ours, theirs):
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    assert ours.shape == theirs.shape
    assert np.array_equal(ours == 0, theirs == 0), "the masks differ"
    assert 0 < np.count_nonzero(theirs == 0) < theirs.size  # the masks do cut something
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-6)


# ---------------------------------------------------------------------- angular spectrum
@jax.jit
def _calcil_fwd_adj(op, x):
    return op.H(op(x))


@jax.jit
def _jax_fwd_adj(H, x):
    y = jnp.fft.ifft2(H * jnp.fft.fft2(x))
    return jnp.fft.ifft2(jnp.conj(H) * jnp.fft.fft2(y))


@functools.lru_cache(maxsize=1)  # one group at a time: frees the previous group's arrays
def build_angular_spectrum(n: int, inputs):
    """``{impl: (fn, args, memory)}`` for one size, checked to agree."""
    op = cc.operators.AngularSpectrum(
        (n, n), dx=DX, wavelength=WAVELENGTH, distance=AS_DISTANCE, n_medium=AS_N_MEDIUM
    )
    H = angular_spectrum_transfer(n, DX, WAVELENGTH, AS_DISTANCE, AS_N_MEDIUM).astype(np.complex64)
    _check_transfer(op.transfer, H)
    H = jnp.asarray(H)
    x = inputs.complex_image(n)
    sides = {"calcil": (_calcil_fwd_adj, (op, x)), "jax": (_jax_fwd_adj, (H, x))}
    ours, theirs = (np.asarray(fn(*args)) for fn, args in sides.values())
    assert ours.shape == theirs.shape == (n, n) and ours.dtype == theirs.dtype == np.complex64
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5 * float(np.abs(theirs).max()))
    return {impl: (fn, args, memory_info(fn, args)) for impl, (fn, args) in sides.items()}


# ---------------------------------------------------------------------- multislice
K0DZ = 2 * np.pi * MS_DZ / WAVELENGTH


def _intensity_loss(u, measured):
    return 0.5 * jnp.sum((jnp.abs(u) ** 2 - measured) ** 2)


def multislice_by_hand(H, u0, dn):
    """Exit field: for each slice, ``u *= exp(i k0 dz dn_k)`` then ``u = ifft2(fft2(u) H)``."""

    def slice_step(u, dn_k):
        u = u * jnp.exp(1j * K0DZ * dn_k)
        return jnp.fft.ifft2(jnp.fft.fft2(u) * H), None

    u, _ = jax.lax.scan(slice_step, u0, dn)
    return u


@jax.jit
def _calcil_value_grad(op, dn, measured):
    return jax.value_and_grad(lambda v: _intensity_loss(op(v), measured))(dn)


@jax.jit
def _jax_value_grad(H, u0, dn, measured):
    return jax.value_and_grad(lambda v: _intensity_loss(multislice_by_hand(H, u0, v), measured))(dn)


_jax_multislice = jax.jit(multislice_by_hand)


@functools.lru_cache(maxsize=1)
def build_multislice(n: int):
    """``{impl: (fn, args, memory)}`` for one ``(n, n, n)`` volume, checked to agree."""
    shape = (n, n, n)
    params = {"dx": DX, "dz": MS_DZ, "wavelength": WAVELENGTH, "n_medium": MS_N_MEDIUM}
    op = cc.operators.MultiSlice(shape, **params)
    op_segments = cc.operators.MultiSlice(shape, remat=math.isqrt(n // 2), **params)
    H = angular_spectrum_transfer(n, DX, WAVELENGTH, MS_DZ, MS_N_MEDIUM, background=False)
    H = H.astype(np.complex64)
    _check_transfer(op.transfer, H)
    H = jnp.asarray(H)
    u0 = jnp.ones((n, n), jnp.complex64)  # the operator's default illumination

    # The hand-written multislice is what it claims: a slab of contrast dn and thickness
    # L = n dz adds the phase 2 pi dn L / wl to a plane wave.
    slab = _jax_multislice(H, u0, jnp.full(shape, MS_CONTRAST, jnp.float32))
    want = np.exp(1j * 2 * np.pi * MS_CONTRAST * n * MS_DZ / WAVELENGTH)
    np.testing.assert_allclose(np.asarray(slab), np.full((n, n), want), atol=1e-4)

    k_true, k_start = jax.random.split(jax.random.key(1))
    dn_true = MS_CONTRAST * jax.random.uniform(k_true, shape, jnp.float32)
    measured = jnp.abs(_jax_multislice(H, u0, dn_true)) ** 2
    dn = MS_CONTRAST * jax.random.uniform(k_start, shape, jnp.float32)
    sides = {
        "calcil": (_calcil_value_grad, (op, dn, measured)),
        "calcil-segments": (_calcil_value_grad, (op_segments, dn, measured)),
        "jax": (_jax_value_grad, (H, u0, dn, measured)),
    }
    (want_value, want_grad) = (np.asarray(a) for a in _jax_value_grad(H, u0, dn, measured))
    assert want_value > 0 and np.abs(want_grad).max() > 0
    scale = float(np.abs(want_grad).max())
    for impl in ("calcil", "calcil-segments"):
        fn, args = sides[impl]
        value, grad = (np.asarray(a) for a in fn(*args))
        assert grad.shape == shape and grad.dtype == np.float32
        np.testing.assert_allclose(value, want_value, rtol=1e-4)
        np.testing.assert_allclose(grad, want_grad, rtol=1e-3, atol=1e-4 * scale)
    return {impl: (fn, args, memory_info(fn, args)) for impl, (fn, args) in sides.items()}


# ---------------------------------------------------------------------- benchmarks


@pytest.mark.parametrize(("n", "rep", "impl"), list(_as_blocks()))
def test_angular_spectrum(benchmark, run_jitted, inputs, n, rep, impl):
    fn, args, memory = build_angular_spectrum(n, inputs)[impl]
    run_jitted(
        fn,
        args,
        group=f"angular-spectrum-fwd-adj-{n}",
        impl=impl,
        size=n,
        rounds=scaled_rounds(AS_ROUNDS[n]),
        rep=rep,
        device=device_kind(),
        **memory,
    )
    benchmark.extra_info.update(device_memory_info())


@pytest.mark.parametrize(("n", "rep", "impl"), list(_ms_blocks()))
def test_multislice(benchmark, run_jitted, n, rep, impl):
    fn, args, memory = build_multislice(n)[impl]
    run_jitted(
        fn,
        args,
        group=f"multislice-value-grad-{n}",
        impl=impl,
        size=n,
        rounds=scaled_rounds(MS_ROUNDS[n]),
        rep=rep,
        device=device_kind(),
        **memory,
    )
    benchmark.extra_info.update(device_memory_info())

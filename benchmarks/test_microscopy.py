"""Microscopy benchmarks: calcil's microscope models against the same maths written by hand.

One section per model, each with its own groups, hand-written side, builders and tests:

- ``PartiallyCoherent``: Abbe imaging under many illumination sources (below).

Shared by every section: the objective and the grid (``N x N`` complex64 transmittances,
pixel ``DX`` µm, wavelength ``WAVELENGTH`` µm, ``NA``), a hand-written pupil, test
transmittances, and the timing of alternating blocks (:func:`time_block`). Every timed
function is ``jax.jit``-compiled; calcil's side passes the operator as a pytree argument, the
hand-written side its arrays (pupil, source frequencies and weights).

PartiallyCoherent
-----------------

``A = PartiallyCoherent((N, N), DX, WAVELENGTH, NA, sources, zernike=ZERNIKE)``: the image
``I = sum_s w_s |ifft2(P fft2(t exp(2 pi i (fy_s y + fx_s x))))|^2`` of a complex
transmittance ``t`` for a set of mutually incoherent sources ``(fy_s, fx_s)`` with weights
``w_s``. ``P`` is the objective's pupil with defocus and astigmatism. Two illuminations, both
from :func:`calcil.operators.source_points` with the condenser NA equal to the objective's:

- ``brightfield``: ``source_points("disk", NA, WAVELENGTH, 9)``, 49 sources, one image;
- ``dpc``: the 4 half-disks ``source_points("half", NA, WAVELENGTH, 5, angle)`` for
  ``angle = 0, pi/2, pi, 3 pi/2`` (differential phase contrast), 9 sources each, 4 images.

With these numbers the sources lie on the frequency grid ``1 / (N DX)`` (a multiple of 32 of
its step), so the tilted fields are periodic and a clear sample images to 1.

Groups ``partially-coherent-<case>-<what>-<N>``, ``what`` being

- ``forward``: ``A(t)``;
- ``value-grad``: ``jax.value_and_grad`` of ``0.5 * sum((A(t) - y)^2)`` with respect to the
  complex ``t`` (``y`` the image of another transmittance).

Impls:

- ``calcil``: ``jax.jit(lambda A, t: A(t))`` and the same loss through ``A``;
- ``jax``: the hand-written Abbe sum (:func:`abbe_image`): a ``lax.scan`` over the sources
  accumulating ``w |ifft2(P fft2(t * plane_wave))|^2``. The plane wave is separable: the 1D
  ramps ``exp(2 pi i fy y)`` and ``exp(2 pi i fx x)`` of all sources are computed before
  the scan (two ``(m, N)`` arrays) and each step multiplies ``t`` by a column and a row. For
  several patterns, one scan per pattern, stacked. ``P`` is computed in NumPy from the
  Zernike formulas (float64, then complex64) and passed as an argument;
- ``jax-full-exp`` (brightfield only): the same scan with the plane wave evaluated in each
  step as one exponential over the whole grid, ``exp(2 pi i (fy y + fx x))``, the literal
  transcription of the formula (what a first version of calcil did). ``report.py ...
  --candidate calcil --baseline jax-full-exp`` compares calcil with it, ``--candidate
  jax-full-exp --baseline jax`` gives the cost of that expression alone.

How the hand-written sum was chosen, on the CPU: a ``lax.scan`` over the sources is the fast
way to write it (``jax.vmap`` over the 49 sources, one ``(49, N, N)`` batch, took 1.8x as
long; ``vmap`` over the 4 DPC patterns 1.6x as long as one scan per pattern). Writing the
product of the two ramps inside the scan step gains only 5-10% over the full exponential:
XLA fuses the ramps' sine and cosine into the per-pixel loop and evaluates them for every
pixel. Computed before the scan, the ramps cost nothing: the sum takes what it takes without
any tilt.

Before timing, each case checks that the hand-written pupil equals calcil's
(``A.pupil.pupil_function``: the same zeros, values within 1e-5), that the hand-written side
images a clear sample (``t = 1``) to 1, and that both sides agree: images with
``rtol=1e-4`` (``atol=1e-5 max I``), the loss with ``rtol=1e-4``, and the gradient with
``rtol=1e-3, atol=1e-4 max |grad|``.

Every row records the compiled program's memory (``memory_info`` in ``conftest.py``,
``peak_bytes = argument + output + temp - alias`` with its parts), ``n_sources``,
``n_patterns`` and ``device``; where the device reports memory statistics (GPU) also
``device_peak_bytes_in_use``. The impls of a group are timed in alternating blocks (cycling
through the orders of the impls) which ``report.py`` pools; each block is a few rounds
without warm-up rounds (the agreement checks have already compiled and run every function).
``CALCIL_BENCH_ROUNDS`` scales the rounds per block (at least 1). The file takes about
1 minute on 2 CPU cores (1.5 minutes under heavy load).
"""

import functools
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import describe, device_kind, device_memory_info, memory_info, scaled_rounds

import calcil as cc

# ---------------------------------------------------------------------- shared: the microscope
# A 20x / 0.4 objective with 6.5 µm camera pixels, green light (µm).
N = 512
DX = 0.325
WAVELENGTH = 0.52
NA = 0.4
# Noll coefficients (radians): defocus 0.8, astigmatism 0.3 (sin 2 theta) and -0.2 (cos 2 theta).
ZERNIKE = (0.0, 0.0, 0.0, 0.8, 0.3, -0.2)


def pupil_by_hand(n, dx, wavelength, na, zernike):
    """The pupil ``circ(rho <= 1) exp(i (c4 Z4 + c5 Z5 + c6 Z6))`` on the fftfreq grid (NumPy,
    float64), ``rho = |f| / (na / wavelength)``, ``theta = atan2(fy, fx)``; Noll's
    ``Z4 = sqrt(3) (2 rho^2 - 1)``, ``Z5 = sqrt(6) rho^2 sin 2 theta``, ``Z6 = sqrt(6) rho^2
    cos 2 theta``. Frequencies on the cutoff (to 1e-9) are inside."""
    assert len(zernike) == 6 and not any(zernike[:3]), "piston and tilts are not written here"
    f = np.fft.fftfreq(n, dx)
    fy, fx = f[:, None], f[None, :]
    rho = np.hypot(fy, fx) / (na / wavelength)
    theta = np.arctan2(fy, fx)
    c4, c5, c6 = zernike[3:]
    phase = (
        c4 * math.sqrt(3) * (2 * rho**2 - 1)
        + c5 * math.sqrt(6) * rho**2 * np.sin(2 * theta)
        + c6 * math.sqrt(6) * rho**2 * np.cos(2 * theta)
    )
    return np.where(rho <= 1 + 1e-9, np.exp(1j * phase), 0)


def check_pupil(ours, theirs):
    """calcil's pupil function against the hand-written one: same zeros, values to 1e-5."""
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    assert ours.shape == theirs.shape
    assert np.array_equal(ours == 0, theirs == 0), "the apertures differ"
    assert 0 < np.count_nonzero(theirs) < theirs.size
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-5)


@functools.cache
def transmittance(n: int, seed: int) -> jax.Array:
    """A complex64 ``n x n`` transmittance ``(0.8 + 0.2 u) exp(i pi (v - 1/2))``, ``u, v``
    uniform in ``[0, 1)`` (cached: shared by every impl)."""
    ka, kp = jax.random.split(jax.random.key(seed))
    amplitude = 0.8 + 0.2 * jax.random.uniform(ka, (n, n), jnp.float32)
    phase = jnp.pi * (jax.random.uniform(kp, (n, n), jnp.float32) - 0.5)
    return (amplitude * jnp.exp(1j * phase)).astype(jnp.complex64)


def square_loss(image, y):
    """``0.5 * sum((image - y)^2)``: the least-squares data term every section differentiates."""
    return 0.5 * jnp.sum((image - y) ** 2)


def check_value_grad(ours, theirs):
    """Two ``(loss, gradient)`` pairs agree: loss to 1e-4, gradient to 1e-3 (atol 1e-4 max)."""
    (value, grad), (want_value, want_grad) = (
        tuple(np.asarray(a) for a in pair) for pair in (ours, theirs)
    )
    assert want_value > 0 and np.abs(want_grad).max() > 0
    assert grad.shape == want_grad.shape and grad.dtype == want_grad.dtype
    np.testing.assert_allclose(value, want_value, rtol=1e-4)
    scale = float(np.abs(want_grad).max())
    np.testing.assert_allclose(grad, want_grad, rtol=1e-3, atol=1e-4 * scale)


def check_images(ours, theirs):
    """Two image stacks agree to ``rtol=1e-4`` (``atol=1e-5`` of the largest value)."""
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype == np.float32
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5 * float(theirs.max()))


def block_orders(impls, blocks):
    """``(block, impl)`` in ``blocks`` blocks cycling through the orders of ``impls`` (for two:
    a, b, b, a, ...), so that load from other processes lands on every impl alike."""
    orders = list(itertools.permutations(impls))
    for block in range(blocks):
        for impl in orders[block % len(orders)]:
            yield block, impl


def time_block(benchmark, fn, args, rounds):
    """Time ``rounds`` calls of ``fn(*args)`` (compiled and run once already), each waiting
    for its result; record the device's memory statistics where it has them."""
    benchmark.pedantic(
        lambda: jax.block_until_ready(fn(*args)), rounds=rounds, warmup_rounds=0, iterations=1
    )
    benchmark.extra_info.update(device_memory_info())


# ---------------------------------------------------------------------- PartiallyCoherent
# Illuminations: name -> list of (kind, n, angle) given to source_points; one entry is one
# pattern (one image). Condenser NA = objective NA.
PC_CASES = {
    "brightfield": [("disk", 9, 0.0)],
    "dpc": [("half", 5, a) for a in (0.0, 0.5 * math.pi, math.pi, 1.5 * math.pi)],
}
PC_WHATS = ("forward", "value-grad")
PC_IMPLS = {"brightfield": ("calcil", "jax", "jax-full-exp"), "dpc": ("calcil", "jax")}
# Blocks per group and rounds per block at CALCIL_BENCH_ROUNDS=1. One calcil call on 2 CPU
# cores: brightfield (49 sources) ~0.2 s forward, ~0.6 s value+grad; dpc (36 sources) ~0.14 s
# and ~0.42 s; the hand-written sum takes about 0.6x that.
PC_BLOCKS = 6
PC_ROUNDS = {"forward": 3, "value-grad": 2}


def pc_patterns(case):
    """The ``(frequencies, weights)`` patterns of a case, as :func:`source_points` gives them."""
    return [
        cc.operators.source_points(kind, NA, WAVELENGTH, n, angle=angle)
        for kind, n, angle in PC_CASES[case]
    ]


def abbe_image(pupil, frequencies, weights, t, full_exp=False):
    """``sum_s w_s |ifft2(P fft2(t * plane_wave_s))|^2`` over the ``m`` sources of one pattern
    (``frequencies (m, 2)`` as ``(fy, fx)`` in cycles/µm, ``weights (m,)``), one ``lax.scan``
    step per source. The plane wave ``exp(2 pi i (fy y + fx x))`` at ``y_i = i DX``,
    ``x_j = j DX`` is separable: the 1D ramps ``exp(2 pi i fy y)`` and ``exp(2 pi i fx x)`` of
    every source are computed once, ``(m, ny)`` and ``(m, nx)``, and each step multiplies
    ``t`` by a column and a row. With ``full_exp`` each step evaluates the exponential over
    the whole grid instead."""
    ny, nx = t.shape
    y = jnp.arange(ny, dtype=jnp.float32) * DX
    x = jnp.arange(nx, dtype=jnp.float32) * DX
    fy, fx = frequencies[:, :1], frequencies[:, 1:]  # (m, 1) each

    if full_exp:

        def tilt(source):
            fy_s, fx_s = source
            return t * jnp.exp(2j * jnp.pi * (fy_s * y[:, None] + fx_s * x[None, :]))

        per_source = (fy[:, 0], fx[:, 0])
    else:

        def tilt(source):
            column, row = source
            return t * column[:, None] * row[None, :]

        per_source = (jnp.exp(2j * jnp.pi * fy * y), jnp.exp(2j * jnp.pi * fx * x))

    def add_source(image, source):
        *source, w = source
        field = jnp.fft.ifft2(pupil * jnp.fft.fft2(tilt(source)))
        return image + w * jnp.abs(field) ** 2, None

    image, _ = jax.lax.scan(add_source, jnp.zeros(t.shape, jnp.float32), (*per_source, weights))
    return image


def abbe_images(pupil, frequencies, weights, t, full_exp=False, stacked=True):
    """One :func:`abbe_image` per pattern (``frequencies (p, m, 2)``, ``weights (p, m)``),
    stacked to ``(p, ny, nx)``; with ``stacked=False`` (one pattern) the image alone."""
    images = [
        abbe_image(pupil, f, w, t, full_exp) for f, w in zip(frequencies, weights, strict=True)
    ]
    return jnp.stack(images) if stacked else images[0]


@jax.jit
def _calcil_forward(op, t):
    return op(t)


@jax.jit
def _calcil_value_grad(op, t, y):
    return jax.value_and_grad(lambda v: square_loss(op(v), y))(t)


@functools.cache
def _jax_functions(full_exp: bool, stacked: bool):
    """The hand-written forward and value+grad, jitted, for one variant."""
    forward = functools.partial(abbe_images, full_exp=full_exp, stacked=stacked)

    @jax.jit
    def value_grad(pupil, frequencies, weights, t, y):
        loss = lambda v: square_loss(forward(pupil, frequencies, weights, v), y)  # noqa: E731
        return jax.value_and_grad(loss)(t)

    return jax.jit(forward), value_grad


@functools.lru_cache(maxsize=1)  # one group at a time: frees the previous group's arrays
def build_partially_coherent(case: str, what: str):
    """``{impl: (fn, args, info)}`` for one group, checked to agree; every function has been
    compiled and called once."""
    patterns = pc_patterns(case)
    stacked = len(patterns) > 1
    op = cc.operators.PartiallyCoherent(
        (N, N), DX, WAVELENGTH, NA, patterns if stacked else patterns[0], zernike=ZERNIKE
    )
    pupil = pupil_by_hand(N, DX, WAVELENGTH, NA, ZERNIKE).astype(np.complex64)
    check_pupil(op.pupil.pupil_function, pupil)
    pupil = jnp.asarray(pupil)
    frequencies = jnp.asarray(np.stack([f for f, _ in patterns]), jnp.float32)
    weights = jnp.asarray(np.stack([w for _, w in patterns]), jnp.float32)
    hand = {
        impl: _jax_functions(impl == "jax-full-exp", stacked)
        for impl in PC_IMPLS[case]
        if impl != "calcil"
    }

    # The hand-written side images a clear sample to 1: every source is inside the pupil and
    # on the frequency grid, so each tilted field is a unit plane wave.
    clear = hand["jax"][0](pupil, frequencies, weights, jnp.ones((N, N), jnp.complex64))
    np.testing.assert_allclose(np.asarray(clear), 1.0, atol=1e-3)

    t = transmittance(N, 0)
    if what == "forward":
        sides = {"calcil": (_calcil_forward, (op, t))}
        sides |= {impl: (fns[0], (pupil, frequencies, weights, t)) for impl, fns in hand.items()}
        want = sides["jax"][0](*sides["jax"][1])
        for fn, args in sides.values():
            check_images(fn(*args), want)
    else:
        y = hand["jax"][0](pupil, frequencies, weights, transmittance(N, 1))
        sides = {"calcil": (_calcil_value_grad, (op, t, y))}
        sides |= {impl: (fns[1], (pupil, frequencies, weights, t, y)) for impl, fns in hand.items()}
        want = sides["jax"][0](*sides["jax"][1])
        for fn, args in sides.values():
            check_value_grad(fn(*args), want)
    info = {
        "n_sources": int(frequencies.shape[0] * frequencies.shape[1]),
        "n_patterns": len(patterns),
        "zernike": list(ZERNIKE),
    }
    return {
        impl: (fn, args, {**info, **memory_info(fn, args)}) for impl, (fn, args) in sides.items()
    }


def _pc_blocks():
    for case in PC_CASES:
        for what in PC_WHATS:
            for block, impl in block_orders(PC_IMPLS[case], PC_BLOCKS):
                yield case, what, block, impl


@pytest.mark.parametrize(("case", "what", "block", "impl"), list(_pc_blocks()))
def test_partially_coherent(benchmark, case, what, block, impl):
    fn, args, info = build_partially_coherent(case, what)[impl]
    describe(
        benchmark,
        group=f"partially-coherent-{case}-{what}-{N}",
        impl=impl,
        size=N,
        block=block,
        device=device_kind(),
        **info,
    )
    time_block(benchmark, fn, args, scaled_rounds(PC_ROUNDS[what], minimum=1))

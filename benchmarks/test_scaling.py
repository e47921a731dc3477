"""Scaling study: how the cost of calcil's core computations grows with the problem size.

Every family below is timed at several sizes; ``python benchmarks/report.py --scaling
results.json`` fits the exponent ``p`` in ``time ∝ elements^p`` per family and impl. Groups
are ``<family>-<n>`` with ``n`` the edge length, and every row records ``extra_info`` ``size``
(``n``), ``ndim``, ``elements`` (``n**ndim``), ``device`` and the compiled program's memory
(``peak_bytes`` and its parts, from ``memory_analysis()``; on a GPU also the device's
``peak_bytes_in_use``). float32 throughout.

2D, ``n`` = 256, 512, 1024, 2048, 4096:

- ``scaling-convolve2d-fwdadj-<n>``: forward then adjoint of a circular convolution with the
  15x15 Gaussian PSF (σ = 2 px). ``impl="calcil"`` jits ``lambda op, x: op.H(op(x))`` with
  ``op = Convolve(psf, (n, n), mode="circular")`` passed as a pytree argument;
  ``impl="jax"`` jits ``irfft2(conj(K) * rfft2(irfft2(K * rfft2(x))))`` with ``K``
  precomputed by hand and passed as an argument; ``impl="fft-pair"`` jits
  ``irfft2(rfft2(irfft2(rfft2(x))))``: the 4 real FFTs that forward+adjoint needs, without the
  multiplies. The GPU target: calcil at 4096² within 1.3x of the bare FFT pair timed
  in the same run (``report.py --candidate calcil --baseline fft-pair``, or ``--scaling``,
  which shows the ratio).
- ``scaling-tv2d-value-grad-<n>``: ``jax.value_and_grad(TV(eps=1e-3))`` (isotropic, Neumann
  forward differences) against the same written by hand: ``jnp.pad`` of the differences, the
  per-axis squares summed elementwise (``dy*dy + dx*dx``; ``jnp.sum(..., axis=0)`` over the
  stacked axis compiles into a slow library fusion on XLA:CPU, see ``test_priors.py``).

3D, ``n`` = 64, 128, 256:

- ``scaling-convolve3d-fwdadj-<n>``: the same three impls as in 2D with a 7x7x7 Gaussian
  kernel (σ = 1.5 voxels), ``Convolve(kernel, (n, n, n), mode="circular")`` against
  ``irfftn(conj(K) * rfftn(irfftn(K * rfftn(x))))`` and the bare ``irfftn(rfftn(.))`` pair.
- ``scaling-finitediff3d-fwdadj-<n>``: ``D.H(D(x))`` with ``D = FiniteDifference((n, n, n),
  boundary="neumann")`` against the hand-written forward differences (stacked, last
  difference zero) and their adjoint, the negative backward-difference divergence.

Before timing, each group checks that its calcil result agrees with the hand-written one
(``assert_allclose``, float32 tolerances), the FFT pair that it returns ``x``, and at the
smallest size that the hand-written side is what it claims (``scipy.ndimage`` wrap-mode
convolution/correlation, NumPy float64 TV and finite differences).

The impls of a group are timed in alternating blocks (for three impls, one block per order
of the three) which ``report.py`` pools, so that load from other processes on a shared
machine lands on every side alike. ``CALCIL_BENCH_ROUNDS`` scales the rounds per block (at
least 3). The whole file takes about 3 minutes on 2 CPU cores.
"""

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage
from conftest import device_kind, device_memory_info, memory_info, scaled_rounds

import calcil as cc
from calcil.benchmarking.standard import circular_spectrum

SIZES_2D = (256, 512, 1024, 2048, 4096)
SIZES_3D = (64, 128, 256)
EPS = 1e-3  # TV smoothing

# Blocks per group: one per order of the impls (all 6 orders for three impls; calcil, jax,
# jax, calcil for a pair), repeated CYCLES times. Rounds per block at CALCIL_BENCH_ROUNDS=1,
# by edge length. One call on 2 CPU cores takes about: convolve2d fwd+adj 0.7 ms (256²) ...
# 200-400 ms (4096²); TV 0.3 ms ... 120-300 ms; convolve3d 2 ms (64³), 17-40 ms (128³),
# 220-420 ms (256³); finite differences 0.1 ms, 0.6-1.2 ms, 20-40 ms. Under load a large call
# takes one of two times (e.g. 200 or 350 ms at 4096², the same for every impl), so the
# large sizes get twice the blocks: short blocks spread the two modes over all impls.
ROUNDS_2D = {256: 30, 512: 15, 1024: 8, 2048: 4, 4096: 3}
ROUNDS_3D = {64: 20, 128: 8, 256: 3}
ROUNDS_FD3D = {64: 100, 128: 40, 256: 6}
CYCLES = {"2d": {2048: 2, 4096: 2}, "3d": {128: 2, 256: 2}}  # default 1

FFT_IMPLS = ("calcil", "jax", "fft-pair")
PAIR_IMPLS = ("calcil", "jax")


def _blocks(sizes, impls, cycles):
    """``(n, block, impl)`` in run order: for each size, ``cycles[n]`` (default 1) times
    through the orders of ``impls`` (all 6 orders of three impls; both orders of a pair,
    twice: calcil, jax, jax, calcil, calcil, jax, jax, calcil)."""
    orders = list(itertools.permutations(impls))
    if len(orders) == 2:
        orders = orders * 2
    for n in sizes:
        for b in range(cycles.get(n, 1) * len(orders)):
            for impl in orders[b % len(orders)]:
                yield n, b, impl


def _check(ours, theirs, rtol=1e-4, atol_scale=1e-5):
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
    atol = atol_scale * float(np.abs(theirs).max())
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=atol)


def _with_memory(sides: dict) -> dict:
    return {impl: (fn, args, memory_info(fn, args)) for impl, (fn, args) in sides.items()}


# ---------------------------------------------------------------------- calcil side
@jax.jit
def _calcil_fwd_adj(op, x):
    return op.H(op(x))


@jax.jit
def _calcil_value_grad(prior, x):
    return jax.value_and_grad(prior)(x)


# ---------------------------------------------------------------------- hand-written side


@jax.jit
def _jax_convolve_fwd_adj(K, x):
    y = jnp.fft.irfftn(K * jnp.fft.rfftn(x), s=x.shape)
    return jnp.fft.irfftn(jnp.conj(K) * jnp.fft.rfftn(y), s=x.shape)


@jax.jit
def _fft_pair(x):
    y = jnp.fft.irfftn(jnp.fft.rfftn(x), s=x.shape)
    return jnp.fft.irfftn(jnp.fft.rfftn(y), s=x.shape)


def _diff_neumann(x, axis):
    """``x[i + 1] - x[i]`` along ``axis``, the last difference 0."""
    n = x.shape[axis]
    d = jax.lax.slice_in_dim(x, 1, n, axis=axis) - jax.lax.slice_in_dim(x, 0, n - 1, axis=axis)
    widths = [(0, 0)] * x.ndim
    widths[axis] = (0, 1)
    return jnp.pad(d, widths)


def _tv_by_hand(x):
    dy, dx = _diff_neumann(x, 0), _diff_neumann(x, 1)
    return jnp.sum(jnp.sqrt(dy * dy + dx * dx + EPS**2))


_jax_tv_value_grad = jax.jit(jax.value_and_grad(_tv_by_hand))


@jax.jit
def _jax_fd_fwd_adj(x):
    d = jnp.stack([_diff_neumann(x, a) for a in range(x.ndim)])
    out = jnp.zeros_like(x)
    for a in range(x.ndim):  # -div: out[i] = d[i - 1] - d[i], with d[-1] = 0 and d[n - 1] = 0
        z = jax.lax.slice_in_dim(d[a], 0, x.shape[a] - 1, axis=a)
        lo, hi = [(0, 0)] * x.ndim, [(0, 0)] * x.ndim
        lo[a], hi[a] = (1, 0), (0, 1)
        out = out + jnp.pad(z, lo) - jnp.pad(z, hi)
    return out


# ---------------------------------------------------------------------- NumPy references
def _wrap_fwd_adj_reference(x, kernel):
    """``A^T A x`` in float64: ``scipy.ndimage`` wrap-mode convolution, then correlation."""
    x, k = np.asarray(x, np.float64), np.asarray(kernel, np.float64)
    return scipy.ndimage.correlate(scipy.ndimage.convolve(x, k, mode="wrap"), k, mode="wrap")


def _tv_reference(x):
    x = np.asarray(x, np.float64)
    dy = np.diff(x, axis=0, append=x[-1:])
    dx = np.diff(x, axis=1, append=x[:, -1:])
    return np.sum(np.sqrt(dy**2 + dx**2 + EPS**2))


def _fd_fwd_adj_reference(x):
    """``D^T D x`` for Neumann forward differences: minus the Neumann Laplacian (float64)."""
    x = np.asarray(x, np.float64)
    out = np.zeros_like(x)
    for a in range(x.ndim):
        d = np.diff(x, axis=a)  # the n - 1 nonzero differences
        zero = np.zeros_like(np.take(x, [0], axis=a))
        out += np.concatenate([zero, d], axis=a) - np.concatenate([d, zero], axis=a)
    return out


def _gaussian_3d(size: int = 7, sigma: float = 1.5) -> jax.Array:
    r = np.arange(size) - size // 2
    r2 = r[:, None, None] ** 2 + r[None, :, None] ** 2 + r[None, None, :] ** 2
    g = np.exp(-r2 / (2 * sigma**2))
    return jnp.asarray(g / g.sum(), dtype=jnp.float32)


def _volume(n: int, seed: int = 0) -> jax.Array:
    return jax.random.normal(jax.random.key(seed), (n, n, n), jnp.float32)


# ---------------------------------------------------------------------- builders
@functools.lru_cache(maxsize=1)  # one group at a time: frees the previous group's arrays
def build_convolve(ndim: int, n: int, inputs):
    """``{impl: (fn, args, memory)}`` for forward+adjoint at ``n**ndim``, checked to agree."""
    if ndim == 2:
        kernel, x = inputs.psf, inputs.real_image(n)
    else:
        kernel, x = _gaussian_3d(), _volume(n)
    shape = (n,) * ndim
    op = cc.operators.Convolve(kernel, shape, mode="circular")
    K = circular_spectrum(kernel, shape)
    sides = {
        "calcil": (_calcil_fwd_adj, (op, x)),
        "jax": (_jax_convolve_fwd_adj, (K, x)),
        "fft-pair": (_fft_pair, (x,)),
    }
    ours, theirs, pair = (fn(*args) for fn, args in sides.values())
    _check(ours, theirs)
    _check(pair, x, atol_scale=1e-5)
    if n == min(SIZES_2D if ndim == 2 else SIZES_3D):
        _check(np.asarray(theirs, np.float64), _wrap_fwd_adj_reference(x, kernel))
    return _with_memory(sides)


@functools.lru_cache(maxsize=1)
def build_tv(n: int, inputs):
    x = inputs.real_image(n)
    prior = cc.priors.TV(eps=EPS)
    sides = {"calcil": (_calcil_value_grad, (prior, x)), "jax": (_jax_tv_value_grad, (x,))}
    (value, grad), (want_value, want_grad) = (fn(*args) for fn, args in sides.values())
    assert value.dtype == want_value.dtype == jnp.float32
    np.testing.assert_allclose(float(value), float(want_value), rtol=1e-5)
    _check(grad, want_grad)
    if n == SIZES_2D[0]:
        np.testing.assert_allclose(float(want_value), _tv_reference(x), rtol=1e-4)
    return _with_memory(sides)


@functools.lru_cache(maxsize=1)
def build_finite_difference(n: int):
    x = _volume(n)
    D = cc.operators.FiniteDifference((n, n, n), boundary="neumann")
    sides = {"calcil": (_calcil_fwd_adj, (D, x)), "jax": (_jax_fd_fwd_adj, (x,))}
    ours, theirs = (fn(*args) for fn, args in sides.values())
    _check(ours, theirs)
    if n == SIZES_3D[0]:
        _check(np.asarray(theirs, np.float64), _fd_fwd_adj_reference(x))
    return _with_memory(sides)


# ---------------------------------------------------------------------- benchmarks
# (group prefix, ndim, rounds per block by edge length) of each family
CONVOLVE_2D = ("scaling-convolve2d-fwdadj", 2, ROUNDS_2D)
TV_2D = ("scaling-tv2d-value-grad", 2, ROUNDS_2D)
CONVOLVE_3D = ("scaling-convolve3d-fwdadj", 3, ROUNDS_3D)
FINITE_DIFFERENCE_3D = ("scaling-finitediff3d-fwdadj", 3, ROUNDS_FD3D)


def _run(benchmark, run_jitted, built, family, n, rep, impl):
    name, ndim, rounds = family
    fn, args, memory = built[impl]
    run_jitted(
        fn,
        args,
        group=f"{name}-{n}",
        impl=impl,
        size=n,
        rounds=scaled_rounds(rounds[n]),
        rep=rep,
        ndim=ndim,
        elements=n**ndim,
        device=device_kind(),
        **memory,
    )
    benchmark.extra_info.update(device_memory_info())


@pytest.mark.parametrize(("n", "rep", "impl"), list(_blocks(SIZES_2D, FFT_IMPLS, CYCLES["2d"])))
def test_convolve2d(benchmark, run_jitted, inputs, n, rep, impl):
    _run(benchmark, run_jitted, build_convolve(2, n, inputs), CONVOLVE_2D, n, rep, impl)


@pytest.mark.parametrize(("n", "rep", "impl"), list(_blocks(SIZES_2D, PAIR_IMPLS, CYCLES["2d"])))
def test_tv2d(benchmark, run_jitted, inputs, n, rep, impl):
    _run(benchmark, run_jitted, build_tv(n, inputs), TV_2D, n, rep, impl)


@pytest.mark.parametrize(("n", "rep", "impl"), list(_blocks(SIZES_3D, FFT_IMPLS, CYCLES["3d"])))
def test_convolve3d(benchmark, run_jitted, inputs, n, rep, impl):
    _run(benchmark, run_jitted, build_convolve(3, n, inputs), CONVOLVE_3D, n, rep, impl)


@pytest.mark.parametrize(("n", "rep", "impl"), list(_blocks(SIZES_3D, PAIR_IMPLS, CYCLES["3d"])))
def test_finitediff3d(benchmark, run_jitted, n, rep, impl):
    _run(benchmark, run_jitted, build_finite_difference(n), FINITE_DIFFERENCE_3D, n, rep, impl)

"""Operator benchmarks: calcil operators against the hand-written ``jax.numpy`` equivalent.

For each computation (group ``<case>-<direction>-<size>``) two implementations are timed:
``impl="calcil"`` jits ``lambda op, x: op(x)`` (or ``op.H(x)``) with the operator passed as a
pytree argument, and ``impl="jax"`` jits the same maths written directly with ``jnp.fft``,
its kernel spectrum precomputed by hand and passed as an argument too. Before timing, both
outputs are checked to agree (``assert_allclose``), so the two sides compute the same thing.
The two are timed in ``REPS`` alternating blocks (calcil, jax, jax, calcil, ...), which
``report.py`` pools per group, so that a burst of load on a shared machine cannot land on
one side only.

Cases (15x15 Gaussian PSF, float32 images; complex64 for the FFT):

- ``convolve-circular``: ``Convolve(psf, (n, n), mode="circular")``;
  jax: ``irfft2(K * rfft2(x), s=(n, n))``, adjoint with ``conj(K)``.
- ``convolve-same``: ``Convolve(psf, (n, n), mode="same")`` (``scipy.signal.fftconvolve``);
  jax: zero-pad to a fast size ``L >= n + 14``, ``rfft2``, multiply, ``irfft2``, slice.
- ``fft``: ``FFT((n, n), norm="ortho")``; jax: ``fft2``/``ifft2(norm="ortho")``.
- ``crop-convolve-pad``: ``Crop @ Convolve(circular) @ Pad`` padding ``n // 4`` on each side
  and cropping back to ``n x n``; jax: ``jnp.pad``, circular convolution, slice.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.fft
import scipy.signal

import calcil as cc
from calcil.benchmarking.standard import circular_spectrum

CASES = ("convolve-circular", "convolve-same", "fft", "crop-convolve-pad")
DIRECTIONS = ("forward", "adjoint")
IMPLS = ("calcil", "jax")
# Each pair is measured in REPS alternating blocks (calcil, jax, jax, calcil, ...) so that
# load from other processes on a shared machine hits both sides alike; report.py pools the
# blocks of a group. Each block gets 1/REPS of the rounds.
REPS = 10
BLOCKS = [(r, impl) for r in range(REPS) for impl in (IMPLS if r % 2 == 0 else IMPLS[::-1])]


# ---------------------------------------------------------------------- calcil side
@jax.jit
def _calcil_forward(op, x):
    return op(x)


@jax.jit
def _calcil_adjoint(op, y):
    return op.H(y)


# ---------------------------------------------------------------------- hand-written side


@jax.jit
def _circular_forward(K, x):
    return jnp.fft.irfft2(K * jnp.fft.rfft2(x), s=x.shape)


@jax.jit
def _circular_adjoint(K, y):
    return jnp.fft.irfft2(jnp.conj(K) * jnp.fft.rfft2(y), s=y.shape)


@functools.partial(jax.jit, static_argnames=("start",))
def _same_forward(K, x, start):
    # K is the rfft2 of the PSF on the fast grid (L0, L1) >= (n + k - 1).
    (n0, n1), L0 = x.shape, K.shape[0]
    L1 = 2 * (K.shape[1] - 1)
    full = jnp.fft.irfft2(K * jnp.fft.rfft2(jnp.pad(x, ((0, L0 - n0), (0, L1 - n1)))), s=(L0, L1))
    return full[start[0] : start[0] + n0, start[1] : start[1] + n1]


@functools.partial(jax.jit, static_argnames=("start",))
def _same_adjoint(K, y, start):
    (n0, n1), L0 = y.shape, K.shape[0]
    L1 = 2 * (K.shape[1] - 1)
    padded = jnp.pad(y, ((start[0], L0 - start[0] - n0), (start[1], L1 - start[1] - n1)))
    return jnp.fft.irfft2(jnp.conj(K) * jnp.fft.rfft2(padded), s=(L0, L1))[:n0, :n1]


@jax.jit
def _fft_forward(x):
    return jnp.fft.fft2(x, norm="ortho")


@jax.jit
def _fft_adjoint(y):
    return jnp.fft.ifft2(y, norm="ortho")


@functools.partial(jax.jit, static_argnames=("p",))
def _chain_forward(K, x, p):
    n0, n1 = x.shape
    xp = jnp.pad(x, p)
    y = jnp.fft.irfft2(K * jnp.fft.rfft2(xp), s=xp.shape)
    return y[p : p + n0, p : p + n1]


@functools.partial(jax.jit, static_argnames=("p",))
def _chain_adjoint(K, y, p):
    n0, n1 = y.shape
    yp = jnp.pad(y, p)
    x = jnp.fft.irfft2(jnp.conj(K) * jnp.fft.rfft2(yp), s=yp.shape)
    return x[p : p + n0, p : p + n1]


# ---------------------------------------------------------------------- cases
@functools.lru_cache(maxsize=1)  # one group at a time: frees the previous pair's arrays
def build(case: str, size: int, direction: str, inputs):
    """``{"calcil": (fn, args), "jax": (fn, args)}`` for one group, checked to agree."""
    n, psf = size, inputs.psf
    real_image, complex_image = inputs.real_image, inputs.complex_image
    if case == "convolve-circular":
        op = cc.operators.Convolve(psf, (n, n), mode="circular")
        K = circular_spectrum(psf, (n, n))
        x = real_image(n)
        fn = _circular_forward if direction == "forward" else _circular_adjoint
        jax_side = (fn, (K, x))
    elif case == "convolve-same":
        op = cc.operators.Convolve(psf, (n, n), mode="same")
        L = tuple(scipy.fft.next_fast_len(n + k - 1, real=True) for k in psf.shape)
        K = jnp.fft.rfft2(psf, s=L)
        start = tuple((k - 1) // 2 for k in psf.shape)
        x = real_image(n)
        fn = _same_forward if direction == "forward" else _same_adjoint
        jax_side = (functools.partial(fn, start=start), (K, x))
    elif case == "fft":
        op = cc.operators.FFT((n, n), norm="ortho")
        x = complex_image(n)
        jax_side = (_fft_forward if direction == "forward" else _fft_adjoint, (x,))
    elif case == "crop-convolve-pad":
        p, m = n // 4, n + 2 * (n // 4)
        op = (
            cc.operators.Crop((m, m), (n, n))
            @ cc.operators.Convolve(psf, (m, m), mode="circular")
            @ cc.operators.Pad((n, n), p)
        )
        K = circular_spectrum(psf, (m, m))
        x = real_image(n)
        fn = _chain_forward if direction == "forward" else _chain_adjoint
        jax_side = (functools.partial(fn, p=p), (K, x))
    else:
        raise ValueError(case)
    calcil_side = (_calcil_forward if direction == "forward" else _calcil_adjoint, (op, x))

    # Honest comparison: both sides compute the same array.
    ours, theirs = (np.asarray(fn(*args)) for fn, args in (calcil_side, jax_side))
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
    scale = float(np.abs(theirs).max())
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5 * scale)
    if case == "convolve-same" and direction == "forward":
        # ... and the hand-written side is what it claims to be.
        ref = scipy.signal.fftconvolve(np.asarray(x), np.asarray(psf), mode="same")
        np.testing.assert_allclose(theirs, ref, rtol=1e-4, atol=1e-5 * scale)
    return {"calcil": calcil_side, "jax": jax_side}


@pytest.mark.parametrize(("rep", "impl"), BLOCKS)
@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("size", (512, 2048))
def test_operator(run_jitted, inputs, size, case, direction, rep, impl):
    fn, args = build(case, size, direction, inputs)[impl]
    group = f"{case}-{direction}-{size}"
    run_jitted(fn, args, group=group, impl=impl, size=size, share=1 / REPS, rep=rep)

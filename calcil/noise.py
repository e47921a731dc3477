"""Measurement noise simulators in JAX: shot (Poisson), read (Gaussian) and both.

For a noiseless measurement ``x`` (an intensity in any units) and a ``jax.random`` key:

* ``poisson(key, x, photons)  = Poisson(photons * x) / photons``: photon counting, returned
  in the units of ``x``. ``photons`` is the expected count where ``x = 1``, so the mean is
  ``x``, the variance ``x / photons`` and the relative noise ``1 / sqrt(photons x)``;
* ``gaussian(key, x, sigma)   = x + sigma n`` with ``n ~ N(0, 1)`` (for complex ``x``,
  circular complex noise: real and imaginary parts each of variance ``sigma^2 / 2``);
* ``poisson_gaussian(key, x, photons, sigma) = Poisson(photons x) / photons + sigma n``:
  mean ``x``, variance ``x / photons + sigma^2`` (a camera's shot and read noise, with
  ``sigma`` in the units of ``x``).

All are traceable (``jax.jit``, ``jax.vmap`` over keys or photon levels) and return ``x``'s
floating dtype (float32 for integer ``x``). The same key gives the same sample. Arguments are
checked when they are concrete: ``x >= 0`` for Poisson noise, ``photons > 0``, ``sigma >= 0``.
Traced values cannot be checked inside ``jax.jit``: there a negative ``photons * x`` gives
the count -1 (so ``-1 / photons``), as ``jax.random.poisson`` does.
"""

import jax
import jax.numpy as jnp
import numpy as np

from calcil._internal.dtypes import inexact_or_default, is_complex
from calcil._internal.random import device_normal

__all__ = ["gaussian", "poisson", "poisson_gaussian"]


# ------------------------------------------------------------------------------- checks
def _key(key, func):
    """One typed key (a raw ``PRNGKey`` is wrapped: the same samples, one compiled program)."""
    typed = isinstance(key, jax.Array) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
    legacy = isinstance(key, jax.Array) and key.dtype == jnp.uint32 and key.shape == (2,)
    if not (typed and key.shape == ()) and not legacy:
        raise ValueError(
            f"{func} expects key as one jax.random key (e.g. jax.random.key(0)), got {key!r}; "
            "for several samples split it or use jax.vmap over jax.random.split(key, n)"
        )
    return key if typed else jax.random.wrap_key_data(key)


def _signal(x, func, intensity):
    """``x`` as a JAX array of a floating (or, unless ``intensity``, complex) dtype."""
    try:
        x = jnp.asarray(x)
    except TypeError:
        raise ValueError(f"{func} expects x as an array of numbers, got {x!r}") from None
    if not jnp.issubdtype(x.dtype, jnp.number) and x.dtype != jnp.bool_:
        raise ValueError(f"{func} expects x as an array of numbers, got dtype {x.dtype}")
    x = x.astype(inexact_or_default(x.dtype))
    if intensity:
        if is_complex(x.dtype):
            raise ValueError(
                f"{func} expects a real, non-negative intensity x, got {x.dtype}: Poisson noise "
                "counts photons, so pass jnp.abs(field) ** 2 for a complex field"
            )
        if not isinstance(x, jax.core.Tracer) and bool(jnp.any(x < 0)):
            raise ValueError(
                f"{func} expects x >= 0 (an expected intensity), got min(x) = "
                f"{float(jnp.min(x)):g}: clip it (jnp.maximum(x, 0)) or add a background"
            )
    return x


def _parameter(value, x, func, name, positive):
    """``value`` broadcast to ``x``'s shape in its real dtype; checked when concrete (``> 0``
    when ``positive``, else ``>= 0``)."""
    expected = "> 0" if positive else ">= 0"
    xp = jnp if isinstance(value, jax.Array) else np  # check numbers on the host: no compile
    try:
        v = xp.asarray(value)
    except (TypeError, ValueError):
        v = None
    if v is None or not xp.issubdtype(v.dtype, xp.number) or xp.iscomplexobj(v):
        raise ValueError(f"{func} expects {name} as a real number {expected}, got {value!r}")
    try:
        fits = np.broadcast_shapes(v.shape, x.shape) == x.shape
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(
            f"{func} expects {name} as a scalar or an array broadcastable to x {x.shape}, got "
            f"shape {v.shape}"
        )
    if not isinstance(v, jax.core.Tracer) and not bool(xp.all(v > 0 if positive else v >= 0)):
        raise ValueError(
            f"{func} expects {name} {expected}"
            + (" (the expected count where x = 1)" if name == "photons" else "")
            + f", got {value!r}"
        )
    return jnp.broadcast_to(jnp.asarray(v, jnp.finfo(x.dtype).dtype), x.shape)


# One compiled program per shape and dtype, also for eager calls (jax.random.poisson's is
# large); inside a user's jit they are inlined.
@jax.jit
def _shot(key, x, photons):
    return jax.random.poisson(key, photons * x, x.shape).astype(x.dtype) / photons


@jax.jit
def _read(key, x, sigma):
    return x + sigma * device_normal(key, x.shape, x.dtype)


# ------------------------------------------------------------------------- simulators
def poisson(key, x, photons) -> jax.Array:
    """Shot noise: ``Poisson(photons * x) / photons``, in the units of ``x``.

    ``photons`` is the expected photon count at ``x = 1`` (e.g. the peak count when ``x`` is
    normalised to a maximum of 1). Each element is an independent Poisson count divided by
    ``photons``, so its mean is ``x``, its variance ``x / photons`` and its signal-to-noise
    ratio ``sqrt(photons x)``; the values are multiples of ``1 / photons``. Multiply by
    ``photons`` for the integer counts. ``jax.random.poisson`` draws them (exact for any rate).

    Args:
        key: a ``jax.random`` key.
        x: the noiseless intensity, real and ``>= 0`` (checked when concrete).
        photons: expected count at ``x = 1``, ``> 0``; a scalar or an array broadcastable to
            ``x`` (e.g. a per-pixel exposure).

    Returns:
        An array of ``x``'s shape and floating dtype.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from calcil import noise
        >>> x = jnp.full((100_000,), 0.5)
        >>> y = noise.poisson(jax.random.key(0), x, photons=100.0)
        >>> round(float(y.mean()), 2), round(float(y.var()), 4)    # x and x / photons
        (0.5, 0.005)
        >>> float(jnp.abs(y * 100 - jnp.round(y * 100)).max()) < 1e-4   # whole counts
        True
    """
    key = _key(key, "poisson")
    x = _signal(x, "poisson", intensity=True)
    photons = _parameter(photons, x, "poisson", "photons", positive=True)
    return _shot(key, x, photons)


def gaussian(key, x, sigma) -> jax.Array:
    """Additive white Gaussian noise: ``x + sigma * n`` with ``n ~ N(0, 1)`` per element.

    For complex ``x`` the noise is circular complex Gaussian of total variance ``sigma^2``:
    real and imaginary parts independent, each of variance ``sigma^2 / 2``. ``x`` may be
    negative.

    Args:
        key: a ``jax.random`` key.
        x: the noiseless signal, real or complex.
        sigma: standard deviation, ``>= 0``; a scalar or an array broadcastable to ``x``.

    Returns:
        An array of ``x``'s shape and floating (or complex) dtype.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from calcil import noise
        >>> y = noise.gaussian(jax.random.key(0), jnp.zeros(100_000), sigma=0.1)
        >>> round(float(y.std()), 2)
        0.1
        >>> z = noise.gaussian(jax.random.key(1), jnp.zeros(100_000, jnp.complex64), sigma=0.1)
        >>> round(float(jnp.mean(jnp.abs(z) ** 2)), 3), round(float(z.real.var()), 3)
        (0.01, 0.005)
    """
    key = _key(key, "gaussian")
    x = _signal(x, "gaussian", intensity=False)
    sigma = _parameter(sigma, x, "gaussian", "sigma", positive=False)
    return _read(key, x, sigma)


def poisson_gaussian(key, x, photons, sigma) -> jax.Array:
    """Shot and read noise: ``Poisson(photons * x) / photons + sigma * n``, ``n ~ N(0, 1)``.

    The mean is ``x`` and the variance ``x / photons + sigma^2``, both in the units of ``x``
    (``sigma`` is the read noise in those units: a camera's read noise of ``e`` electrons is
    ``sigma = e / photons``). The key is split into one for the counts and one for the read
    noise; ``sigma = 0`` gives :func:`poisson`'s distribution.

    Args:
        key: a ``jax.random`` key.
        x: the noiseless intensity, real and ``>= 0`` (checked when concrete).
        photons: expected count at ``x = 1``, ``> 0``; scalar or broadcastable to ``x``.
        sigma: standard deviation of the Gaussian part, ``>= 0``; scalar or broadcastable.

    Returns:
        An array of ``x``'s shape and floating dtype (values may be negative).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from calcil import noise
        >>> x = jnp.full((100_000,), 0.5)
        >>> y = noise.poisson_gaussian(jax.random.key(0), x, photons=100.0, sigma=0.1)
        >>> round(float(y.mean()), 2), round(float(y.var()), 3)    # 0.5 / 100 + 0.1 ** 2
        (0.5, 0.015)
    """
    key = _key(key, "poisson_gaussian")
    x = _signal(x, "poisson_gaussian", intensity=True)
    photons = _parameter(photons, x, "poisson_gaussian", "photons", positive=True)
    sigma = _parameter(sigma, x, "poisson_gaussian", "sigma", positive=False)
    k_shot, k_read = jax.random.split(key)
    return _read(k_read, _shot(k_shot, x, photons), sigma)

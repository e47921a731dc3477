"""Standard normal samples of any dtype, complex ones with unit variance over both parts.

``host_normal`` draws with NumPy (a direction drawn once per run: no compilation);
``device_normal`` draws with ``jax.random`` (traceable, for keys passed by users). Integer
dtypes get small integers in ``[-3, 3]``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np


def host_normal(rng: np.random.Generator, shape, dtype) -> jax.Array:
    """Samples drawn by ``rng`` on the host, as a JAX array of ``dtype``."""
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.complexfloating):
        x = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) / math.sqrt(2)
    elif np.issubdtype(dtype, np.floating):
        x = rng.standard_normal(shape)
    else:
        x = rng.integers(-3, 4, shape)
    return jnp.asarray(x.astype(dtype))


def device_normal(key, shape, dtype) -> jax.Array:
    """Samples drawn from the ``jax.random`` key ``key``."""
    if jnp.issubdtype(dtype, jnp.complexfloating):
        kr, ki = jax.random.split(key)
        part = jnp.finfo(dtype).dtype
        re, im = jax.random.normal(kr, shape, part), jax.random.normal(ki, shape, part)
        return ((re + 1j * im) / math.sqrt(2)).astype(dtype)
    if jnp.issubdtype(dtype, jnp.floating):
        return jax.random.normal(key, shape, dtype)
    return jax.random.randint(key, shape, -3, 4).astype(dtype)

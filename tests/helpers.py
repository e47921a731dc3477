"""Small helpers shared by the test modules."""

import jax
import numpy as np


def x64(dtype):
    """``jax.enable_x64`` on exactly when ``dtype`` is a 64-bit (float64/complex128) dtype."""
    return jax.enable_x64(np.finfo(dtype).dtype == np.float64)


def randn(rng, shape, dtype):
    """Standard normal samples of ``dtype`` (complex: independent real and imaginary parts)."""
    x = rng.standard_normal(shape)
    if np.issubdtype(dtype, np.complexfloating):
        x = x + 1j * rng.standard_normal(shape)
    return x.astype(dtype)


def assert_close(got, want, rtol):
    """Equal shapes and values within ``rtol`` (absolute floor: ``rtol`` times the max)."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * np.abs(want).max())

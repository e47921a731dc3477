"""Noise simulators: sample means and variances of many draws against the analytic moments
(tolerances of 5 standard errors from the sample size), lattice of Poisson counts,
reproducibility from the key, jax.jit and jax.vmap, float64, and the argument checks."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import calcil.noise as noise

KEY = jax.random.key(0)
N = 100_000  # samples per level: 5 standard errors of the variance are 2.2% of it


def moments(y):
    """Sample mean and variance per column (float64 on the host)."""
    y = np.asarray(y, np.float64)
    return y.mean(axis=0), y.var(axis=0, ddof=1)


def check_moments(y, mean, var, excess_kurtosis):
    """Mean within 5 standard errors ``sqrt(var / n)``; variance within 5 standard errors
    ``var sqrt((2 + kappa) / n)`` with the excess kurtosis ``kappa`` of the distribution."""
    n = y.shape[0]
    m, v = moments(y)
    np.testing.assert_array_less(np.abs(m - mean), 5 * np.sqrt(var / n) + 1e-12)
    np.testing.assert_array_less(np.abs(v - var), 5 * var * np.sqrt((2 + excess_kurtosis) / n))


# ------------------------------------------------------------------------------ Poisson
# The Poisson sampler compiles slowly: the float32 tests share one shape, (N, 4).
def test_poisson_moments_and_counts():
    photons = 50.0
    x = jnp.array([0.0, 0.02, 0.3, 4.0])  # expected counts 0, 1, 15, 200
    y = noise.poisson(KEY, jnp.broadcast_to(x, (N, 4)), photons)
    assert y.shape == (N, 4) and y.dtype == jnp.float32
    lam = np.asarray(x, np.float64) * photons
    # Poisson(lam) / p: mean x, variance x / p, excess kurtosis 1 / lam
    check_moments(y[:, 1:], x[1:], x[1:] / photons, 1 / lam[1:])
    assert np.all(np.asarray(y[:, 0]) == 0)  # x = 0 gives no photons
    counts = np.asarray(y, np.float64) * photons
    np.testing.assert_allclose(counts, np.round(counts), atol=1e-3)  # whole counts / photons
    assert counts.min() >= 0
    # the distribution, not just its moments: P(k = 0) = exp(-1) at lam = 1
    assert abs(np.mean(counts[:, 1] == 0) - math.exp(-1)) < 5 * math.sqrt(0.25 / N)


def test_poisson_per_pixel_photons_relative_noise_falls_as_one_over_sqrt_photons():
    x = jnp.full((N, 4), 0.5)
    photons = jnp.array([10.0, 100.0, 1000.0, 10000.0])  # per column, broadcast over rows
    y = noise.poisson(KEY, x, photons)
    p = np.asarray(photons, np.float64)
    check_moments(y, 0.5, 0.5 / p, 1 / (0.5 * p))
    m, v = moments(y)
    np.testing.assert_allclose(np.sqrt(v) / m * np.sqrt(p), np.sqrt(2), rtol=0.02)


# ----------------------------------------------------------------------------- Gaussian
def test_gaussian_moments_real_complex_and_float64():
    x = jnp.broadcast_to(jnp.array([-1.0, 0.0, 2.5, 0.0]), (N, 4))
    y = noise.gaussian(KEY, x, 0.3)
    assert y.dtype == jnp.float32
    check_moments(y, x[0], 0.09, 0.0)
    z = noise.gaussian(KEY, jnp.full((N,), 1 + 2j, jnp.complex64), 0.3)
    assert z.dtype == jnp.complex64
    z = np.asarray(z, np.complex128)
    # circular: real and imaginary parts independent, each of variance sigma^2 / 2
    check_moments(np.stack([z.real, z.imag], 1), np.array([1.0, 2.0]), 0.045, 0.0)
    err = z - (1 + 2j)
    assert abs(np.mean(err.real * err.imag)) < 5 * 0.045 / math.sqrt(N)
    assert abs(np.mean(np.abs(err) ** 2) - 0.09) < 5 * 0.09 * math.sqrt(1 / N)  # total sigma^2
    assert np.array_equal(noise.gaussian(KEY, x, 0.0), x)  # sigma = 0 adds nothing
    # per-pixel sigma
    sigma = jnp.array([0.1, 1.0, 0.0, 2.0])
    check_moments(noise.gaussian(KEY, x, sigma)[:, :2], x[0, :2], np.array([0.01, 1.0]), 0.0)
    with jax.enable_x64(True):
        y64 = noise.gaussian(KEY, jnp.zeros(N, jnp.float64), 0.5)
        assert y64.dtype == jnp.float64
        check_moments(np.asarray(y64)[:, None], 0.0, 0.25, 0.0)
    assert noise.gaussian(KEY, jnp.arange(4), 1.0).dtype == jnp.float32  # integers: float32


# --------------------------------------------------------------------- Poisson-Gaussian
def test_poisson_gaussian_moments():
    photons, sigma = 40.0, 0.05
    x = jnp.array([0.0, 0.1, 1.0, 3.0])
    y = noise.poisson_gaussian(KEY, jnp.broadcast_to(x, (N, 4)), photons, sigma)
    lam = np.asarray(x, np.float64) * photons
    var = lam / photons**2 + sigma**2
    # fourth cumulant of the sum: lam / p^4 (the Gaussian's is 0)
    check_moments(y, x, var, (lam / photons**4) / var**2)
    assert np.asarray(y[:, 0]).min() < 0  # the read noise makes dark pixels negative
    # sigma = 0: whole counts (Poisson's distribution, drawn with a sub-key)
    counts = np.asarray(noise.poisson_gaussian(KEY, jnp.broadcast_to(x, (N, 4)), photons, 0.0))
    np.testing.assert_allclose(counts * photons, np.round(counts * photons), atol=1e-3)


# ------------------------------------------------------------------ keys, jit and vmap
@pytest.mark.parametrize(
    "simulate",
    [
        lambda k, x: noise.poisson(k, x, 100.0),
        lambda k, x: noise.gaussian(k, x, 0.1),
        lambda k, x: noise.poisson_gaussian(k, x, 100.0, 0.1),
    ],
    ids=["poisson", "gaussian", "poisson_gaussian"],
)
def test_same_key_same_sample(simulate):
    x = jnp.broadcast_to(jnp.linspace(0.1, 1.0, 4), (N, 4))
    a, b = simulate(KEY, x), simulate(jax.random.key(0), x)
    np.testing.assert_array_equal(a, b)
    c = simulate(jax.random.key(1), x)
    assert np.mean(np.asarray(a) != np.asarray(c)) > 0.5
    np.testing.assert_array_equal(simulate(jax.random.PRNGKey(0), x), a)  # a raw uint32 key


def test_jit_with_traced_photons_and_sigma_and_vmap_over_keys_in_float64():
    with jax.enable_x64(True):
        x = jnp.full((N, 3), 0.5, jnp.float64)
        photons = jnp.array([3.0, 1000.0, 1000.0])  # per column, traced
        sigma = jnp.array([0.0, 0.0, 0.1])
        y = np.asarray(jax.jit(noise.poisson_gaussian)(KEY, x, photons, sigma))
        assert y.dtype == np.float64 and y.shape == (N, 3)
        p, s = np.asarray(photons), np.asarray(sigma)
        var = 0.5 / p + s**2
        check_moments(y, 0.5, var, (0.5 * p / p**4) / var**2)
        counts = y[:, :2] * p[:2]
        assert np.abs(counts - np.round(counts)).max() < 1e-9  # whole counts where sigma = 0
        keys = jax.random.split(KEY, 3)
        g = jax.jit(jax.vmap(noise.gaussian, in_axes=(0, None, None)))(keys, x[:, 0], 0.2)
        assert g.dtype == jnp.float64 and g.shape == (3, N)
        want = noise.gaussian(keys[1], x[:, 0], 0.2)
        np.testing.assert_allclose(g[1], want, rtol=1e-12, atol=1e-15)
        assert not np.array_equal(g[0], g[1])


# ------------------------------------------------------------------------------- errors
def test_errors():
    x = jnp.ones((4, 4))
    with pytest.raises(ValueError, match=r"poisson expects x >= 0.*min\(x\) = -0.5.*jnp.maximum"):
        noise.poisson(KEY, x.at[0, 0].set(-0.5), 10.0)
    with pytest.raises(ValueError, match=r"poisson_gaussian expects x >= 0"):
        noise.poisson_gaussian(KEY, -x, 10.0, 0.1)
    with pytest.raises(ValueError, match=r"photons > 0 \(the expected count where x = 1\), got 0"):
        noise.poisson(KEY, x, 0)
    with pytest.raises(ValueError, match=r"photons > 0.*got -5"):
        noise.poisson_gaussian(KEY, x, -5.0, 0.1)
    with pytest.raises(ValueError, match=r"gaussian expects sigma >= 0, got -0.1"):
        noise.gaussian(KEY, x, -0.1)
    with pytest.raises(ValueError, match=r"poisson_gaussian expects sigma >= 0"):
        noise.poisson_gaussian(KEY, x, 10.0, jnp.array([0.1, -0.1, 0.1, 0.1]))
    with pytest.raises(
        ValueError,
        match=r"sigma as a scalar or an array broadcastable to x \(4, 4\), got shape \(3,\)",
    ):
        noise.gaussian(KEY, x, jnp.ones(3))
    with pytest.raises(ValueError, match=r"photons as a real number > 0"):
        noise.poisson(KEY, x, 1 + 1j)
    with pytest.raises(ValueError, match=r"real, non-negative intensity x, got complex64.*abs"):
        noise.poisson(KEY, x + 0j, 10.0)
    with pytest.raises(ValueError, match=r"one jax.random key \(e.g. jax.random.key\(0\)\)"):
        noise.gaussian(0, x, 0.1)
    with pytest.raises(ValueError, match=r"one jax.random key"):
        noise.poisson(jax.random.split(KEY, 2), x, 10.0)
    with pytest.raises(ValueError, match=r"x as an array of numbers"):
        noise.gaussian(KEY, "image", 0.1)

"""Helpers shared by the prior tests: jitted evaluation (one compile per prior, shape and
dtype; eager dispatch would recompile in every test) and random inputs."""

import jax


@jax.jit
def _value(prior, x):
    return prior(x)


@jax.jit
def _values(prior, xs):
    return jax.vmap(prior)(xs)


@jax.jit
def _grad(prior, x):
    return jax.grad(prior)(x)


def value(prior, x):
    return float(_value(prior, x))


def randn(rng, shape, complex_=False):
    x = rng.standard_normal(shape)
    if complex_:
        x = x + 1j * rng.standard_normal(shape)
    return x

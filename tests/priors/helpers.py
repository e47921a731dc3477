"""Helpers shared by the prior tests: jitted evaluation (one compile per prior, shape and
dtype; eager dispatch would recompile in every test) and the dtypes of random inputs."""

import jax
import numpy as np

# the input dtypes of the tests' ``complex_`` parameter
DTYPES = {False: np.float64, True: np.complex128}


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

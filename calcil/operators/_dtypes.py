"""Dtype helpers shared by operators: defaults, real/complex embedding and restriction."""

import jax
import jax.numpy as jnp


def default_real():
    """float32, or float64 when ``jax_enable_x64`` is on."""
    return jax.dtypes.canonicalize_dtype(jnp.float64)


def default_complex():
    """complex64, or complex128 when ``jax_enable_x64`` is on."""
    return jax.dtypes.canonicalize_dtype(jnp.complex128)


def inexact_or_default(dtype):
    """``dtype`` when it is floating or complex, else the default real dtype (for int/bool)."""
    dtype = jnp.dtype(dtype)
    return dtype if jnp.issubdtype(dtype, jnp.inexact) else default_real()


def is_complex(dtype) -> bool:
    return jnp.issubdtype(dtype, jnp.complexfloating)


def real_dtype_of(dtype):
    """float32 for complex64, float64 for complex128; real dtypes unchanged."""
    return jnp.finfo(dtype).dtype if is_complex(dtype) else jnp.dtype(dtype)


def complex_dtype_of(dtype):
    """complex64 for float32, complex128 for float64; complex dtypes unchanged."""
    return jnp.promote_types(dtype, jnp.complex64)


def embed(x, dtype):
    """Embed ``x`` into ``dtype`` (e.g. real into complex); a no-op when it already matches."""
    return x if x.dtype == dtype else x.astype(dtype)


def restrict(y, dtype):
    """The adjoint of :func:`embed`: the real part when ``dtype`` is real and ``y`` complex."""
    if is_complex(y.dtype) and not is_complex(dtype):
        y = jnp.real(y)
    return y if y.dtype == dtype else y.astype(dtype)


def describe_dtype(dtype) -> str:
    return "any dtype" if dtype is None else jnp.dtype(dtype).name

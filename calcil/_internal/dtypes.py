"""Dtype helpers shared by operators: defaults, real/complex embedding and restriction.

Dtypes follow the data unless pinned. An operator whose ``follows_dtype`` is true declares
its real working dtype (``input_dtype`` float32, or float64 under ``jax_enable_x64``) and also
accepts the complex dtype of that precision; ``result_dtype`` gives the output dtype for
either (complex for complex input, for the linear ones). A pinned operator (``follows_dtype``
false) accepts its ``input_dtype`` only, and inputs that promote to it without loss (a real
input into a complex operator, an integer into a float one).
"""

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


def accepted_dtype(dtype, input_dtype, follows: bool):
    """The dtype an input of ``dtype`` is embedded into, or ``None`` when that would lose data.

    ``input_dtype`` ``None`` accepts anything (shape-polymorphic operators). A following
    operator takes complex input in the complex dtype of its working precision.
    """
    if input_dtype is None:
        return jnp.dtype(dtype)
    target = complex_dtype_of(input_dtype) if follows and is_complex(dtype) else input_dtype
    return target if jnp.promote_types(dtype, target) == target else None


def describe_dtype(dtype, follows: bool = False) -> str:
    """``float32``; ``float32 or complex64`` for a dtype that follows the data."""
    if dtype is None:
        return "any dtype"
    name = jnp.dtype(dtype).name
    return (
        f"{name} or {complex_dtype_of(dtype).name}" if follows and not is_complex(dtype) else name
    )

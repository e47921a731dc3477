"""Argument checks shared by the operators (optics, interpolation)."""

import math

import jax
import jax.numpy as jnp
import numpy as np

from calcil._internal.dtypes import default_real
from calcil._internal.integers import as_ints


def positive(name, value, unit="same unit as wavelength", owner="") -> float:
    """``value`` as a positive finite float, or an error naming ``owner``'s argument."""
    label = f"{owner} {name}" if owner else name
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{label} must be a positive number ({unit}), got {value!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{label} must be a positive finite number ({unit}), got {value!r}")
    return value


def finite_leaf(value, name, owner, unit="pixels") -> jax.Array:
    """``value`` as a float array leaf (float32, or float64 with x64, unless given as float);
    concrete values must be finite, a tracer (a value built inside ``jit``/``grad``) passes."""
    if isinstance(value, jax.core.Tracer):
        return value
    array = np.asarray(value)
    if not np.issubdtype(array.dtype, np.number) or not np.all(np.isfinite(array)):
        raise ValueError(f"{owner} {name} must be finite numbers ({unit}), got {value!r}")
    dtype = array.dtype if np.issubdtype(array.dtype, np.floating) else default_real()
    return jnp.asarray(array, dtype=jax.dtypes.canonicalize_dtype(dtype))


def field_shape(input_shape, owner, min_ndim=2) -> tuple[int, ...]:
    """Validate a field shape ``(..., ny, nx)`` (at least ``min_ndim`` positive sizes)."""
    try:
        items = tuple(input_shape)
    except TypeError:
        raise TypeError(
            f"{owner} input_shape must be a tuple of ints (..., ny, nx), got {input_shape!r}"
        ) from None
    shape = as_ints(items, f"{owner} input_shape")
    if len(shape) < min_ndim or any(n < 1 for n in shape):
        raise ValueError(
            f"{owner} needs input_shape with at least {min_ndim} positive sizes "
            f"(..., ny, nx), got {shape}"
        )
    return shape

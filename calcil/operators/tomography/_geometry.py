"""Argument checks and coordinates shared by the projections.

Concrete geometry is checked when an operator is built (a clear ``ValueError`` naming the
argument); traced geometry (angles or distances being estimated inside a forward model)
passes through unchecked, since its values are not known until the program runs.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np

from calcil._internal.dtypes import default_real
from calcil._internal.integers import as_count, as_ints
from calcil.operators._checks import positive

__all__ = [
    "angles_leaf",
    "centred",
    "detector_size",
    "distance_leaf",
    "grid_shape",
    "half_diagonal",
    "source_and_detector",
    "spacing",
]

_UNIT = "same unit as dx"


def grid_shape(input_shape, owner: str, ndims: tuple[int, ...]) -> tuple[int, ...]:
    """``input_shape`` as ints with one of ``ndims`` axes, all positive."""
    try:
        shape = as_ints(input_shape, f"{owner} input_shape")
    except TypeError:
        raise TypeError(
            f"{owner} input_shape must be a tuple of ints, got {input_shape!r}"
        ) from None
    names = " or ".join({2: "(ny, nx)", 3: "(nz, ny, nx)"}[n] for n in ndims)
    if len(shape) not in ndims or any(n < 1 for n in shape):
        raise ValueError(f"{owner} input_shape must be {names} with positive sizes, got {shape}")
    return shape


def angles_leaf(angles, owner: str) -> jax.Array:
    """Projection angles (radians) as a 1-D array leaf; concrete ones must be finite."""
    if isinstance(angles, jax.core.Tracer):
        if angles.ndim != 1:
            raise ValueError(f"{owner} angles must be a 1-D array, got shape {angles.shape}")
        return angles
    values = np.asarray(angles)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(
            f"{owner} angles must be a non-empty 1-D array of angles in radians, got shape "
            f"{values.shape}: pass e.g. np.linspace(0, np.pi, 180, endpoint=False)."
        )
    if not np.issubdtype(values.dtype, np.number) or not np.all(np.isfinite(values)):
        raise ValueError(f"{owner} angles must be finite numbers (radians), got {angles!r}")
    dtype = values.dtype if np.issubdtype(values.dtype, np.floating) else default_real()
    return jnp.asarray(values, dtype=jax.dtypes.canonicalize_dtype(dtype))


def distance_leaf(value, name: str, owner: str, minimum: float, why: str) -> jax.Array:
    """A distance as a scalar array leaf; a concrete one must be finite and exceed
    ``minimum`` (``why`` says what the bound is)."""
    if isinstance(value, jax.core.Tracer):
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{owner} {name} must be a number ({_UNIT}), got {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"{owner} {name} must be finite ({_UNIT}), got {value!r}")
    if number < minimum:
        raise ValueError(f"{owner} {name}={number:g} is too small: {why}")
    return jnp.asarray(number, dtype=default_real())


def source_and_detector(source_distance, detector_distance, shape, dx, owner):
    """The source and detector distances as leaves: the source outside the object (beyond
    the in-plane half-diagonal), the detector at or beyond the rotation axis."""
    radius = half_diagonal(shape, dx)
    source = distance_leaf(
        source_distance,
        "source_distance",
        owner,
        radius,
        f"the source must lie outside the object, beyond its in-plane half-diagonal "
        f"{radius:g} (= dx/2 sqrt(nx^2 + ny^2)); move the source further or use a smaller dx.",
    )
    detector = distance_leaf(
        detector_distance,
        "detector_distance",
        owner,
        0.0,
        "the detector lies at or beyond the rotation axis (detector_distance >= 0).",
    )
    return source, detector


def detector_size(value, name: str, owner: str) -> int:
    """A positive number of detector pixels."""
    return as_count(
        f"{owner} {name}", value, 1, "a positive integer (detector pixels)", "Give at least 1."
    )


def spacing(value, name: str, owner: str) -> float:
    """A positive finite pixel or detector spacing."""
    return positive(name, value, _UNIT, owner)


def half_diagonal(shape, dx: float) -> float:
    """Half the diagonal of the grid's ``(ny, nx)`` extent: the radius of the object's
    bounding circle in the rotation plane (pixel edges included)."""
    ny, nx = shape[-2:]
    return 0.5 * dx * math.hypot(nx, ny)


def centred(n: int, step: float, dtype) -> jax.Array:
    """Coordinates ``(k - (n - 1) / 2) step`` of ``n`` samples centred on zero."""
    return (jnp.arange(n, dtype=dtype) - (n - 1) / 2) * step

"""Argument checks shared by the optics operators (propagators, pupil, multi-slice)."""

import math

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

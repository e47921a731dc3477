"""Whole-number arguments: operator shapes, axes and factors; solver counts (iterations,
log_every, batch_size, Group.start ...).

Python and NumPy integers are accepted (``operator.index``); floats and strings are refused
rather than truncated. Shapes raise ``TypeError`` (a wrong kind of argument); counts raise
``ValueError`` (also for ``bool`` and for values below their minimum).
"""

from __future__ import annotations

import operator

__all__ = ["as_count", "as_int", "as_ints"]


def as_count(name: str, value, minimum: int, kind: str, fix: str = "") -> int:
    """``value`` as a Python int ``>= minimum``, else a ``ValueError``.

    The message reads ``"<name> must be <kind>, got <value> [of type T]. <fix>"``.

    Example:
        >>> import numpy as np
        >>> as_count("iterations", np.int64(5), 0, "a non-negative integer")
        5
    """
    try:
        if isinstance(value, bool):
            raise TypeError
        number = operator.index(value)
    except TypeError:
        number = None
    if number is None or number < minimum:
        given = repr(value) + (f" of type {type(value).__name__}" if number is None else "")
        raise ValueError(f"{name} must be {kind}, got {given}. {fix}".rstrip())
    return number


def as_int(value, name: str) -> int:
    """``value`` as a Python int (NumPy integers too), or a ``TypeError`` naming ``name``."""
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(
            f"{name} must be an integer (int or NumPy integer), got {value!r} of type "
            f"{type(value).__name__}: pass whole numbers, e.g. int(round(v))."
        ) from None


def as_ints(values, name: str) -> tuple[int, ...]:
    """A sequence of integers as a tuple of Python ints (see :func:`as_int`)."""
    try:
        items = tuple(values)
    except TypeError:
        raise TypeError(f"{name} must be a sequence of integers, got {values!r}") from None
    return tuple(as_int(v, name) for v in items)

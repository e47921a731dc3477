"""Whole-number arguments of the solvers (iterations, log_every, batch_size, Group.start ...).

Python and NumPy integers are accepted (``operator.index``); ``bool``, floats and strings are
refused rather than truncated, with a ``ValueError`` that names the argument.
"""

from __future__ import annotations

import operator

__all__ = ["as_count"]


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

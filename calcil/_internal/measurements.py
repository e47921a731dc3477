"""Checks of concrete measurements before a solver compiles anything.

:func:`check_values` finds NaN, infinite and (where the data cannot be negative) negative
values in one small compiled reduction where the array lives; only a failure reads values back
to describe them. :func:`check_weight_shape` checks that weights broadcast to a measurement.
Both raise a ``ValueError`` that names the entry, what is wrong with it and how to fix it.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["check_values", "check_weight_shape"]


def _extremes(xp, y):
    """``[min, max]`` of ``y`` (of its real and imaginary parts when complex), NaN when ``y``
    holds a NaN: one pass over the data, with NumPy or ``jax.numpy`` (``xp``)."""
    parts = (xp.real(y), xp.imag(y)) if xp.iscomplexobj(y) else (y,)
    lo, hi = xp.min(parts[0]), xp.max(parts[0])
    for part in parts[1:]:
        lo, hi = xp.minimum(lo, xp.min(part)), xp.maximum(hi, xp.max(part))
    return xp.stack([lo, hi])


def _counts(xp, y):
    """``(non-finite, NaN, negative)`` element counts of ``y`` (negatives of real ``y``)."""
    finite = xp.isfinite(y)
    negative = 0 if xp.iscomplexobj(y) else xp.sum(finite & (y < 0))
    return xp.stack([xp.sum(~finite), xp.sum(xp.isnan(y)), xp.asarray(negative)])


_device_extremes = jax.jit(lambda y: _extremes(jnp, y))
_device_counts = jax.jit(lambda y: _counts(jnp, y).astype(jnp.int32))


def _is_traced(x) -> bool:
    return isinstance(x, jax.core.Tracer)


def _where(y, mask_fn) -> str:
    """``"smallest -2, the first at index (i, j), shape (m, n)"`` for bad values of ``y``."""
    if not getattr(y, "is_fully_addressable", True):  # another process holds part of it
        return f"shape {tuple(y.shape)}"
    host = np.asarray(y)
    mask = mask_fn(host)
    first = tuple(int(i) for i in np.unravel_index(int(np.argmax(mask)), mask.shape))
    smallest = f"smallest {host.min():.4g}, " if mask_fn is _negative else ""
    return f"{smallest}the first at index {first}, shape {host.shape}"


def _values(n: int) -> str:
    return "value" if n == 1 else "values"


def _not_finite(host):
    return ~np.isfinite(host)


def _negative(host):
    return host < 0


def check_values(owner: str, name: str, y, nonnegative: tuple[str, str] | None = None):
    """Raise a ``ValueError`` when concrete ``y`` holds NaN or inf, or negative values when
    ``nonnegative = (why they cannot be, how to fix it)``; traced ``y`` passes.

    A ``jax.Array`` is checked by one small compiled reduction (its minimum and maximum)
    where it lives, with no copy of the data to the host; values are counted, and read on
    the host, only to describe a failure.
    """
    if _is_traced(y):
        return
    on_device = isinstance(y, jax.Array)
    if not on_device:
        y = np.asarray(y)
        if not (np.issubdtype(y.dtype, np.number) or y.dtype == np.bool_):
            return  # not numeric: the loss itself reports what it cannot use
    if np.size(y) == 0:
        return
    lo, hi = (float(v) for v in np.asarray(_device_extremes(y) if on_device else _extremes(np, y)))
    negative = nonnegative is not None and not jnp.iscomplexobj(y) and lo < 0
    if math.isfinite(lo) and math.isfinite(hi) and not negative:
        return  # the common case: one pass, no counting
    counts = _device_counts(y) if on_device else _counts(np, y)
    n_bad, n_nan, n_negative = (int(c) for c in np.asarray(counts))
    size = int(np.size(y))
    if n_bad:
        kinds = ((n_nan, "NaN"), (n_bad - n_nan, "infinite"))
        found = " and ".join(f"{n} {kind}" for n, kind in kinds if n)
        raise ValueError(
            f"{owner}: {name} must hold finite values, but has {found} "
            f"{_values(n_bad)} (of {size}; {_where(y, _not_finite)}). Replace them (e.g. "
            "jnp.nan_to_num(y)) and give those pixels zero weight with cc.losses.WeightedL2, "
            "or leave them out of the data."
        )
    if nonnegative is not None and n_negative:
        why, fix = nonnegative
        raise ValueError(
            f"{owner}: {name} must be >= 0 ({why}), but has {n_negative} negative "
            f"{_values(n_negative)} (of {size}; {_where(y, _negative)}). {fix}"
        )


def check_weight_shape(owner: str, name: str, weight_shape, target: str, target_shape) -> None:
    """Weights must broadcast to the measurement's shape (not enlarge it)."""
    weight_shape, target_shape = tuple(weight_shape), tuple(target_shape)
    try:
        fits = np.broadcast_shapes(weight_shape, target_shape) == target_shape
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(
            f"{owner}: {name} of shape {weight_shape} do not broadcast to the shape "
            f"{target_shape} of {target}. Give the weights the measurement's shape "
            f"{target_shape}, or one that broadcasts to it (such as () for a single weight)."
        )

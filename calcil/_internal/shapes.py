"""Shape helpers shared by operators: axis normalisation, per-axis arguments, broadcasting.

Shapes, axes, factors and offsets are static integers (:mod:`calcil._internal.integers`).
"""

import numpy as np

from calcil._internal.integers import as_int, as_ints


def normalize_axes(axes, ndim: int, name: str = "axes") -> tuple[int, ...]:
    """Non-negative, unique axes; ``None`` means all axes."""
    if axes is None:
        return tuple(range(ndim))
    axes = (as_int(axes, name),) if np.ndim(axes) == 0 else as_ints(axes, name)
    out = []
    for a in axes:
        if not -ndim <= a < ndim:
            raise ValueError(
                f"{name}={axes} is out of range for a {ndim}-d input: give axes in "
                f"[-{ndim}, {ndim})"
            )
        out.append(a % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"{name}={axes} repeats an axis: give each axis once")
    return tuple(out)


def per_axis(value, n: int, name: str) -> tuple[int, ...]:
    """An int or a length-``n`` sequence of ints as a tuple of ``n`` ints."""
    if np.ndim(value) == 0:
        return (as_int(value, name),) * n
    value = as_ints(value, name)
    if len(value) != n:
        raise ValueError(f"{name} needs {n} values (one per axis), got {value}")
    return value


def sum_to_shape(y, shape: tuple[int, ...]):
    """Sum ``y`` over the axes along which ``shape`` was broadcast (adjoint of broadcasting)."""
    if y.shape == shape:
        return y
    lead = y.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(shape) if n == 1 and y.shape[lead + i] != 1
    )
    return y.sum(axis=axes).reshape(shape)


def check_broadcast(what: str, shape, input_shape, plural: bool = False) -> None:
    """A ``ValueError`` unless ``shape`` (of ``what``: weights, a mask) broadcasts with the
    operator's ``input_shape``."""
    try:
        np.broadcast_shapes(input_shape, shape)
    except ValueError:
        verb = "do" if plural else "does"
        raise ValueError(
            f"{what} of shape {shape} {verb} not broadcast with input_shape {input_shape}: give "
            f"{what} of the input's shape or of one that broadcasts to it."
        ) from None

"""Shape helpers shared by operators: axis normalisation, per-axis arguments, broadcasting."""

import numpy as np


def normalize_axes(axes, ndim: int, name: str = "axes") -> tuple[int, ...]:
    """Non-negative, unique axes; ``None`` means all axes."""
    if axes is None:
        return tuple(range(ndim))
    if isinstance(axes, int):
        axes = (axes,)
    out = []
    for a in axes:
        a = int(a)
        if not -ndim <= a < ndim:
            raise ValueError(f"{name}={tuple(axes)} is out of range for a {ndim}-d input")
        out.append(a % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"{name}={tuple(axes)} repeats an axis")
    return tuple(out)


def per_axis(value, n: int, name: str) -> tuple[int, ...]:
    """An int or a length-``n`` sequence of ints as a tuple of ``n`` ints."""
    if np.ndim(value) == 0:
        return (int(value),) * n
    value = tuple(int(v) for v in value)
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

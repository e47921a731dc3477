"""Forward finite differences, the gradient operator behind total variation."""

import jax.numpy as jnp
from jax import lax

from calcil._internal.arrays import pad_axis
from calcil._internal.dtypes import default_real
from calcil._internal.shapes import normalize_axes
from calcil._internal.struct import static_field
from calcil.operators.base import LinearOperator

__all__ = ["DifferenceGram", "FiniteDifference"]

BOUNDARIES = ("periodic", "neumann")


class FiniteDifference(LinearOperator):
    """Forward differences ``(D x)_a[i] = x[i + 1] - x[i]`` along each of ``axes``.

    The differences are stacked on a new leading axis: an input of shape ``(ny, nx)`` with
    ``axes=None`` gives ``(2, ny, nx)``. ``boundary="periodic"`` wraps (``x[n] = x[0]``);
    ``"neumann"`` sets the last difference to zero (zero flux across the border), as in TV.
    The adjoint is the negative backward-difference divergence.

    Args:
        input_shape: shape of ``x``.
        axes: differentiated axes; ``None`` means all axes.
        boundary: ``"periodic"`` or ``"neumann"``.
        input_dtype: pins the dtype of ``x``; by default it follows the data (real or
            complex of the working precision, the output of the same dtype).

    Example:
        >>> import jax.numpy as jnp, calcil as cc
        >>> D = cc.operators.FiniteDifference((4,), boundary="neumann")
        >>> D(jnp.array([0.0, 1.0, 3.0, 6.0])).tolist()
        [[1.0, 2.0, 3.0, 0.0]]
    """

    axes: tuple[int, ...] = static_field()
    boundary: str = static_field()

    def __init__(self, input_shape, axes=None, boundary="periodic", input_dtype=None):
        if boundary not in BOUNDARIES:
            raise ValueError(f"boundary must be one of {BOUNDARIES}, got {boundary!r}")
        self.axes = normalize_axes(axes, len(input_shape))
        self.boundary = boundary
        super().__init__(
            input_shape,
            default_real() if input_dtype is None else input_dtype,
            follows_dtype=input_dtype is None,
        )

    def forward(self, x):
        return jnp.stack([_diff(x, a, self.boundary) for a in self.axes])

    def adjoint(self, y):
        return sum(_diff_adjoint(y[i], a, self.boundary) for i, a in enumerate(self.axes))

    @property
    def gram(self):
        """``D^H D``, the negative Laplacian, applied without stacking the differences."""
        return DifferenceGram(self)


class DifferenceGram(LinearOperator):
    """``D^H D = -sum_a d_a^H d_a`` of a :class:`FiniteDifference` ``D``: the negative
    discrete Laplacian with the same boundary (periodic, or Neumann: zero flux).

    The same values as ``D.H(D(x))``, but each axis's difference goes straight into its
    adjoint, so the stacked ``(len(axes), *shape)`` array is never formed: one pass over
    ``x`` (the Hessian of TV-like quadratic terms in CG and ADMM's x-update).

    Example:
        >>> import jax.numpy as jnp, calcil as cc
        >>> D = cc.operators.FiniteDifference((4,), boundary="neumann")
        >>> D.gram(jnp.array([0.0, 1.0, 3.0, 6.0])).tolist()   # -x'' with zero flux
        [-1.0, -1.0, -1.0, 3.0]
    """

    axes: tuple[int, ...] = static_field()
    boundary: str = static_field()

    def __init__(self, differences: FiniteDifference):
        self.axes, self.boundary = differences.axes, differences.boundary
        super().__init__(
            differences.input_shape,
            differences.input_dtype,
            follows_dtype=differences.follows_dtype,
        )

    def forward(self, x):
        return sum(_diff_adjoint(_diff(x, a, self.boundary), a, self.boundary) for a in self.axes)

    def adjoint(self, y):
        return self.forward(y)  # self-adjoint


def _diff(x, axis, boundary):
    """The forward difference along ``axis`` (the last one 0 for ``"neumann"``)."""
    if boundary == "periodic":
        return jnp.roll(x, -1, axis) - x
    n = x.shape[axis]
    d = lax.slice_in_dim(x, 1, n, axis=axis) - lax.slice_in_dim(x, 0, n - 1, axis=axis)
    return pad_axis(d, axis, (0, 1))


def _diff_adjoint(y, axis, boundary):
    """The adjoint of :func:`_diff`: the negative backward-difference divergence."""
    if boundary == "periodic":
        return jnp.roll(y, 1, axis) - y
    z = lax.slice_in_dim(y, 0, y.shape[axis] - 1, axis=axis)
    return pad_axis(z, axis, (1, 0)) - pad_axis(z, axis, (0, 1))

"""Stacks of linear operators: one input to many outputs, and block-diagonal maps.

Members may be different operators (a ``Pupil`` and a ``Convolve``) as long as their shapes
and dtypes agree. Many copies of one operator with different leaves (one PSF per channel, one
shift per frame) are better built inside ``jax.vmap``: operators are pytrees, so

    >>> import jax, jax.numpy as jnp, calcil as cc
    >>> shifts = jnp.array([[0.0, 1.0], [2.0, 0.0], [1.0, 1.0]])
    >>> frames = jax.vmap(lambda s: cc.operators.Shift((4, 5), s)(jnp.eye(4, 5)))(shifts)
    >>> frames.shape
    (3, 4, 5)

applies three shifts in one vectorised call.
"""

import jax.numpy as jnp

from calcil.operators.base import LinearOperator

__all__ = ["BlockDiagonal", "Stack"]


def _members(operators, owner):
    operators = tuple(operators)
    if not operators:
        raise ValueError(f"{owner} needs at least one operator")
    first = operators[0]
    for i, op in enumerate(operators):
        if not isinstance(op, LinearOperator):
            raise TypeError(f"{owner} takes LinearOperators; member {i} is {type(op).__name__}")
        same = (op.input_shape, op.output_shape, op.input_dtype, op.output_dtype) == (
            first.input_shape,
            first.output_shape,
            first.input_dtype,
            first.output_dtype,
        )
        if not same or op.follows_dtype != first.follows_dtype:
            raise ValueError(
                f"{owner} members must agree in shapes and dtypes: member 0 is {first!r}, "
                f"member {i} is {op!r}"
            )
    return operators


class Stack(LinearOperator):
    """``y = stack([A_1 x, ..., A_n x])``: one input, the outputs on a new leading axis.

    The adjoint sums the members' adjoints: ``A^H y = sum_i A_i^H y_i``.

    Example:
        >>> import jax.numpy as jnp, calcil as cc
        >>> O = cc.operators
        >>> A = O.Stack([O.Identity((3,)), O.Shift((3,), 1.0)])
        >>> A(jnp.array([1.0, 2.0, 3.0])).round(4).tolist()
        [[1.0, 2.0, 3.0], [3.0, 1.0, 2.0]]
    """

    operators: tuple

    def __init__(self, operators):
        self.operators = _members(operators, "Stack")
        first = self.operators[0]
        out = (len(self.operators), *first.output_shape)
        super().__init__(
            first.input_shape,
            first.input_dtype,
            out,
            first.output_dtype,
            follows_dtype=first.follows_dtype,
        )

    def forward(self, x):
        return jnp.stack([op(x) for op in self.operators])

    def adjoint(self, y):
        return sum(op.H(y[i]) for i, op in enumerate(self.operators))


class BlockDiagonal(LinearOperator):
    """``y_i = A_i x_i``: inputs and outputs stacked on a leading axis.

    Example:
        >>> import jax.numpy as jnp, calcil as cc
        >>> O = cc.operators
        >>> A = O.BlockDiagonal([O.Identity((2,)), 2.0 * O.Identity((2,))])
        >>> A(jnp.ones((2, 2))).tolist()
        [[1.0, 1.0], [2.0, 2.0]]
    """

    operators: tuple

    def __init__(self, operators):
        self.operators = _members(operators, "BlockDiagonal")
        first, n = self.operators[0], len(self.operators)
        super().__init__(
            (n, *first.input_shape),
            first.input_dtype,
            (n, *first.output_shape),
            first.output_dtype,
            follows_dtype=first.follows_dtype,
        )

    def forward(self, x):
        return jnp.stack([op(x[i]) for i, op in enumerate(self.operators)])

    def adjoint(self, y):
        return jnp.stack([op.H(y[i]) for i, op in enumerate(self.operators)])

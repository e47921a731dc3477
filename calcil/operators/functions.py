"""Operators from user functions: ``cc.operators.from_function``."""

from __future__ import annotations

from typing import Any

from calcil._internal.struct import static_field
from calcil.operators.base import LinearOperator, Operator

__all__ = ["FunctionLinearOperator", "FunctionOperator", "from_function"]


class FunctionOperator(Operator):
    """An operator wrapping a user function ``fn(x) -> y`` (see :func:`from_function`)."""

    fn: Any = static_field()

    def __init__(self, fn, input_shape, input_dtype=None):
        self.fn = fn
        super().__init__(input_shape, input_dtype)

    def forward(self, x):
        return self.fn(x)


class FunctionLinearOperator(LinearOperator):
    """A linear operator wrapping ``fn`` and optionally its hand-written adjoint."""

    fn: Any = static_field()
    adjoint_fn: Any = static_field()

    def __init__(self, fn, input_shape, input_dtype=None, adjoint_fn=None):
        self.fn = fn
        self.adjoint_fn = adjoint_fn
        super().__init__(input_shape, input_dtype)

    def forward(self, x):
        return self.fn(x)

    def adjoint(self, y):
        if self.adjoint_fn is None:
            return self.autodiff_adjoint(y)
        return self.adjoint_fn(y)

    @property
    def has_custom_adjoint(self) -> bool:
        return self.adjoint_fn is not None


def from_function(fn, input_shape, input_dtype=None, linear: bool = False, adjoint=None):
    """Wrap a JAX function as an operator.

    Args:
        fn: ``fn(x) -> y``, traceable by JAX. For ``linear=True`` it must be linear in ``x``.
        input_shape: shape of ``x``.
        input_dtype: dtype of ``x`` (default float32).
        linear: return a :class:`LinearOperator` whose adjoint is derived by autodiff.
        adjoint: optional hand-written adjoint ``adjoint(y) -> x`` (implies ``linear``).

    Example:
        >>> import jax.numpy as jnp, calcil as cc
        >>> A = cc.operators.from_function(lambda x: jnp.cumsum(x), (4,), linear=True)
        >>> A.H(jnp.ones(4)).tolist()
        [4.0, 3.0, 2.0, 1.0]
    """
    if linear or adjoint is not None:
        return FunctionLinearOperator(fn, input_shape, input_dtype, adjoint_fn=adjoint)
    return FunctionOperator(fn, input_shape, input_dtype)

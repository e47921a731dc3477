"""A stand-in for a parameter that records the linear operators applied to it.

A solver calls the forward model once with :class:`Symbolic` leaves in place of the
parameters. Applying a calcil operator to a :class:`Symbolic` returns a new one that remembers
the operator (``B(A(s))`` remembers ``B @ A``); anything else (arithmetic, NumPy, a nonlinear
operator) raises ``TypeError``. When the forward model returns a :class:`Symbolic`, it is
exactly ``A(params[leaf])`` for a known linear ``A``, and the solver may use the structure of
``A`` (see :mod:`calcil.solvers._gram`).
"""

from __future__ import annotations


class Symbolic:
    """Parameter leaf ``index`` with the linear operator applied to it so far (``None``: none)."""

    __array_ufunc__ = None  # NumPy must not turn it into an object array

    def __init__(self, index: int, operator=None):
        self.index = index
        self.operator = operator

    def apply(self, operator) -> Symbolic:
        """``operator`` applied after what was recorded."""
        if not operator.linear:
            raise TypeError(f"{operator!r} is not linear")
        if self.operator is not None:
            from calcil.operators.base import compose

            operator = compose(operator, self.operator)
        return Symbolic(self.index, operator)

    def __jax_array__(self):
        raise TypeError("a Symbolic parameter stands for an array only under calcil operators")

    def __repr__(self):
        return f"Symbolic(leaf {self.index}, {self.operator!r})"

"""Priors of transformed variables: ``(prior @ C)(x) = prior(C x)`` for a linear operator ``C``.

``L21() @ FiniteDifference(shape, boundary="neumann")`` is isotropic total variation,
``L1() @ Wavelet(shape)`` wavelet sparsity, ``L2() @ FiniteDifference(shape)`` the classic
smoothness (Tikhonov) penalty ``0.5 ||D x||^2``. The value and its gradient come from JAX
(``C^H grad prior(C x)``), so the :class:`~calcil.GradientSolver` minimises any such prior;
``L2() @ C`` stays a convex quadratic, so :class:`~calcil.ConjugateGradient` accepts it. The
prox of ``g(C x)`` has no closed form for a general ``C``: proximal gradient (FISTA) cannot
use it, and :class:`~calcil.ADMM` splits it off as ``z = C x``, applying the prox of ``g``.
"""

from __future__ import annotations

from calcil.operators.base import LinearOperator, Operator
from calcil.priors.base import Prior

__all__ = ["Transformed"]


class Transformed(Prior):
    """``R(x) = prior(C x)``: what ``prior @ C`` builds.

    Args:
        prior: the prior on the transformed variable (its name is kept for logs).
        operator: a linear calcil operator ``C`` whose input is the variable.

    Example:
        >>> import jax.numpy as jnp, calcil as cc
        >>> D = cc.operators.FiniteDifference((4,), boundary="neumann")
        >>> tv = cc.priors.L1() @ D          # sum |x[i+1] - x[i]|
        >>> float(tv(jnp.array([0.0, 1.0, 3.0, 6.0])))
        6.0
    """

    prior: Prior
    operator: LinearOperator

    def __init__(self, prior: Prior, operator):
        if not isinstance(prior, Prior):
            raise TypeError(f"prior @ C needs a calcil prior on the left, got {prior!r}")
        if not isinstance(operator, Operator):
            raise TypeError(
                f"prior @ C applies the prior to C x for a calcil operator C; got {operator!r}. "
                "Wrap a function with cc.operators.from_function, or build the operator first."
            )
        if not operator.linear:
            raise ValueError(
                f"prior @ C needs a linear operator C (so that splitting methods can apply C "
                f"and C^H), but {operator!r} is not linear. For a prior of a nonlinear "
                "transform, write a Prior subclass whose value applies the transform."
            )
        self.prior, self.operator = prior, operator
        super().__init__(prior.name)

    def value(self, x):
        return self.prior(self.operator(x))

    def not_quadratic(self):
        why = self.prior.not_quadratic()
        return None if why is None else f"{why} (of C x)"

    def _repr_fields(self):
        return {}

    def __repr__(self):
        return f"{self.prior!r} @ {self.operator!r}"


Prior._transformed = Transformed

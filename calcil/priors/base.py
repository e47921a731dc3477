"""Prior algebra: a regulariser ``R(x) -> scalar`` with an optional proximal operator.

``prox(x, step) = argmin_z 0.5 ||z - x||^2 + step R(z)``. Priors are immutable pytrees:
``w * prior`` scales the value and the prox step; ``a + b`` adds values (a sum has no prox
in general). Both build a :class:`PriorSum`, the prior family of the weighted sums in
:mod:`calcil._internal.terms`. Each prior has a short ``name`` used in logs (``tv``, ``l1``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from calcil._internal.terms import Sum, Term

__all__ = ["Prior", "PriorSum", "Weighted"]


class Prior(Term, family="prior"):
    """Base class: ``prior(x)`` is a real scalar; subclasses implement :meth:`value`.

    Subclasses with a closed-form or fast proximal operator override :meth:`prox` and set
    ``has_prox = True``; a convex quadratic overrides :meth:`not_quadratic` to return ``None``.

    Example:
        >>> import jax.numpy as jnp, calcil as cc
        >>> class Energy(cc.priors.Prior):
        ...     def __init__(self):
        ...         super().__init__("energy")
        ...     def value(self, x):
        ...         return jnp.sum(x**2)
        >>> float((0.5 * Energy())(jnp.array([1.0, 2.0])))
        2.5
    """

    has_prox = False

    def value(self, x: jax.Array) -> jax.Array:
        """The prior's value at ``x`` (override in subclasses)."""
        raise NotImplementedError(f"{self._display} does not implement value()")

    def __call__(self, x) -> jax.Array:
        return self.value(jnp.asarray(x))

    def __matmul__(self, operator):
        """``prior @ C``: the prior of the transformed variable, ``R(C x)``
        (:class:`~calcil.priors.transformed.Transformed`, which registers itself here)."""
        return self._transformed(self, operator)

    def prox_state(self, x):
        """The state an iterative prox carries from one call to the next (warm start), or
        ``None`` when the prox needs none (closed forms)."""
        return None

    def warm_prox(self, x, step, state, iterations=None):
        """``(prox(x, step), new state)``, starting an inner solver from ``state`` (what
        :meth:`prox_state` or the previous call returned) for ``iterations`` steps (its
        default when ``None``; closed forms ignore both); proximal methods carry it."""
        return self.prox(x, step), state

    def prox(self, x, step) -> jax.Array:
        """``argmin_z 0.5 ||z - x||^2 + step * R(z)``."""
        raise NotImplementedError(
            f"{self!r} has no proximal operator (has_prox is False): use it with the "
            "GradientSolver, or pick a prior with a prox for proximal methods."
        )


class PriorSum(Sum, Prior):
    """``w_1 R_1 + w_2 R_2 + ...``: what ``w * prior`` and ``prior_a + prior_b`` build.

    Values add; terms are logged separately (duplicate names numbered). A single scaled prior
    ``w * R`` has the prox ``prox_R(x, w step)``; a sum of two or more has none. Weights are
    leaves (traceable). ``Weighted`` is an alias of this class, kept for existing code.

    Example:
        >>> import jax.numpy as jnp, calcil as cc
        >>> prior = 0.5 * cc.priors.L1()
        >>> prior.prox(jnp.array([-3.0, 0.5, 2.0]), 2.0).tolist()
        [-2.0, 0.0, 1.0]
        >>> prior + cc.priors.Tikhonov()
        0.5 * L1() + L2()
    """

    @property
    def has_prox(self) -> bool:
        return len(self.summands) == 1 and self.summands[0].has_prox

    def prox(self, x, step, **kwargs):
        if not self.has_prox:
            return super().prox(x, step)
        ((weight, prior),) = self._weighted_parts()
        return prior.prox(x, step if weight is None else weight * step, **kwargs)

    def prox_state(self, x):
        return self.summands[0].prox_state(x) if self.has_prox else None

    def warm_prox(self, x, step, state, iterations=None):
        if not self.has_prox:
            return super().prox(x, step), state
        ((weight, prior),) = self._weighted_parts()
        return prior.warm_prox(x, step if weight is None else weight * step, state, iterations)


Prior._sum = PriorSum

#: Alias of :class:`PriorSum` (a scaled prior ``w * R`` is a sum of one term).
Weighted = PriorSum

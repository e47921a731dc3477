"""Prior algebra: a regulariser ``R(x) -> scalar`` with an optional proximal operator.

``prox(x, step) = argmin_z 0.5 ||z - x||^2 + step R(z)``. Priors are immutable pytrees:
``w * prior`` scales the value and the prox step; ``a + b`` adds values (a sum has no prox
in general). Each prior has a short ``name`` used in logs (``tv``, ``l1``).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from calcil._internal.struct import Struct, merge_terms, short_repr, static_field

__all__ = ["Prior", "PriorSum", "Weighted"]


class Prior(Struct):
    """Base class: ``prior(x)`` is a real scalar; subclasses implement :meth:`value`.

    Subclasses with a closed-form or fast proximal operator override :meth:`prox` and set
    ``has_prox = True``.
    """

    name: str = static_field()
    has_prox = False

    def __init__(self, name: str):
        self.name = name

    def value(self, x: jax.Array) -> jax.Array:
        """The prior's value at ``x`` (override in subclasses)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement value()")

    def __call__(self, x) -> jax.Array:
        return self.value(jnp.asarray(x))

    def terms(self, x) -> dict[str, jax.Array]:
        """Named values for logging: ``{name: value}`` (sums list every term)."""
        return {self.name: self(x)}

    def prox(self, x, step) -> jax.Array:
        """``argmin_z 0.5 ||z - x||^2 + step * R(z)``."""
        raise NotImplementedError(
            f"{self!r} has no proximal operator (has_prox is False): use it with the "
            "GradientSolver, or pick a prior with a prox for proximal methods."
        )

    def __mul__(self, weight):
        if isinstance(weight, Prior):
            raise TypeError("Prior * Prior is not defined: add priors with +, weight with w *")
        if jnp.ndim(weight) != 0:
            raise TypeError(f"a prior weight must be a scalar, got shape {jnp.shape(weight)}")
        return Weighted(weight, self)

    __rmul__ = __mul__

    def __add__(self, other):
        if not isinstance(other, Prior):
            return NotImplemented
        return PriorSum((self, other))

    def _repr_fields(self) -> dict[str, Any]:
        return {k: v for k, v in super()._repr_fields().items() if k != "name"}


class Weighted(Prior):
    """``w * R``: value ``w R(x)``, prox ``prox_R(x, w step)``. ``w`` is a leaf (traceable)."""

    weight: Any
    prior: Prior

    def __init__(self, weight, prior: Prior):
        if isinstance(prior, Weighted):  # w1 * (w2 * R) = (w1 w2) * R
            weight, prior = weight * prior.weight, prior.prior
        self.weight, self.prior = weight, prior
        super().__init__(prior.name)

    @property
    def has_prox(self):
        return self.prior.has_prox

    def value(self, x):
        return self.weight * self.prior.value(x)

    def terms(self, x):
        return {k: self.weight * v for k, v in self.prior.terms(x).items()}

    def prox(self, x, step, **kwargs):
        return self.prior.prox(x, self.weight * step, **kwargs)

    def __repr__(self):
        return f"{short_repr(self.weight)} * {self.prior!r}"


class PriorSum(Prior):
    """``R1 + R2 + ...``: values add; terms are logged separately (duplicate names numbered)."""

    priors: tuple

    def __init__(self, priors):
        flat = []
        for p in priors:
            flat += list(p.priors) if isinstance(p, PriorSum) else [p]
        self.priors = tuple(flat)
        super().__init__("+".join(p.name for p in self.priors))

    def value(self, x):
        return sum(p.value(x) for p in self.priors)

    def terms(self, x):
        return merge_terms(p.terms(x) for p in self.priors)

    def __repr__(self):
        return " + ".join(repr(p) for p in self.priors)

"""Constraints: priors whose value is the indicator of a set and whose prox is the projection.

The value is 0 on the set (within rounding) and ``inf`` off it. Use them as ``project=`` in a
solver group, or as priors in proximal methods.
"""

import jax
import jax.numpy as jnp

from calcil._internal.struct import static_field
from calcil.priors.base import Prior

__all__ = ["Box", "NonNegative", "Simplex", "Support"]


def _indicator(inside):
    return jnp.where(jnp.all(inside), 0.0, jnp.inf)


def _tolerance(x):
    return 1e-4 if jnp.finfo(x.dtype).bits <= 32 else 1e-10


def _require_real(prior, x):
    if jnp.iscomplexobj(x):
        raise TypeError(
            f"{type(prior).__name__} constrains real arrays, got {x.dtype}: constrain the real "
            "and imaginary parts (or amplitude and phase) as separate real variables."
        )


class Constraint(Prior):
    """A prior that is the indicator of a convex set; ``prox`` is the projection."""

    has_prox = True

    def project(self, x) -> jax.Array:
        """The Euclidean projection onto the set (override in subclasses)."""
        raise NotImplementedError

    def prox(self, x, step=1.0):
        """The projection (the step of an indicator's prox does not matter)."""
        return self.project(jnp.asarray(x))


class NonNegative(Constraint):
    """``x >= 0``; projection ``max(x, 0)``.

    Example:
        >>> import jax.numpy as jnp, calcil as cc
        >>> cc.priors.NonNegative().project(jnp.array([-1.0, 2.0])).tolist()
        [0.0, 2.0]
    """

    def __init__(self):
        super().__init__("nonnegative")

    def value(self, x):
        _require_real(self, x)
        return _indicator(x >= 0)

    def project(self, x):
        _require_real(self, x)
        return jnp.maximum(x, 0)


class Box(Constraint):
    """``lo <= x <= hi`` (scalars or arrays broadcasting with ``x``); projection ``clip``.

    Example:
        >>> import jax.numpy as jnp, calcil as cc
        >>> cc.priors.Box(0.0, 1.0).project(jnp.array([-1.0, 0.5, 3.0])).tolist()
        [0.0, 0.5, 1.0]
    """

    lo: jax.Array
    hi: jax.Array

    def __init__(self, lo=0.0, hi=1.0):
        self.lo, self.hi = jnp.asarray(lo), jnp.asarray(hi)
        if jnp.any(self.lo > self.hi):
            raise ValueError(f"Box needs lo <= hi, got lo={lo} and hi={hi}")
        super().__init__("box")

    def value(self, x):
        _require_real(self, x)
        return _indicator((x >= self.lo) & (x <= self.hi))

    def project(self, x):
        _require_real(self, x)
        return jnp.clip(x, self.lo, self.hi).astype(x.dtype)


class Simplex(Constraint):
    """``x >= 0`` and ``sum(x) = total`` (a PSF that conserves energy).

    Projection by sorting (Held et al. 1974; Duchi et al. 2008): ``max(x - theta, 0)`` with
    the threshold ``theta`` that makes the sum ``total``. All elements of ``x`` form one simplex.

    Example:
        >>> import jax.numpy as jnp, calcil as cc
        >>> cc.priors.Simplex().project(jnp.array([2.0, 0.0])).tolist()
        [1.0, 0.0]
    """

    total: float = static_field()

    def __init__(self, total: float = 1.0):
        if not total > 0:
            raise ValueError(f"Simplex total must be positive, got {total}")
        self.total = float(total)
        super().__init__("simplex")

    def value(self, x):
        _require_real(self, x)
        tol = _tolerance(x) * self.total
        return _indicator((x >= 0).all() & (jnp.abs(jnp.sum(x) - self.total) <= tol))

    def project(self, x):
        _require_real(self, x)
        v = x.ravel()
        u = jnp.sort(v)[::-1]
        css = jnp.cumsum(u) - self.total
        k = jnp.arange(1, v.size + 1, dtype=x.dtype)
        rho = jnp.sum(u - css / k > 0)
        theta = css[rho - 1] / rho.astype(x.dtype)
        return jnp.maximum(x - theta, 0)


class Support(Constraint):
    """``x = 0`` outside a boolean ``mask`` (object support); projection ``x * mask``.

    Real or complex. Example:
        >>> import jax.numpy as jnp, calcil as cc
        >>> cc.priors.Support(jnp.array([True, False])).project(jnp.array([3.0, 4.0])).tolist()
        [3.0, 0.0]
    """

    mask: jax.Array

    def __init__(self, mask):
        self.mask = jnp.asarray(mask).astype(bool)
        super().__init__("support")

    def _check(self, x):
        try:
            jnp.broadcast_shapes(x.shape, self.mask.shape)
        except ValueError:
            raise ValueError(
                f"Support mask of shape {self.mask.shape} does not broadcast with x of shape "
                f"{x.shape}"
            ) from None

    def value(self, x):
        self._check(x)
        return _indicator(self.mask | (x == 0))

    def project(self, x):
        self._check(x)
        return jnp.where(self.mask, x, jnp.zeros((), x.dtype))

"""A prior known through a denoiser: plug-and-play (PnP) and regularisation by denoising (RED).

``Denoiser(fn, sigma)`` wraps any ``fn(x, sigma) -> x`` of the same shape: a TV prox, a
non-local means, a flax network's ``apply`` closed over its parameters.

- **Plug-and-play**: ``prox(x, step) = fn(x, sigma)``. A proximal method then alternates a
  gradient step on the data term with the denoiser (:class:`~calcil.ProximalGradient` gives
  PnP-FISTA). The strength is set by ``sigma`` alone: the step is not passed on.
- **RED** (Romano, Elad and Milanfar 2017): in :class:`~calcil.GradientSolver` the prior acts
  through its gradient ``x - fn(x, sigma)`` (``conj`` of JAX's gradient for complex ``x``, as
  for every variable), the gradient of ``R(x) = 0.5 Re<x, x - fn(x, sigma)>`` when ``fn`` is
  locally homogeneous with a symmetric Jacobian. That value is what the history logs; the
  gradient is the RED one whatever ``fn`` is (``fn`` is not differentiated).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from calcil._internal.struct import static_field
from calcil.priors.base import Prior

__all__ = ["Denoiser"]


class Denoiser(Prior):
    """The prior of a denoiser ``fn(x, sigma) -> x`` (see the module docstring).

    Args:
        fn: the denoiser; it must return an array of ``x``'s shape.
        sigma: its strength (a leaf: traceable), in the units ``fn`` expects (often the
            noise standard deviation it removes).

    Example:
        >>> import jax.numpy as jnp, calcil as cc
        >>> shrink = cc.priors.Denoiser(lambda x, s: x / (1 + s), sigma=1.0)
        >>> shrink.prox(jnp.array([2.0, 4.0]), step=0.1).tolist()     # fn(x, sigma)
        [1.0, 2.0]
        >>> float(shrink(jnp.array([2.0, 4.0])))             # 0.5 <x, x - fn(x)> = 0.25 * 20
        5.0
    """

    fn: Callable = static_field()
    sigma: jax.Array
    has_prox = True

    def __init__(self, fn: Callable, sigma):
        if not callable(fn):
            raise TypeError(f"Denoiser needs a function fn(x, sigma) -> x, got {fn!r}")
        self.fn, self.sigma = fn, jnp.asarray(sigma)
        super().__init__("denoiser")

    def _denoise(self, x):
        out = jnp.asarray(self.fn(x, self.sigma))
        if out.shape != x.shape:
            raise ValueError(
                f"Denoiser: fn(x, sigma) must return an array of x's shape {x.shape}, but "
                f"returned {out.shape} ({getattr(self.fn, '__name__', self.fn)!r}). A network "
                "that works on batches needs x[None] in and out[0] back, inside fn."
            )
        return out.astype(x.dtype)

    def prox(self, x, step):
        return self._denoise(jnp.asarray(x))

    def value(self, x):
        return _red(self, x)


@jax.custom_vjp
def _red(prior, x):
    return _red_value(x, prior._denoise(x))


def _red_value(x, denoised):
    return 0.5 * jnp.sum(jnp.real(jnp.conj(x) * (x - denoised)))


def _red_forward(prior, x):
    denoised = prior._denoise(x)
    return _red_value(x, denoised), (prior, x - denoised)


def _red_backward(saved, g):
    prior, residual = saved
    zeros = jax.tree_util.tree_map(jnp.zeros_like, prior)
    # JAX's gradient of a real function of complex x is the conjugate of the ascent direction
    return zeros, (g * jnp.conj(residual)).astype(residual.dtype)


_red.defvjp(_red_forward, _red_backward)

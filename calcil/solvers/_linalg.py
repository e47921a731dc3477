"""Linear algebra on parameters held as the flat list of their pytree leaves.

Inner products are the real inner product ``Re <a, b> = Re sum(conj(a) b)`` summed over all
leaves, under which a complex variable is a pair of real ones and ``conj(jax.grad(f))`` is the
gradient. ``affine_defect`` measures how far a forward model is from an affine map.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def conj(leaves):
    """Conjugate the complex leaves: ``conj(jax.grad(f))`` is the gradient under ``Re<., .>``."""
    return [jnp.conj(g) if jnp.iscomplexobj(g) else g for g in leaves]


def vdot(a, b):
    """``Re <a, b>`` summed over matching lists of leaves (a real scalar)."""
    return sum(jnp.sum(jnp.real(jnp.conj(x) * y)) for x, y in zip(a, b, strict=True))


def norm(leaves):
    return jnp.sqrt(vdot(leaves, leaves))


def axpy(alpha, x, y):
    """``alpha x + y`` leaf by leaf, keeping each leaf's dtype (no silent upcast)."""
    return [(alpha * xi + yi).astype(yi.dtype) for xi, yi in zip(x, y, strict=True)]


def real_dtype(leaves):
    """The real dtype of the solver's scalars: float32 for float32/complex64 parameters."""
    return jnp.result_type(*(jnp.finfo(x.dtype).dtype for x in leaves))


def random_like(leaves, seed=0):
    """Standard normal leaves drawn on the host (complex: unit variance over both parts).

    NumPy, not ``jax.random``: these directions are drawn once per run, and compiling
    threefry would cost more than the whole check on small problems.
    """
    rng = np.random.default_rng(seed)
    out = []
    for x in leaves:
        r = rng.standard_normal(x.shape)
        if jnp.iscomplexobj(x):
            r = (r + 1j * rng.standard_normal(x.shape)) / np.sqrt(2)
        out.append(jnp.asarray(r, x.dtype))
    return out


def _affine_defect(forward, treedef, leaves, data, u, v):
    """``||F(x0 + a u + b v) - F(x0) - a dF(u) - b dF(v)|| / (||a dF(u)|| + ||b dF(v)||)``.

    ``dF(u) = F(x0 + u) - F(x0)``; random ``u``, ``v`` scaled like each leaf of ``x0``. It is
    rounding-small exactly when ``F`` is affine (over the reals) along these directions.
    """

    def F(ls):
        return jax.tree_util.tree_leaves(forward(jax.tree_util.tree_unflatten(treedef, ls), data))

    scale = [jnp.where(jnp.any(x != 0), jnp.sqrt(jnp.mean(jnp.abs(x) ** 2)), 1.0) for x in leaves]
    u = [(s * r).astype(x.dtype) for s, r, x in zip(scale, u, leaves, strict=True)]
    v = [(s * r).astype(x.dtype) for s, r, x in zip(scale, v, leaves, strict=True)]
    a, b = 0.75, -1.25
    f0 = F(leaves)
    du = [p - q for p, q in zip(F(axpy(1.0, u, leaves)), f0, strict=True)]
    dv = [p - q for p, q in zip(F(axpy(1.0, v, leaves)), f0, strict=True)]
    both = F(axpy(a, u, axpy(b, v, leaves)))
    defect = [w - q - a * p - b * r for w, q, p, r in zip(both, f0, du, dv, strict=True)]
    size = norm([a * p for p in du]) + norm([b * r for r in dv])
    return norm(defect) / jnp.maximum(size, jnp.finfo(size.dtype).tiny)


_affine_defect_jit = jax.jit(_affine_defect, static_argnums=(0, 1))


def affine_defect(forward, treedef, leaves, data) -> float:
    """The relative deviation of ``forward`` from an affine map (see ``_affine_defect``)."""
    u, v = random_like(leaves, 1), random_like(leaves, 2)
    return float(_affine_defect_jit(forward, treedef, leaves, data, u, v))


def affine_tolerance(leaves):
    """Relative defect above which a forward model counts as nonlinear: ``10 sqrt(eps)``."""
    return 10 * float(jnp.sqrt(jnp.finfo(real_dtype(leaves)).eps))

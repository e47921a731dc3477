"""Helpers shared by the solvers (parameter checks; the ProximalGradient and ConjugateGradient
linear algebra).

Parameters are handled as the flat list of their pytree leaves; inner products are the real
inner product ``Re <a, b> = Re sum(conj(a) b)`` summed over all leaves, under which a complex
variable is a pair of real ones and ``conj(jax.grad(f))`` is the gradient.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from calcil._internal.struct import short_repr
from calcil.losses import L2, LossSum, WeightedL2, WeightedLoss
from calcil.objective import leaf_paths
from calcil.priors.base import PriorSum, Weighted
from calcil.priors.norms import L2 as L2Prior


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


def flatten_params(solver, init):
    """``(leaves, treedef)`` of ``init``; every leaf must be a float or complex array."""
    leaves, treedef = jax.tree_util.tree_flatten(init)
    leaves = [jnp.asarray(x) for x in leaves]
    if not leaves:
        raise ValueError(f"{solver}: init has no arrays to optimise")
    bad = [
        f"{p} ({x.dtype})"
        for p, x in zip(leaf_paths(init), leaves, strict=True)
        if not jnp.issubdtype(x.dtype, jnp.inexact)
    ]
    if bad:
        raise ValueError(
            f"{solver} optimises float or complex arrays (gradients of integer or boolean "
            f"arrays are not defined), but these parameters are not: {', '.join(bad)}. Cast "
            "them to float32 in init (e.g. jnp.asarray(x, jnp.float32); complex64 for fields), "
            "or keep integer constants out of the parameters (in the forward model)."
        )
    return leaves, treedef


def reject_batches(solver, batch_size, why):
    if batch_size is not None:
        raise ValueError(
            f"{solver} uses all the data at every step ({why}); got batch_size={batch_size!r}. "
            "Leave batch_size=None, or use cc.GradientSolver for mini-batches."
        )


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


def _negative(weight):
    try:
        return bool(jnp.any(jnp.asarray(weight) < 0))
    except jax.errors.ConcretizationTypeError:  # a traced weight: cannot tell, assume fine
        return False


def nonquadratic_loss(loss):
    """``None`` when ``loss`` is a convex quadratic (L2-type), else why it is not."""
    if isinstance(loss, L2 | WeightedL2):
        return None
    if isinstance(loss, WeightedLoss):
        if _negative(loss.weight):
            return f"its weight {short_repr(loss.weight)} is negative"
        return nonquadratic_loss(loss.loss)
    if isinstance(loss, LossSum):
        reasons = [r for r in map(nonquadratic_loss, loss.losses) if r is not None]
        return reasons[0] if reasons else None
    return f"{type(loss).__name__} is not quadratic"


def nonquadratic_prior(prior):
    """``None`` when ``prior`` is a convex quadratic (weighted L2 priors), else why not."""
    if isinstance(prior, L2Prior):
        return None
    if isinstance(prior, Weighted):
        if _negative(prior.weight):
            return f"its weight {short_repr(prior.weight)} is negative"
        return nonquadratic_prior(prior.prior)
    if isinstance(prior, PriorSum):
        reasons = [r for r in map(nonquadratic_prior, prior.priors) if r is not None]
        return reasons[0] if reasons else None
    return f"{type(prior).__name__} is not quadratic"


def prior_leaves(objective, init, solver):
    """For every leaf of ``init``: the path of the one prior on it, or ``None``.

    A prior on ``"net"`` covers every leaf below it; a leaf covered by two priors is an error
    (a proximal step applies one prox per variable).
    """
    paths = leaf_paths(init)
    owner: list[str | None] = [None] * len(paths)
    for path in objective.priors:
        hits = [i for i, p in enumerate(paths) if p == path or p.startswith(path + "/")]
        if not hits:
            raise ValueError(
                f"the prior on {path!r} matches no parameter; the parameters have paths "
                f"{paths}. Paths are '/'-joined keys into the parameter tree."
            )
        for i in hits:
            if owner[i] is not None:
                raise ValueError(
                    f"{solver}: parameter {paths[i]!r} is covered by two priors, on "
                    f"{owner[i]!r} and on {path!r}; a proximal step needs one prox per "
                    "variable. Give each variable one prior, or use cc.GradientSolver."
                )
            owner[i] = path
    return tuple(owner)

"""What a solver requires of its inputs: float parameters, full batches, one prior per
variable. Each check raises a ``ValueError`` that says what to change. (Whether a loss or a
prior is a convex quadratic, each term says itself: ``term.not_quadratic()``.)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from calcil.objective import leaf_paths
from calcil.solvers._linalg import affine_defect, affine_tolerance


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


def require_affine(solver, objective, treedef, leaves, data, why):
    """A ``ValueError`` unless the forward model is affine in the parameters (checked on
    random directions, :func:`~calcil.solvers._linalg.affine_defect`); ``why`` says what the
    solver does that needs it."""
    defect = affine_defect(objective.forward, treedef, leaves, data)
    tolerance = affine_tolerance(leaves)
    if not defect <= tolerance:
        raise ValueError(
            f"{solver} {why}, but the forward model is not linear (affine) in the parameters: "
            f"on random directions it deviates from linearity by {defect:.2g} (relative; "
            f"tolerance {tolerance:.1g}). Use cc.ProximalGradient or cc.GradientSolver for "
            "nonlinear models."
        )

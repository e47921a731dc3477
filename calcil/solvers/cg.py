"""ConjugateGradient: linear least squares (linear forward, L2 loss, L2 priors) by CG."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from calcil.objective import Objective, select
from calcil.solvers import _common as C
from calcil.solvers import _gram
from calcil.solvers._loop import IterativeSolver

__all__ = ["ConjugateGradient"]


@dataclasses.dataclass(frozen=True)
class _Plan:
    treedef: Any
    fast: _gram.FastPath | None = None
    axis: str | None = None


class ConjugateGradient(IterativeSolver):
    """Minimise a quadratic objective by conjugate gradients on its normal equations.

    The objective must be a convex quadratic: an affine forward model ``A x + b`` (checked
    numerically on random directions when the run starts), an L2-type loss (``L2``,
    ``WeightedL2``, their non-negative weighted sums) and L2 priors (``w * cc.priors.L2()``)
    or none. With ``W`` the loss weights and ``lam`` the prior weights, the minimiser solves
    the normal equations ``H x = A^H W (y - b)``, ``H = A^H W A + lam I``, here written as
    ``grad(x) = 0`` with ``grad = conj(jax.grad(objective))``. Each step, from ``x_k``::

        r_k = -grad(x_k)                                   (the true residual)
        p_k = r_k + (|r_k|^2 / |r_{k-1}|^2) p_{k-1}        (p_0 = r_0)
        x_{k+1} = x_k + (|r_k|^2 / Re<p_k, H p_k>) p_k

    ``H p`` is a Hessian-vector product (``jax.linearize`` of the gradient: exact, since the
    objective is quadratic), so no adjoint has to be written and complex variables work
    under the real inner product ``Re<u, v>``. In exact arithmetic CG ends in at most as
    many steps as ``H`` has distinct eigenvalues; the residual is recomputed from the
    gradient every step, so rounding does not accumulate in it. At a zero residual the step
    is zero (no division by zero). The history records every objective term,
    ``cg/residual`` (``|r_k|``) and ``cg/alpha`` (the step length).

    Args:
        objective: the :class:`~calcil.Objective`; anything not quadratic is a ``ValueError``.
        fast_path: the Gram fast path for an ``L2`` loss of a linear forward model, as in
            :class:`~calcil.GradientSolver` (``solver.fast_path_info`` after ``run``).

    Example:
        >>> import jax.numpy as jnp, calcil as cc
        >>> A = cc.operators.Diagonal(jnp.array([1.0, 2.0]))
        >>> obj = cc.Objective(lambda p, b: A(p["x"]), cc.losses.L2("y"),
        ...                    priors={"x": cc.priors.L2()})
        >>> y = jnp.array([2.0, 5.0])
        >>> result = cc.ConjugateGradient(obj).run({"x": jnp.zeros(2)}, {"y": y},
        ...                                       iterations=3, progress=False)
        >>> result.params["x"].round(4).tolist()      # d y / (d^2 + 1)
        [1.0, 2.0]
    """

    def __init__(self, objective: Objective, fast_path: bool = True):
        super().__init__()
        self.fast_path = bool(fast_path)
        self.fast_path_info: str | None = None
        if not isinstance(objective, Objective):
            raise TypeError(f"ConjugateGradient needs a cc.Objective, got {objective!r}")
        what = (
            "ConjugateGradient solves linear least squares (a linear forward model, an "
            "L2-type loss, L2 priors)"
        )
        advice = "use cc.ProximalGradient or cc.GradientSolver"
        why = C.nonquadratic_loss(objective.loss)
        if why is not None:
            raise ValueError(
                f"{what}: the loss {objective.loss!r} is not a convex quadratic ({why}); {advice}."
            )
        for path, prior in objective.priors.items():
            why = C.nonquadratic_prior(prior)
            if why is not None:
                raise ValueError(
                    f"{what}: the prior {prior!r} on {path!r} is not a convex quadratic "
                    f"({why}); {advice}."
                )
        self.objective = objective

    def _prepare(self, init, data, batch_size, key, axis=None):
        name = "ConjugateGradient"
        C.reject_batches(name, batch_size, "CG's conjugate directions belong to one fixed system")
        leaves, treedef = C.flatten_params(name, init)
        for path in self.objective.priors:  # a clear error for a prior on a missing path
            select(init, path)
        defect = C.affine_defect(self.objective.forward, treedef, leaves, data)
        if not defect <= C.affine_tolerance(leaves):
            raise ValueError(
                "ConjugateGradient solves linear least squares, but the forward model is not "
                f"linear (affine) in the parameters: on random directions it deviates from "
                f"linearity by {defect:.2g} (relative; tolerance "
                f"{C.affine_tolerance(leaves):.1g}). Use cc.ProximalGradient or "
                "cc.GradientSolver for nonlinear models."
            )
        fast, data = _gram.resolve(self, init, data, batch_size, axis)
        real = C.real_dtype(leaves)
        inner = {"p": [jnp.zeros_like(x) for x in leaves], "rs": jnp.zeros((), real)}
        return _Plan(treedef, fast, axis), inner, data

    def _step(self, plan, params, inner, step, data, report):
        treedef = plan.treedef
        objective = self.objective

        def total(leaves):
            params = jax.tree_util.tree_unflatten(treedef, leaves)
            return _gram.evaluate(objective, plan.fast, params, data, plan.axis)

        def gradient(leaves):
            (value, terms), g = jax.value_and_grad(total, has_aux=True)(leaves)
            return C.conj(g), (value, terms)

        x = jax.tree_util.tree_leaves(params)
        g, hessian, (value, terms) = jax.linearize(gradient, x, has_aux=True)
        rs_prev = inner["rs"]
        real = rs_prev.dtype
        r = [-gi for gi in g]
        rs = C.vdot(r, r).astype(real)
        beta = jnp.where(rs_prev > 0, rs / jnp.where(rs_prev > 0, rs_prev, 1), 0)
        p = C.axpy(beta, inner["p"], r)
        curvature = C.vdot(p, hessian(p)).astype(real)
        ok = (rs > 0) & (curvature > 0)
        alpha = jnp.where(ok, rs / jnp.where(ok, curvature, 1), 0)
        new = C.axpy(alpha, p, x)
        outputs = {"loss/total": value, **terms, "cg/residual": jnp.sqrt(rs), "cg/alpha": alpha}
        return jax.tree_util.tree_unflatten(treedef, new), {"p": p, "rs": rs}, outputs

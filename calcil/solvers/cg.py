"""ConjugateGradient: linear least squares (linear forward, L2 loss, L2 priors) by CG."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from calcil.objective import Objective, select
from calcil.solvers import _fast_path
from calcil.solvers._linalg import axpy, conj, real_dtype, vdot
from calcil.solvers._loop import IterativeSolver
from calcil.solvers._requirements import flatten_params, reject_batches, require_affine

__all__ = ["ConjugateGradient"]


@dataclasses.dataclass(frozen=True)
class _Plan:
    treedef: Any
    tol: float
    fast: _fast_path.FastPath | None = None
    axis: str | None = None
    real: str = "float32"
    fast_path: str = dataclasses.field(default="", compare=False)  # the outcome, for Result


_DEFAULT_TOL = {"float32": 1e-6, "float64": 1e-12}
_CONVERGED, _STALLED = 1, 2


class ConjugateGradient(IterativeSolver):
    """Minimise a quadratic objective by conjugate gradients on its normal equations.

    The objective must be a convex quadratic: an affine forward model ``A x + b`` (checked
    numerically on random directions when the run starts), an L2-type loss (``L2``,
    ``WeightedL2``, their non-negative weighted sums) and L2 priors (``w * cc.priors.L2()``)
    or none. With ``W`` the loss weights and ``lam`` the prior weights, the minimiser solves
    the normal equations ``H x = c``, ``H = A^H W A + lam I``, ``c = A^H W (y - b)``, here
    written as ``grad(x) = 0`` with ``grad = conj(jax.grad(objective))``. Each step, from
    ``x_k``::

        r_k = -grad(x_k)                                      (the true residual c - H x_k)
        p_k = r_k + (|r_k|^2 / |r_{k-1}|^2) p_{k-1}                             (p_0 = r_0)
        x_{k+1} = x_k + (Re<r_k, p_k> / Re<p_k, H p_k>) p_k

    In exact arithmetic this is classical CG (``Re<r_k, p_k> = |r_k|^2``); with rounding, the
    step is the exact minimiser along ``p_k``, so a step never increases the objective and
    iterating past convergence cannot amplify rounding noise.
    ``H p`` is a Hessian-vector product (``jax.linearize`` of the gradient: exact, since the
    objective is quadratic), so no adjoint has to be written and complex variables work under
    the real inner product ``Re<u, v>``.

    The run stops as ``"converged"`` at the first step with ``|r_k| <= tol |c|`` (``|c|`` is
    the residual at ``x = 0``, computed once per run) and returns ``x_k``. It stops as
    ``"stalled"`` when it can make no progress at this precision: the curvature
    ``Re<p, H p> / |p|^2`` falls to rounding level (``<= eps`` times the largest seen), or
    the step ``|alpha p|`` to ``<= eps |x|``. Either the residual is at the rounding floor
    (``tol`` too small for the precision) or the system is singular or not positive definite
    (a forward model with a null space and no prior: add ``w * cc.priors.L2()``). The
    history records every objective term, ``cg/residual`` (``|r_k|``),
    ``cg/relative_residual`` (``|r_k| / |c|``) and ``cg/alpha`` (the step length).

    Args:
        objective: the :class:`~calcil.Objective`; anything not quadratic is a ``ValueError``.
        tol: relative residual at which the run converges; default ``1e-6`` for float32 and
            complex64 parameters, ``1e-12`` for float64 and complex128. Rounding limits what
            is reachable (about ``1e-7`` times the condition number of ``H`` in float32): a
            tolerance below that ends as ``"stalled"`` at the most accurate iterate.
        fast_path: the least-squares fast path for an ``L2`` loss of a linear forward model, as in
            :class:`~calcil.GradientSolver` (``result.fast_path`` says whether it applied).

    Example:
        >>> import jax.numpy as jnp, calcil as cc
        >>> A = cc.operators.Diagonal(jnp.array([1.0, 2.0]))
        >>> obj = cc.Objective(lambda p, b: A(p["x"]), cc.losses.L2("y"),
        ...                    priors={"x": cc.priors.L2()})
        >>> y = jnp.array([2.0, 5.0])
        >>> result = cc.ConjugateGradient(obj).run({"x": jnp.zeros(2)}, {"y": y},
        ...                                       iterations=100, progress=False)
        >>> result.params["x"].round(4).tolist(), result.status, result.steps   # d y / (d^2 + 1)
        ([1.0, 2.0], 'converged', 2)
    """

    def __init__(self, objective: Objective, tol: float | None = None, fast_path: bool = True):
        super().__init__()
        self.fast_path = bool(fast_path)
        if tol is not None and not (isinstance(tol, int | float) and 0 < tol < 1):
            raise ValueError(
                f"ConjugateGradient tol is the relative residual |r| / |c| at which it stops, a "
                f"number in (0, 1) such as 1e-6; got {tol!r}"
            )
        self.tol = None if tol is None else float(tol)
        if not isinstance(objective, Objective):
            raise TypeError(f"ConjugateGradient needs a cc.Objective, got {objective!r}")
        what = (
            "ConjugateGradient solves linear least squares (a linear forward model, an "
            "L2-type loss, L2 priors)"
        )
        advice = "use cc.ProximalGradient or cc.GradientSolver"
        why = objective.loss.not_quadratic()
        if why is not None:
            raise ValueError(
                f"{what}: the loss {objective.loss!r} is not a convex quadratic ({why}); {advice}."
            )
        for path, prior in objective.priors.items():
            why = prior.not_quadratic()
            if why is not None:
                raise ValueError(
                    f"{what}: the prior {prior!r} on {path!r} is not a convex quadratic "
                    f"({why}); {advice}."
                )
        self.objective = objective

    def _analyse(self, init, data, batch_size, axis=None, batched=False):
        name = "ConjugateGradient"
        reject_batches(name, batch_size, "CG's conjugate directions belong to one fixed system")
        leaves, treedef = flatten_params(name, init)
        self.objective.check_data(data)  # before anything is compiled
        for path in self.objective.priors:  # a clear error for a prior on a missing path
            select(init, path)
        require_affine(
            "ConjugateGradient",
            self.objective,
            treedef,
            leaves,
            data,
            "solves linear least squares",
        )
        fast, fixed, fast_path = _fast_path.analyse(
            self.fast_path, self.objective, init, data, batch_size, axis, batched
        )
        real = jnp.dtype(real_dtype(leaves)).name
        tol = self.tol if self.tol is not None else _DEFAULT_TOL[real]
        return _Plan(treedef, tol, fast, axis, real, fast_path), fixed

    def _initial(self, plan, fixed, run, init, data, key):
        zero = jnp.zeros((), plan.real)
        inner = {
            "p": [jnp.zeros_like(x) for x in jax.tree_util.tree_leaves(init)],
            "rs": zero,
            "cc": -jnp.ones((), plan.real),  # |c|^2, computed at the first step
            "curvature_max": zero,
        }
        return inner, _fast_path.fast_data(self.objective, plan.fast, fixed, data)

    def _step(self, plan, params, inner, step, data, report):
        treedef = plan.treedef
        objective = self.objective

        def total(leaves):
            params = jax.tree_util.tree_unflatten(treedef, leaves)
            return _fast_path.evaluate(objective, plan.fast, params, data, plan.axis)

        def gradient(leaves):
            (value, terms), g = jax.value_and_grad(total, has_aux=True)(leaves)
            return conj(g), (value, terms)

        x = jax.tree_util.tree_leaves(params)
        g, hessian, (value, terms) = jax.linearize(gradient, x, has_aux=True)
        real = inner["rs"].dtype
        eps = jnp.finfo(real).eps

        def residual_at_zero():
            c = gradient([jnp.zeros_like(xi) for xi in x])[0]
            return vdot(c, c).astype(real)

        cc = jax.lax.cond(inner["cc"] < 0, residual_at_zero, lambda: inner["cc"])
        r = [-gi for gi in g]
        rs = vdot(r, r).astype(real)
        converged = rs <= plan.tol**2 * cc
        rs_prev = inner["rs"]
        beta = jnp.where(rs_prev > 0, rs / jnp.where(rs_prev > 0, rs_prev, 1), 0)
        p = axpy(beta, inner["p"], r)
        pp = vdot(p, p).astype(real)
        curvature = vdot(p, hessian(p)).astype(real)
        rayleigh = curvature / jnp.where(pp > 0, pp, 1)
        curvature_max = jnp.maximum(inner["curvature_max"], rayleigh)
        ok = ~converged & (pp > 0) & (rayleigh > eps * curvature_max)
        alpha = jnp.where(ok, vdot(r, p).astype(real) / jnp.where(ok, curvature, 1), 0)
        moves = jnp.abs(alpha) * jnp.sqrt(pp) > eps * jnp.sqrt(vdot(x, x).astype(real))
        ok = ok & moves
        alpha = jnp.where(ok, alpha, 0)
        new = axpy(alpha, p, x)
        code = jnp.where(converged, _CONVERGED, jnp.where(ok, 0, _STALLED)).astype(jnp.int32)
        outputs = {
            "loss/total": value,
            **terms,
            "cg/residual": jnp.sqrt(rs),
            "cg/relative_residual": jnp.sqrt(rs / jnp.where(cc > 0, cc, 1)),
            "cg/alpha": alpha,
            "_stop": code,
        }
        inner = {"p": p, "rs": rs, "cc": cc, "curvature_max": curvature_max}
        return jax.tree_util.tree_unflatten(treedef, new), inner, outputs

    def _stop_reason(self, code, step, terms):
        rel = terms["cg/relative_residual"]
        if code == _CONVERGED:
            return "converged", f"relative residual {rel:.2e} <= tol at step {step}"
        return "stalled", (
            f"CG can make no progress at step {step}: the curvature Re<p, H p> along the "
            "search direction or the step has fallen to rounding level, with the relative "
            f"residual {rel:.2e} above tol. Either the residual is at the rounding floor of "
            "this precision (a smaller tol needs float64: jax.config.update('jax_enable_x64', "
            "True)) or the normal equations are singular or not positive definite (a forward "
            "model with a null space and no prior: add w * cc.priors.L2()). The parameters "
            "are the last iterate."
        )

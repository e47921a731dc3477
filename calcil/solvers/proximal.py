"""ProximalGradient: FISTA on the smooth data term plus the priors' proximal operators."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from calcil._internal.integers import as_count
from calcil.objective import Objective
from calcil.priors.transformed import Transformed
from calcil.solvers import _fast_path
from calcil.solvers._linalg import (
    affine_defect,
    affine_tolerance,
    axpy,
    conj,
    norm,
    random_like,
    real_dtype,
    vdot,
)
from calcil.solvers._loop import IterativeSolver
from calcil.solvers._requirements import flatten_params, prior_leaves, reject_batches

__all__ = ["ProximalGradient"]

SAFETY = 1.05  # step = 1 / (SAFETY L): power iteration approaches L from below
WARM_PROX_ITERATIONS = 5  # inner steps of an iterative prox (TV's FGP), warm-started


@dataclasses.dataclass(frozen=True)
class _Plan:
    """Static choices of a run: tree structure, each leaf's prior path, the step rule."""

    treedef: Any
    prox: tuple[str | None, ...]
    backtracking: bool
    fast: _fast_path.FastPath | None = None
    axis: str | None = None
    real: str = "float32"  # the dtype of the step size and momentum
    fast_path: str = dataclasses.field(default="", compare=False)  # the outcome, for Result


class ProximalGradient(IterativeSolver):
    """Minimise ``f(x) + g(x)`` by FISTA: smooth data term ``f``, priors ``g`` by their prox.

    ``f(x) = loss(forward(x, data), data)`` is differentiated by JAX; ``g`` is the sum of the
    objective's priors, each applied through its ``prox`` (soft thresholding for ``L1``,
    projection for constraints, FGP for ``TV``), so an ``L1`` prior gives exact zeros. Each
    step (Beck and Teboulle 2009), with ``s`` the step size::

        t_{k+1} = (1 + sqrt(1 + 4 t_k^2)) / 2,  t_0 = 1
        y_k     = x_k + ((t_k - 1) / t_{k+1}) (x_k - x_{k-1})
        x_{k+1} = prox_{s g}(y_k - s grad f(y_k))

    where ``grad f`` is ``conj(jax.grad(f))`` for complex variables. With ``restart`` the
    momentum is reset (``t = 1``) whenever the objective went up (O'Donoghue and Candes 2015);
    ``accelerated=False`` is plain proximal gradient (ISTA).

    Step size: ``step=`` fixes it. Otherwise ``s = 1 / (1.05 L)`` with ``L`` the largest
    eigenvalue of the Hessian of ``f`` at ``init`` (power iteration with Hessian-vector
    products, on the device; a later run on the same data arrays reuses it). For an L2-type
    loss (``L2``, ``WeightedL2``, their non-negative weighted sums) and an affine forward
    model, that Hessian is ``A^H W A`` everywhere, so ``L`` is the Lipschitz constant of
    ``grad f`` and the fixed step is the default (the forward model is tested for linearity
    on random directions).

    Other losses (``Poisson``, ``Amplitude``) and nonlinear forward models default to
    backtracking (Beck and Teboulle 2009), inside the compiled step (``lax.while_loop``): each
    iteration first tries ``growth`` times the previous step (at the start: the estimate above,
    or ``step``), then halves it, at most ``max_backtracks`` times, until
    ``f(x+) <= f(y) + Re<grad f(y), x+ - y> + ||x+ - y||^2 / (2 s)``. Where rounding hides
    the left side's change (float32 near convergence), the curvature term is measured with
    gradients instead, as in TFOCS. ``growth > 1`` lets the step grow again where the
    curvature drops (Poisson near zero counts); ``growth=1`` is the classic non-increasing
    rule. When no step passes from the extrapolated point ``y``, the iteration restarts from
    ``x`` without momentum (a Poisson loss can be far steeper just outside the constraint
    set than inside), and stays at ``x`` if that fails too.

    Every variable under a prior must have a prox (``prior.has_prox``) and one prior at most;
    variables without a prior take the identity prox. Constraints are indicators, so
    ``init`` must satisfy them (project it first). The history records every objective term,
    ``fista/step_size``, ``fista/momentum`` (``(t_k - 1) / t_{k+1}``) and, with backtracking,
    ``fista/backtracks``.

    Args:
        objective: the :class:`~calcil.Objective`; its priors must all have a prox.
        step: fixed step size (with ``backtracking=True``: the first step tried).
        backtracking: ``True``/``False`` forces the step rule; ``None`` chooses as above.
        accelerated: FISTA momentum (``False``: ISTA).
        restart: reset the momentum when the objective increases.
        power_iterations: Hessian-vector products for the estimate of ``L`` (with
            backtracking, which corrects the estimate, at most 10 are used).
        max_backtracks: halvings of the step per iteration at most.
        growth: factor on the previous step tried first when backtracking.
        fast_path: the least-squares fast path for an ``L2`` loss of a linear forward model, as in
            :class:`~calcil.GradientSolver` (``result.fast_path`` says whether it applied).
        prox_iterations: inner iterations of an iterative prox (``TV``'s FGP) per outer
            iteration; ``None`` uses the prior's own default (``TV(prox_iterations=50)``).
        warm_start: start each iterative prox from the dual variable the previous outer
            iteration ended with (carried in the solver state, so checkpoints hold it).
            On a 512^2 TV deconvolution, FISTA reaches a PSNR 0.1 dB below the minimiser's
            in 20 outer iterations with 3, 5, 10, 20 or 50 inner ones; warm-started with 5
            that takes 0.09 s against 0.46 s for 50 from zero, and 300 outer iterations
            reach the minimum to a relative 1e-5 (3 inner: 0.08 s, but twice the objective
            gap after 100 iterations).

    Example:
        >>> import jax.numpy as jnp, calcil as cc
        >>> obj = cc.Objective(lambda p, b: p["x"], cc.losses.L2("y"),
        ...                    priors={"x": cc.priors.L1()})
        >>> y = jnp.array([3.0, 0.5, -2.0])
        >>> result = cc.ProximalGradient(obj).run({"x": jnp.zeros(3)}, {"y": y},
        ...                                      iterations=30, progress=False)
        >>> result.params["x"].round(4).tolist()      # soft thresholding of y: exact zero
        [2.0, 0.0, -1.0]
    """

    def __init__(
        self,
        objective: Objective,
        step: float | None = None,
        backtracking: bool | None = None,
        accelerated: bool = True,
        restart: bool = True,
        power_iterations: int = 100,
        max_backtracks: int = 30,
        growth: float = 1.25,
        fast_path: bool = True,
        prox_iterations: int | None = WARM_PROX_ITERATIONS,
        warm_start: bool = True,
    ):
        super().__init__()
        self.fast_path = bool(fast_path)
        if prox_iterations is not None:
            as_count("prox_iterations", prox_iterations, 1, "a positive integer")
        self.prox_iterations, self.warm_start = prox_iterations, bool(warm_start)
        if not isinstance(objective, Objective):
            raise TypeError(f"ProximalGradient needs a cc.Objective, got {objective!r}")
        if step is not None and not step > 0:
            raise ValueError(f"step must be positive, got {step!r}")
        if not growth >= 1:
            raise ValueError(f"growth must be at least 1 (1: the step never grows), got {growth}")
        counts = {"power_iterations": power_iterations, "max_backtracks": max_backtracks}
        for name, value in counts.items():
            as_count(name, value, 1, "a positive integer")
        for path, prior in objective.priors.items():
            transformed = [t for _, t in prior.parts() if isinstance(t, Transformed)]
            if transformed:
                raise ValueError(
                    f"ProximalGradient applies each prior through its prox, but the prior on "
                    f"{path!r} is a prior of a transformed variable, {transformed[0]!r}: the "
                    "prox of g(C x) has no closed form for a general C. Use cc.ADMM or "
                    "cc.PDHG (which split it off as z = C x), cc.GradientSolver (which "
                    "differentiates it), "
                    "or a prior with a prox on the variable itself (e.g. cc.priors.TV() "
                    "instead of L21() @ FiniteDifference(...))."
                )
            if not prior.has_prox:
                raise ValueError(
                    f"ProximalGradient applies each prior through its prox, but the prior on "
                    f"{path!r}, {prior!r}, has none (a sum of priors has no prox in general). "
                    "Keep one prior with a prox per variable, or use cc.GradientSolver."
                )
        self.objective = objective
        self.step, self.backtracking = step, backtracking
        self.accelerated, self.restart = bool(accelerated), bool(restart)
        self.power_iterations, self.max_backtracks = power_iterations, max_backtracks
        self.growth = float(growth)
        self._estimators: dict = {}  # (plan, batched) -> compiled step-size estimate
        self._estimate = None  # (key, arrays it was computed from, step size): the last one
        self._prior_values: dict = {}

    # ------------------------------------------------------------------ pieces
    def _smooth(self, treedef, fast, leaves, data, axis=None):
        """The data term ``f``."""
        params = jax.tree_util.tree_unflatten(treedef, leaves)
        return _fast_path.data_term(self.objective, fast, params, data, axis)

    def _lipschitz_impl(self, treedef, fast, iterations, leaves, data, v0):
        """Largest eigenvalue of the Hessian of ``f`` at ``leaves``, by power iteration."""

        def gradient(ls):
            return conj(jax.grad(self._smooth, argnums=2)(treedef, fast, ls, data))

        _, hvp = jax.linearize(gradient, leaves)

        def body(_, v):
            w = hvp(v)
            n = norm(w)
            return [(wi / jnp.where(n > 0, n, 1)).astype(wi.dtype) for wi in w]

        n0 = norm(v0)
        v = [(vi / n0).astype(vi.dtype) for vi in v0]
        v = jax.lax.fori_loop(0, iterations, body, v)
        return norm(hvp(v))

    def _prox(self, plan, leaves, s, states):
        """Each leaf's prox at step ``s``, warm-started from ``states``: ``(leaves, states)``."""
        out, new = list(leaves), list(states)
        for i, path in enumerate(plan.prox):
            if path is not None:
                prior = self.objective.priors[path]
                state = states[i] if self.warm_start else prior.prox_state(leaves[i])
                z, new[i] = prior.warm_prox(leaves[i], s, state, self.prox_iterations)
                out[i] = z.astype(leaves[i].dtype)
        return out, new

    # ------------------------------------------------------------------ hooks
    def _analyse(self, init, data, batch_size, axis=None, batched=False):
        name = "ProximalGradient"
        reject_batches(name, batch_size, "FISTA's momentum and step assume the full objective")
        leaves, treedef = flatten_params(name, init)
        self.objective.check_data(data)  # before anything is compiled
        prox = prior_leaves(self.objective, init, name)
        backtracking = self.backtracking
        if backtracking is None:
            backtracking = self.objective.loss.not_quadratic() is not None
            if not backtracking:
                defect = affine_defect(self.objective.forward, treedef, leaves, data)
                backtracking = not defect <= affine_tolerance(leaves)
        fast, fixed, fast_path = _fast_path.analyse(
            self.fast_path, self.objective, init, data, batch_size, axis, batched
        )
        real = jnp.dtype(real_dtype(leaves)).name
        plan = _Plan(treedef, prox, bool(backtracking), fast, axis, real, fast_path)
        return plan, fixed

    def _run_constants(self, plan, fixed, init, data, batched):
        """The first step size, checked feasibility of ``init`` (per run)."""
        self._check_feasible(init, batched)
        return {"step_size": self._step_size(plan, fixed, init, data, batched)}

    def _check_feasible(self, init, batched):
        if not self.objective.priors:
            return
        key = "batched" if batched else "single"
        if key not in self._prior_values:
            fn = self.objective.prior_terms
            self._prior_values[key] = jax.jit(jax.vmap(fn) if batched else fn)
        for path, value in jax.device_get(self._prior_values[key](init)).items():
            if not np.all(np.isfinite(value)):
                raise ValueError(
                    f"ProximalGradient: the prior term {path!r} is {value} at init: init "
                    "violates a constraint. Start from a feasible point, e.g. "
                    "init = {..., 'x': prior.project(x0)}."
                )

    def _step_size(self, plan, fixed, init, data, batched):
        """``1 / (1.05 L)`` (``L`` by power iteration, reused while the data, and with
        backtracking the init, are the same arrays), or the given step; with backtracking
        divided by ``growth`` (the first iteration tries ``growth`` times it)."""
        real = jnp.dtype(plan.real)
        problems = jax.tree_util.tree_leaves(init)[0].shape[:1] if batched else ()
        if self.step is not None:
            s = jnp.full(problems, self.step, real)
        else:
            watched = jax.tree_util.tree_leaves(data)
            if plan.backtracking:
                watched += jax.tree_util.tree_leaves(init)
            immutable = all(isinstance(x, jax.Array) for x in watched)
            key = (plan, batched, tuple(map(id, watched)))
            cached = self._estimate
            if immutable and cached is not None and cached[0] == key:
                s = cached[2]
            else:
                s = self._estimator(plan, batched)(fixed, init, data).astype(real)
                # holding the arrays keeps their ids from being reused by others
                self._estimate = (key, watched, s) if immutable else None
        if plan.backtracking:  # the first iteration tries growth * step_size: exactly s
            s = (s / self.growth).astype(real)
        return s

    def _estimator(self, plan, batched):
        """``(fixed, init, data) -> 1 / (1.05 L)`` compiled once per plan (and batching)."""
        key = (plan, batched)
        if key not in self._estimators:
            iterations = min(self.power_iterations, 10) if plan.backtracking else None
            iterations = iterations or self.power_iterations

            def estimate(fixed, init, data, v0):
                leaves = jax.tree_util.tree_leaves(init)
                if plan.fast is not None:
                    data = _fast_path.fast_data(self.objective, plan.fast, fixed, data)
                lip = self._lipschitz_impl(plan.treedef, plan.fast, iterations, leaves, data, v0)
                lip = lip.astype(plan.real)
                return jnp.where(jnp.isfinite(lip) & (lip > 0), 1 / (SAFETY * lip), 1)

            if batched:
                estimate = jax.vmap(estimate, in_axes=(None, 0, 0, 0))
            compiled = jax.jit(estimate)

            def run(fixed, init, data):
                return compiled(fixed, init, data, random_like(jax.tree_util.tree_leaves(init)))

            self._estimators[key] = run
        return self._estimators[key]

    def _initial(self, plan, fixed, run, init, data, key):
        leaves = jax.tree_util.tree_leaves(init)
        real = jnp.dtype(plan.real)
        inner = {
            "x_prev": [jnp.array(x) for x in leaves],
            "t": jnp.ones((), real),
            "step_size": jnp.asarray(run["step_size"], real),
            "value_prev": jnp.full((), jnp.inf, real),
            "prox": [
                None if path is None else self.objective.priors[path].prox_state(x)
                for path, x in zip(plan.prox, leaves, strict=True)
            ],
        }
        return inner, _fast_path.fast_data(self.objective, plan.fast, fixed, data)

    def _search(self, plan, f, point, s0, states):
        """Backtracking from ``point``: ``(s, z, backtracks, ok, prox states)``, halving ``s``
        from ``s0`` (every candidate's prox warm-started from ``states``).

        Accepts ``q <= ||z - point||^2 / (2 s)`` with ``q = f(z) - f(p) - Re<grad f(p), z - p>``.
        Near convergence that difference of two large numbers is lost in rounding (float32),
        so there ``q`` is estimated as ``Re<grad f(z) - grad f(p), z - p> / 2`` (exact for
        quadratics, second order in general), as in TFOCS (Becker, Candes and Grant 2011).
        """
        value_and_grad = jax.value_and_grad(f)
        f_point, g = value_and_grad(point)
        g = conj(g)
        real = s0.dtype
        eps = jnp.finfo(real).eps

        def candidate(s):
            z, new = self._prox(plan, axpy(-s, g, point), s, states)
            fz, gz = value_and_grad(z)
            return z, fz.astype(real), conj(gz), new

        def accepted(s, z, fz, gz):
            d = [a - b for a, b in zip(z, point, strict=True)]
            q_values = fz - f_point - vdot(g, d)
            q_gradients = vdot([a - b for a, b in zip(gz, g, strict=True)], d) / 2
            rounding = 64 * eps * (jnp.abs(f_point) + jnp.abs(fz))
            q = jnp.where(jnp.abs(q_values) > rounding, q_values, q_gradients)
            return q <= vdot(d, d) / (2 * s)  # False for NaN

        def rejected(carry):
            s, z, fz, gz, _, n = carry
            return ~accepted(s, z, fz, gz) & (n < self.max_backtracks)

        def halve(carry):
            s, *_, n = carry
            return (s / 2, *candidate(s / 2), n + 1)

        carry = (s0, *candidate(s0), jnp.zeros((), jnp.int32))
        s, z, fz, gz, new, n = jax.lax.while_loop(rejected, halve, carry)
        return s, z, n, accepted(s, z, fz, gz), new

    def _step(self, plan, params, inner, step, data, report):
        x = jax.tree_util.tree_leaves(params)
        value, terms = _fast_path.evaluate(self.objective, plan.fast, params, data, plan.axis)
        t = inner["t"]
        if self.restart:
            t = jnp.where(value > inner["value_prev"], jnp.ones_like(t), t)
        if self.accelerated:
            t_next = (1 + jnp.sqrt(1 + 4 * t * t)) / 2
            beta = (t - 1) / t_next
        else:
            t_next, beta = t, jnp.zeros_like(t)
        y = axpy(beta, [a - b for a, b in zip(x, inner["x_prev"], strict=True)], x)

        def f(leaves):
            return self._smooth(plan.treedef, plan.fast, leaves, data, plan.axis)

        outputs = {"loss/total": value, **terms}
        states = inner["prox"]
        if plan.backtracking:
            s0 = inner["step_size"] * jnp.asarray(self.growth, t.dtype)
            s, z, n, ok, new = self._search(plan, f, y, s0, states)

            def from_x(_):  # the extrapolated point failed: a plain step from x instead
                s, z, m, ok, new = self._search(plan, f, x, s0, states)
                return s, z, n + m, ok, new

            # (from y = x the same search would only repeat)
            s, z, n, found, new = jax.lax.cond(
                ok | (beta == 0), lambda _: (s, z, n, ok, new), from_x, None
            )
            z = [jnp.where(found, a, b) for a, b in zip(z, x, strict=True)]  # else stay at x
            new = jax.tree_util.tree_map(lambda a, b: jnp.where(found, a, b), new, states)
            t_next = jnp.where(ok, t_next, jnp.ones_like(t_next))
            outputs["fista/backtracks"] = n
        else:
            s = inner["step_size"]
            gy = conj(jax.grad(f)(y))
            z, new = self._prox(plan, axpy(-s, gy, y), s, states)
        outputs["fista/step_size"] = s
        outputs["fista/momentum"] = beta
        inner = {
            "x_prev": x,
            "t": t_next,
            "step_size": s,
            "value_prev": value.astype(t.dtype),
            "prox": new,
        }
        return jax.tree_util.tree_unflatten(plan.treedef, z), inner, outputs

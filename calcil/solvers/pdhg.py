"""PDHG (Chambolle-Pock): non-smooth data terms and constraints on transformed variables.

For ``F_0(A x) + sum_i g_i(C_i x) + h(x)`` with ``F_0 = loss(. + b)`` and every term known
through its prox, the primal-dual hybrid gradient method (Chambolle and Pock 2011, theta = 1)
keeps a dual variable per dualised term and iterates::

    y_0  = v_0 - s prox_{loss / s}(v_0 / s + b) + s b,   v_0 = y_0 + s A xb
    y_i  = v_i - s prox_{g_i / s}(v_i / s),               v_i = y_i + s C_i xb
    x'   = prox_{t h}(x - t (A^H y_0 + sum_i C_i^H y_i))
    xb   = 2 x' - x

(the dual proxes by Moreau's identity). Convergence needs ``t s ||K||^2 < 1`` for
``K = [A; C_1; ...]``; the run estimates ``||K||`` by power iteration and takes
``t = s = 0.99 / ||K||`` (``step_ratio`` sets ``s / t``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from calcil._internal.integers import as_count
from calcil.objective import Objective
from calcil.priors.constraints import Constraint
from calcil.priors.transformed import Transformed
from calcil.solvers._linalg import random_like, real_dtype, vdot
from calcil.solvers._loop import IterativeSolver
from calcil.solvers._requirements import (
    flatten_params,
    prior_leaves,
    reject_batches,
    require_affine,
)

__all__ = ["PDHG"]

SAFETY = 0.99  # t = s = SAFETY / ||K||


@dataclasses.dataclass(frozen=True)
class _Dual:
    """A dualised prior term ``g(C x[leaf])`` (``C = I`` for a plain term)."""

    leaf: int
    path: str
    index: int
    transformed: bool


@dataclasses.dataclass(frozen=True)
class _Plan:
    treedef: Any
    primal: tuple[str | None, ...]  # per leaf: the path of a prior applied by its prox
    duals: tuple[_Dual, ...]
    real: str = "float32"
    fast_path: str = dataclasses.field(default="not used: PDHG applies A and A^H", compare=False)


class PDHG(IterativeSolver):
    """Minimise ``loss(forward(x)) + priors`` by the primal-dual hybrid gradient method.

    For what proximal gradient and ADMM cannot split: a non-smooth data term
    (:class:`~calcil.losses.L1`, robust to outliers; ``Poisson`` without a Lipschitz
    gradient), or constraints on a transformed variable (``NonNegative() @ A``). The forward
    model must be affine, ``forward(x) = A x + b`` (checked numerically); ``A^H`` comes from
    JAX's transpose, so no adjoint has to be written. The loss needs a prox (``L2``,
    ``WeightedL2``, ``L1``, ``Poisson`` of real counts; ``loss.has_prox``).

    A variable's prior is applied in the primal step through its prox when it has one and is
    not a prior of a transformed variable; otherwise each of its terms is dualised
    (``g @ C``, or ``g`` with ``C = I`` for a term of a sum) and needs a prox of its own.

    Steps: ``t = s = 0.99 / ||K||`` with ``||K||^2`` the largest eigenvalue of
    ``A^H A + sum_i C_i^H C_i`` (power iteration once per run, reused while the data arrays
    are the same). The history records every objective term at ``x`` (a dualised constraint
    counts 0, and its distance to the set is ``pdhg/infeasibility``), ``pdhg/primal_step``
    and ``pdhg/dual_step``.

    Args:
        objective: the :class:`~calcil.Objective`.
        step_ratio: ``s / t`` (1: balanced); ``t s ||K||^2 = 0.98`` either way.
        power_iterations: iterations of the estimate of ``||K||``.

    Example:
        >>> import jax.numpy as jnp, calcil as cc
        >>> obj = cc.Objective(lambda p, b: p["x"], cc.losses.L1("y"),
        ...                    priors={"x": 0.5 * cc.priors.L2()})
        >>> y = jnp.array([0.5, 3.0, -4.0])            # min |x - y| + x^2 / 4: clip to +-2
        >>> cc.PDHG(obj).run({"x": jnp.zeros(3)}, {"y": y}, iterations=400,
        ...                  progress=False).params["x"].round(3).tolist()
        [0.5, 2.0, -2.0]
    """

    def __init__(self, objective: Objective, step_ratio: float = 1.0, power_iterations: int = 50):
        super().__init__()
        if not isinstance(objective, Objective):
            raise TypeError(f"PDHG needs a cc.Objective, got {objective!r}")
        if not step_ratio > 0:
            raise ValueError(f"PDHG's step_ratio s / t must be positive, got {step_ratio!r}")
        as_count("power_iterations", power_iterations, 1, "a positive integer")
        if not objective.loss.has_prox:
            raise ValueError(
                f"PDHG applies the data term through the prox of its loss, but "
                f"{objective.loss!r} has none (losses with one: L2, WeightedL2, L1, Poisson; "
                "a single scaled loss). Use cc.GradientSolver or cc.ProximalGradient."
            )
        self.objective = objective
        self.step_ratio, self.power_iterations = float(step_ratio), int(power_iterations)
        self._norms: dict = {}
        self._estimate = None

    # ------------------------------------------------------------------ pieces
    def _term(self, dual: _Dual):
        weight, term = self.objective.priors[dual.path].parts()[dual.index]
        if dual.transformed:
            return weight, term.prior, term.operator
        return weight, term, None

    def _linear(self, plan, leaves, data):
        """``(A, A^H)`` on leaves: ``A x = forward(x) - forward(0)``."""
        treedef = plan.treedef

        def forward(ls):
            return self.objective.forward(jax.tree_util.tree_unflatten(treedef, ls), data)

        zeros = [jnp.zeros_like(x) for x in leaves]
        offset, vjp = jax.vjp(forward, zeros)

        def apply(ls):
            return forward(ls) - offset

        def adjoint(y):  # the transpose of a linear map is conjugate to its adjoint
            (back,) = vjp(jnp.conj(y).astype(offset.dtype))
            return [jnp.conj(b) for b in back]

        return apply, adjoint, offset

    # ------------------------------------------------------------------ hooks
    def _analyse(self, init, data, batch_size, axis=None, batched=False):
        name = "PDHG"
        reject_batches(name, batch_size, "each step applies the whole forward model")
        if axis is not None:
            raise ValueError("PDHG runs on one device; leave devices=None.")
        leaves, treedef = flatten_params(name, init)
        self.objective.check_data(data)
        require_affine(
            "PDHG",
            self.objective,
            treedef,
            leaves,
            data,
            "needs an affine forward model A x + b (it applies A^H)",
        )
        owners = prior_leaves(self.objective, init, name)
        primal, duals = [], []
        for leaf, path in enumerate(owners):
            prior = None if path is None else self.objective.priors[path]
            parts = () if prior is None else prior.parts()
            if prior is not None and prior.has_prox and not isinstance(parts[0][1], Transformed):
                primal.append(path)
                continue
            primal.append(None)
            for index, (_, term) in enumerate(parts):
                transformed = isinstance(term, Transformed)
                g = term.prior if transformed else term
                if not g.has_prox:
                    raise ValueError(
                        f"PDHG applies each prior term through its prox, but {g!r} (in the "
                        f"prior on {path!r}) has none. Use a prior with a prox, or "
                        "cc.GradientSolver."
                    )
                duals.append(_Dual(leaf, path, index, transformed))
        real = jnp.dtype(real_dtype(leaves)).name
        return _Plan(treedef, tuple(primal), tuple(duals), real), None

    def _run_constants(self, plan, fixed, init, data, batched):
        """The step sizes from ``||K||``, reused while the data arrays are the same."""
        if batched:
            raise ValueError("PDHG solves one problem per run: use run, not run_batch.")
        watched = jax.tree_util.tree_leaves(data)
        key = (plan, tuple(map(id, watched)))
        if self._estimate is not None and self._estimate[0] == key:
            return self._estimate[2]
        if plan not in self._norms:

            def norm(init, data, v0):
                leaves = jax.tree_util.tree_leaves(init)
                A, AH, _ = self._linear(plan, leaves, data)

                def gram(v):
                    out = AH(A(v))
                    for d in plan.duals:
                        _, _, C = self._term(d)
                        cv = v[d.leaf] if C is None else C.H(C(v[d.leaf]))
                        out[d.leaf] = out[d.leaf] + cv
                    return out

                def body(_, v):
                    w = gram(v)
                    n = jnp.sqrt(vdot(w, w))
                    return [(wi / jnp.where(n > 0, n, 1)).astype(wi.dtype) for wi in w]

                n0 = jnp.sqrt(vdot(v0, v0))
                v = jax.lax.fori_loop(0, self.power_iterations, body, [x / n0 for x in v0])
                return jnp.sqrt(jnp.sqrt(vdot(gram(v), gram(v))))

            self._norms[plan] = jax.jit(norm)
        v0 = random_like(jax.tree_util.tree_leaves(init))
        k = float(self._norms[plan](init, data, v0))
        if not (np.isfinite(k) and k > 0):
            raise ValueError(f"PDHG: the norm of K = [A; C_i] is {k}: check the forward model.")
        t = SAFETY / (k * np.sqrt(self.step_ratio))
        steps = {"t": np.float32(t), "s": np.float32(t * self.step_ratio)}
        if all(isinstance(x, jax.Array) for x in watched):
            self._estimate = (key, watched, steps)
        return steps

    def _initial(self, plan, fixed, run, init, data, key):
        leaves = jax.tree_util.tree_leaves(init)
        _, _, offset = self._linear(plan, leaves, data)
        duals = [jnp.zeros_like(offset)]
        for d in plan.duals:
            _, _, C = self._term(d)
            x = leaves[d.leaf]
            duals.append(jnp.zeros_like(x if C is None else C(x)))
        inner = {
            "y": duals,
            "xbar": [jnp.array(x) for x in leaves],
            "t": jnp.asarray(run["t"], plan.real),
            "s": jnp.asarray(run["s"], plan.real),
        }
        return inner, None

    def _terms(self, plan, x, params, data, prediction):
        """The objective's terms at ``x``; a dualised constraint counts 0 (and its distance
        to the set is returned apart)."""
        terms = {f"loss/{k}": v for k, v in self.objective.loss.terms(prediction, data).items()}
        gap = jnp.zeros((), plan.real)
        for leaf, path in enumerate(plan.primal):
            if path is not None:
                for k, v in self.objective.priors[path].terms(x[leaf]).items():
                    key = f"prior/{path}/{k}"
                    terms[key] = terms[key] + v if key in terms else v
        for d in plan.duals:
            weight, g, C = self._term(d)
            cx = x[d.leaf] if C is None else C(x[d.leaf])
            if isinstance(g, Constraint):
                r = cx - g.project(cx)
                gap = gap + vdot([r], [r]).astype(plan.real)
                values = {g.name: jnp.zeros((), plan.real)}
            else:
                values = {k: weight * v for k, v in g.terms(cx).items()}
            for k, v in values.items():
                key = f"prior/{d.path}/{k}"
                terms[key] = terms[key] + v if key in terms else v
        return terms, jnp.sqrt(gap)

    def _step(self, plan, params, inner, step, data, report):
        x = jax.tree_util.tree_leaves(params)
        A, AH, offset = self._linear(plan, x, data)
        t, s = inner["t"], inner["s"]
        xbar = inner["xbar"]
        terms, gap = self._terms(plan, x, params, data, A(x) + offset)
        dtype = jnp.result_type(*terms.values())
        total = sum(terms.values(), jnp.zeros((), dtype))

        loss = self.objective.loss
        y = list(inner["y"])
        v = y[0] + s * A(xbar)
        y[0] = (v - s * (loss.prox(v / s + offset, 1 / s, data) - offset)).astype(v.dtype)
        for j, d in enumerate(plan.duals, start=1):
            weight, g, C = self._term(d)
            xb = xbar[d.leaf]
            v = y[j] + s * (xb if C is None else C(xb))
            y[j] = (v - s * g.prox(v / s, weight / s)).astype(v.dtype)

        back = AH(y[0])
        for j, d in enumerate(plan.duals, start=1):
            _, _, C = self._term(d)
            back[d.leaf] = back[d.leaf] + (y[j] if C is None else C.H(y[j]))
        new = [(xi - t * bi).astype(xi.dtype) for xi, bi in zip(x, back, strict=True)]
        for leaf, path in enumerate(plan.primal):
            if path is not None:
                prior = self.objective.priors[path]
                new[leaf] = prior.prox(new[leaf], t).astype(x[leaf].dtype)
        xbar = [(2 * a - b).astype(a.dtype) for a, b in zip(new, x, strict=True)]
        outputs = {
            "loss/total": total,
            **terms,
            "pdhg/infeasibility": gap,
            "pdhg/primal_step": t,
            "pdhg/dual_step": s,
        }
        inner = {"y": y, "xbar": xbar, "t": t, "s": s}
        return jax.tree_util.tree_unflatten(plan.treedef, new), inner, outputs

"""ADMM: least-squares data term plus priors of transformed variables, each split off.

For ``f(x) + sum_i g_i(C_i x)`` with ``f`` the (quadratic) data term, ADMM (Boyd et al.
2011, scaled form) introduces ``z_i = C_i x`` and iterates, with ``rho`` the penalty::

    x      = argmin_x f(x) + (rho / 2) sum_i ||C_i x - z_i + u_i||^2      (conjugate gradients)
    xh_i   = alpha C_i x + (1 - alpha) z_i                               (over-relaxation)
    z_i    = prox_{g_i / rho}(xh_i + u_i)
    u_i    = u_i + xh_i - z_i
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from calcil._internal.integers import as_count
from calcil.objective import Objective
from calcil.priors.transformed import Transformed
from calcil.solvers import _fast_path
from calcil.solvers._linalg import (
    affine_tolerance,
    conj,
    random_like,
    real_dtype,
    vdot,
)
from calcil.solvers._loop import IterativeSolver
from calcil.solvers._requirements import (
    flatten_params,
    prior_leaves,
    reject_batches,
    require_affine,
)

__all__ = ["ADMM"]


@dataclasses.dataclass(frozen=True)
class _Split:
    """``g(C x[leaf])`` with ``g = weight * prior``: one split variable ``z = C x[leaf]``."""

    leaf: int
    path: str
    index: int  # the term's position in the prior's weighted sum
    transformed: bool


@dataclasses.dataclass(frozen=True)
class _Plan:
    treedef: Any
    splits: tuple[_Split, ...]
    fast: _fast_path.FastPath | None = None
    axis: str | None = None
    real: str = "float32"
    exact: bool = False  # the x-update by FFT: every operator is circulant
    fast_path: str = dataclasses.field(default="", compare=False)


class ADMM(IterativeSolver):
    """Minimise ``loss(forward(x)) + sum_i g_i(C_i x)`` by the alternating direction method
    of multipliers (scaled form; Boyd, Parikh, Chu, Peleato and Eckstein 2011).

    Each term of each prior is split off: ``w * (g @ C)`` gives ``z = C x`` with the prox of
    ``w g``; a plain prior ``w * g`` gives ``z = x``. Every ``g`` needs a prox
    (``L1``, ``L21``, ``TV``, ``Huber``, constraints, :class:`~calcil.priors.Denoiser` for
    plug-and-play ADMM). The data term must be a convex quadratic (an ``L2``-type loss of an
    affine forward model, checked numerically as for :class:`~calcil.ConjugateGradient`):
    each x-update solves ``(A^H W A + rho sum_i C_i^H C_i) x = A^H W y + rho sum_i C_i^H
    (z_i - u_i)`` by ``cg_iterations`` conjugate-gradient steps warm-started from the last
    ``x`` (``A^H W A p`` by JAX's Hessian-vector products, so the forward model needs no
    hand-written adjoint; ``C_i^H C_i p`` by ``C_i.gram``).

    When the problem is one image and every operator is circulant (shift-invariant with
    periodic boundaries: a circular ``Convolve``, ``FiniteDifference(boundary="periodic")``,
    ``Pupil``, the identity ...), ``A^H W A`` and ``C_i^H C_i`` are Fourier multipliers, read
    off their impulse responses, and the x-update is solved exactly by one FFT pair
    (``x_update="auto"`` checks this on a random image when the run is analysed; ``"cg"``
    or ``"fft"`` force a choice). ``result.fast_path`` says which x-update ran.

    The penalty ``rho`` is fixed (``adaptive=False``) or balanced every step (Boyd et al.
    2011, section 3.4.1): with the primal residual ``r = ||C x - z||`` and the dual residual
    ``s = rho ||C^H (z - z_prev)||``, ``rho`` is multiplied by ``tau`` when ``r > mu s`` and
    divided by it when ``s > mu r`` (``u`` rescaled to match). ``relaxation`` is the
    over-relaxation ``alpha`` (1: none; 1.5–1.8 often speeds up convergence).

    The history records ``admm/primal_residual``, ``admm/dual_residual`` (at every step with
    ``adaptive``, else at the logged steps and NaN between them) and ``admm/rho``.
    ``loss/total`` is ``f(x) + sum_i g_i(z_i)``: the priors are evaluated at the split
    variables (which satisfy constraints exactly), equal to ``g_i(C_i x)`` at convergence.

    Args:
        objective: the :class:`~calcil.Objective`.
        rho: the initial penalty (positive).
        adaptive: balance ``rho`` by the residuals.
        relaxation: the over-relaxation ``alpha`` in ``(0, 2)``.
        cg_iterations: conjugate-gradient steps per x-update.
        x_update: ``"auto"`` (exact by FFT where every operator is circulant, else CG),
            ``"cg"`` or ``"fft"`` (an error where the operators are not circulant).
        mu, tau: the residual-balancing threshold and factor.
        fast_path: the least-squares fast path for an ``L2`` loss of a linear forward model,
            as in :class:`~calcil.GradientSolver`.

    Example:
        >>> import jax.numpy as jnp, calcil as cc
        >>> obj = cc.Objective(lambda p, b: p["x"], cc.losses.L2("y"),
        ...                    priors={"x": cc.priors.L1()})
        >>> y = jnp.array([3.0, 0.5, -2.0])
        >>> result = cc.ADMM(obj).run({"x": jnp.zeros(3)}, {"y": y}, iterations=60,
        ...                           progress=False)
        >>> result.params["x"].round(3).tolist()         # soft thresholding of y
        [2.0, 0.0, -1.0]
    """

    def __init__(
        self,
        objective: Objective,
        rho: float = 1.0,
        adaptive: bool = True,
        relaxation: float = 1.0,
        cg_iterations: int = 10,
        mu: float = 10.0,
        tau: float = 2.0,
        fast_path: bool = True,
        x_update: str = "auto",
    ):
        super().__init__()
        if not isinstance(objective, Objective):
            raise TypeError(f"ADMM needs a cc.Objective, got {objective!r}")
        if not (isinstance(rho, int | float) and rho > 0):
            raise ValueError(f"ADMM's penalty rho must be a positive number, got {rho!r}")
        if not 0 < relaxation < 2:
            raise ValueError(f"ADMM's relaxation alpha must lie in (0, 2), got {relaxation!r}")
        if not (mu > 1 and tau > 1):
            raise ValueError(f"ADMM's mu and tau must exceed 1, got mu={mu!r}, tau={tau!r}")
        as_count("cg_iterations", cg_iterations, 1, "a positive integer")
        if x_update not in ("auto", "cg", "fft"):
            raise ValueError(f"x_update must be 'auto', 'cg' or 'fft', got {x_update!r}")
        self.x_update = x_update
        why = objective.loss.not_quadratic()
        if why is not None:
            raise ValueError(
                f"ADMM solves its x-update as a linear system, so the data term must be a "
                f"convex quadratic, but the loss {objective.loss!r} is not ({why}). Use "
                "cc.ProximalGradient (backtracking) or cc.GradientSolver for this loss."
            )
        for path, prior in objective.priors.items():
            for _, term in prior.parts():
                g = term.prior if isinstance(term, Transformed) else term
                if not g.has_prox:
                    raise ValueError(
                        f"ADMM applies each prior term through its prox, but {g!r} (in the "
                        f"prior on {path!r}) has none. Use a prior with a prox (L1, L21, TV, "
                        "Huber, a constraint, a Denoiser), or cc.GradientSolver."
                    )
        self.objective, self.fast_path = objective, bool(fast_path)
        self.rho, self.adaptive, self.relaxation = float(rho), bool(adaptive), float(relaxation)
        self.cg_iterations, self.mu, self.tau = int(cg_iterations), float(mu), float(tau)

    # ------------------------------------------------------------------ pieces
    def _term(self, split: _Split):
        """``(weight, g, C or None)`` of a split."""
        weight, term = self.objective.priors[split.path].parts()[split.index]
        if split.transformed:
            return weight, term.prior, term.operator
        return weight, term, None

    def _apply(self, split, x):
        _, _, C = self._term(split)
        return x if C is None else C(x)

    def _adjoint(self, split, v):
        _, _, C = self._term(split)
        return v if C is None else C.H(v)

    def _gram(self, split, v):
        _, _, C = self._term(split)
        return v if C is None else C.gram(v)

    # ------------------------------------------------------------------ hooks
    def _analyse(self, init, data, batch_size, axis=None, batched=False):
        name = "ADMM"
        reject_batches(name, batch_size, "each x-update solves the full least-squares system")
        leaves, treedef = flatten_params(name, init)
        self.objective.check_data(data)
        owners = prior_leaves(self.objective, init, name)
        require_affine(
            "ADMM", self.objective, treedef, leaves, data, "solves its x-update as a linear system"
        )
        splits = []
        for leaf, path in enumerate(owners):
            if path is None:
                continue
            for index, (_, term) in enumerate(self.objective.priors[path].parts()):
                splits.append(_Split(leaf, path, index, isinstance(term, Transformed)))
        fast, fixed, fast_path = _fast_path.analyse(
            self.fast_path, self.objective, init, data, batch_size, axis, batched
        )
        real = jnp.dtype(real_dtype(leaves)).name
        plan = _Plan(treedef, tuple(splits), fast, axis, real, False, fast_path)
        why = self._not_circulant(plan, fixed, leaves, data) if self.x_update != "cg" else "cg"
        if why is None:
            return dataclasses.replace(
                plan, exact=True, fast_path=f"{fast_path}; x-update by FFT"
            ), fixed
        if self.x_update == "fft":
            raise ValueError(
                f"ADMM(x_update='fft') solves the x-update by FFT, which needs one image and "
                f"circulant operators, but {why}. Use x_update='cg' (or 'auto')."
            )
        return dataclasses.replace(plan, fast_path=f"{fast_path}; x-update by CG"), fixed

    def _not_circulant(self, plan, fixed, leaves, data) -> str | None:
        """Why the x-update cannot be solved by FFT, or ``None`` when it can: checked by
        applying ``A^H W A`` and ``sum C_i^H C_i`` to a random image."""
        if len(leaves) != 1:
            return "the parameters have several arrays"
        if not plan.splits:
            return "there is no prior to split"
        step_data = _fast_path.fast_data(self.objective, plan.fast, fixed, data)
        step_data = data if step_data is None else step_data
        v = random_like(leaves)[0]
        got, want = self._check_circulant(plan, leaves, step_data, v)
        for name, g, w in zip(("A^H A", "sum C^H C"), got, want, strict=True):
            error = float(jnp.linalg.norm(g - w) / jnp.maximum(jnp.linalg.norm(w), 1e-30))
            if not error <= affine_tolerance(leaves):
                return f"{name} is not a Fourier multiplier (relative error {error:.2g})"
        m_a, m_c, _ = self._spectra(plan, leaves, step_data)
        total = jnp.abs(m_a) + jnp.abs(m_c)
        if not float(jnp.min(total)) > 1e-6 * float(jnp.max(total)):
            return "A^H A + rho sum C^H C is singular at some frequency"
        return None

    def _check_circulant(self, plan, leaves, data, v):
        m_a, m_c, _ = self._spectra(plan, leaves, data)
        zero = [jnp.zeros_like(leaves[0])]
        _, hvp = jax.linearize(lambda ls: self._data_gradient(plan, ls, data)[0], zero)
        real = not jnp.iscomplexobj(v)
        apply = _multiply(real)
        return (hvp([v])[0], self._gram_c(plan, v)), (apply(m_a, v), apply(m_c, v))

    def _data_gradient(self, plan, leaves, data):
        """``(grad f(x), the data terms at x)`` for the list of parameter arrays."""

        def f(ls):
            params = jax.tree_util.tree_unflatten(plan.treedef, ls)
            terms = _fast_path.loss_terms(self.objective, plan.fast, params, data, plan.axis)
            return sum(terms.values()), terms

        g, terms = jax.grad(f, has_aux=True)(leaves)
        return conj(g), terms

    def _gram_c(self, plan, v):
        out = jnp.zeros_like(v)
        for s in plan.splits:
            out = out + self._gram(s, v)
        return out

    def _spectra(self, plan, leaves, data):
        """``(M_A, M_C, b)``: the Fourier multipliers of ``A^H W A`` and ``sum C_i^H C_i``
        (the FFTs of their impulse responses at index 0) and ``b = -grad f(0)``."""
        x = leaves[0]
        delta = jnp.zeros_like(x).at[(0,) * x.ndim].set(1)
        zero = [jnp.zeros_like(x)]
        g0, hvp = jax.linearize(lambda ls: self._data_gradient(plan, ls, data)[0], zero)
        return jnp.fft.fftn(hvp([delta])[0]), jnp.fft.fftn(self._gram_c(plan, delta)), -g0[0]

    def _initial(self, plan, fixed, run, init, data, key):
        leaves = jax.tree_util.tree_leaves(init)
        z = [self._apply(s, leaves[s.leaf]) for s in plan.splits]
        inner = {
            "z": z,
            "u": [jnp.zeros_like(v) for v in z],
            "rho": jnp.asarray(self.rho, plan.real),
        }
        fast_data = _fast_path.fast_data(self.objective, plan.fast, fixed, data)
        if plan.exact:  # constants of the run, kept with the state
            step_data = data if fast_data is None else fast_data
            m_a, m_c, b = self._spectra(plan, leaves, step_data)
            inner["fft"] = {"m_a": m_a, "m_c": m_c, "b": b}
        return inner, fast_data

    def _x_exact(self, plan, x, z, u, rho, fft):
        """``(A^H W A + rho sum C_i^H C_i)^-1 (b + rho sum C_i^H (z_i - u_i))`` by FFT."""
        rhs = fft["b"]
        for s, zi, ui in zip(plan.splits, z, u, strict=True):
            rhs = rhs + rho * self._adjoint(s, zi - ui)
        solve = _multiply(not jnp.iscomplexobj(x[0]))
        return [solve(1 / (fft["m_a"] + rho * fft["m_c"]), rhs).astype(x[0].dtype)]

    def _x_update(self, plan, x, z, u, rho, data):
        """``cg_iterations`` CG steps on ``f(x) + (rho / 2) sum ||C_i x - z_i + u_i||^2``;
        ``(new x, the data terms at x)`` (read off the gradient's evaluation).

        The Hessian is ``H_f + rho sum C_i^H C_i``: ``H_f`` by forward-over-reverse
        differentiation of the data term, ``C_i^H C_i`` by the operator's ``gram`` (which
        structured operators apply in one pass, e.g. the negative Laplacian of
        ``FiniteDifference``)."""

        def data_gradient(leaves):
            return self._data_gradient(plan, leaves, data)

        def split_gram(p):  # rho sum C_i^H C_i p, added into the leaves
            out = [jnp.zeros_like(pi) for pi in p]
            for s in plan.splits:
                out[s.leaf] = out[s.leaf] + self._gram(s, p[s.leaf])
            return [(rho * o).astype(pi.dtype) for o, pi in zip(out, p, strict=True)]

        g, terms = data_gradient(x)
        g = [gi + hi for gi, hi in zip(g, split_gram(x), strict=True)]
        for s, zi, ui in zip(plan.splits, z, u, strict=True):
            g[s.leaf] = (g[s.leaf] - rho * self._adjoint(s, zi - ui)).astype(g[s.leaf].dtype)

        def hessian(p):  # forward over reverse: the primal half is dead code once compiled
            h = jax.jvp(lambda ls: data_gradient(ls)[0], (x,), (p,))[1]
            return [hi + gi for hi, gi in zip(h, split_gram(p), strict=True)]

        real = rho.dtype

        def body(_, carry):
            x, r, p, rs = carry
            hp = hessian(p)
            curvature = vdot(p, hp).astype(real)
            # converged (the residual at the rounding floor) or no curvature: stop moving,
            # since CG iterated past convergence amplifies rounding noise
            active = (rs > floor) & (curvature > 0)
            alpha = jnp.where(active, rs / jnp.where(active, curvature, 1), 0)
            x = [(xi + alpha * pi).astype(xi.dtype) for xi, pi in zip(x, p, strict=True)]
            r_new = [(ri - alpha * hi).astype(ri.dtype) for ri, hi in zip(r, hp, strict=True)]
            rs_new = jnp.where(active, vdot(r_new, r_new).astype(real), rs)
            beta = jnp.where(active, rs_new / jnp.where(rs > 0, rs, 1), 0)
            # (once inactive, alpha stays 0: p = r then changes nothing)
            p = [(ri + beta * pi).astype(pi.dtype) for ri, pi in zip(r_new, p, strict=True)]
            return x, r_new, p, rs_new

        r = [-gi for gi in g]
        rs0 = vdot(r, r).astype(real)
        floor = (10 * jnp.finfo(real).eps) ** 2 * rs0
        return jax.lax.fori_loop(0, self.cg_iterations, body, (x, r, r, rs0))[0], terms

    def _step(self, plan, params, inner, step, data, report):
        z, u, rho = inner["z"], inner["u"], inner["rho"]
        x = jax.tree_util.tree_leaves(params)
        # the objective at the step's input: data term at x, priors at the split variables
        if plan.exact:
            terms = _fast_path.loss_terms(self.objective, plan.fast, params, data, plan.axis)
            x = self._x_exact(plan, x, z, u, rho, inner["fft"])
        else:
            x, terms = self._x_update(plan, x, z, u, rho, data)
        terms = dict(terms)
        for s, zi in zip(plan.splits, z, strict=True):
            weight, g, _ = self._term(s)
            for name, value in g.terms(zi).items():
                key = f"prior/{s.path}/{name}"
                value = weight * value
                terms[key] = terms[key] + value if key in terms else value
        dtype = jnp.result_type(*terms.values())
        total = sum(terms.values(), jnp.zeros((), dtype))
        alpha = self.relaxation
        cx = [self._apply(s, x[s.leaf]) for s in plan.splits]
        z_new, u_new = [], []
        for s, ci, zi, ui in zip(plan.splits, cx, z, u, strict=True):
            weight, g, _ = self._term(s)
            xh = ci if alpha == 1 else (alpha * ci + (1 - alpha) * zi).astype(zi.dtype)
            zn = g.prox(xh + ui, weight / rho).astype(zi.dtype)
            z_new.append(zn)
            u_new.append((ui + xh - zn).astype(ui.dtype))

        def residuals(_):
            gap = [c - zn for c, zn in zip(cx, z_new, strict=True)]
            back = [jnp.zeros_like(xi) for xi in x]
            for s, zn, zi in zip(plan.splits, z_new, z, strict=True):
                back[s.leaf] = back[s.leaf] + self._adjoint(s, zn - zi)
            primal = jnp.sqrt(vdot(gap, gap)).astype(rho.dtype)
            return primal, (rho * jnp.sqrt(vdot(back, back))).astype(rho.dtype)

        if self.adaptive:  # rho follows the residuals at every step
            primal, dual = residuals(None)
        else:  # only logged: computed at the logged steps, NaN at the others
            nan = jnp.full((), jnp.nan, rho.dtype)
            primal, dual = jax.lax.cond(report, residuals, lambda _: (nan, nan), None)
        outputs = {
            "loss/total": total,
            **terms,
            "admm/primal_residual": primal,
            "admm/dual_residual": dual,
            "admm/rho": rho,
        }
        if self.adaptive:
            up, down = primal > self.mu * dual, dual > self.mu * primal
            factor = jnp.where(up, self.tau, jnp.where(down, 1 / self.tau, 1.0)).astype(rho.dtype)
            rho = rho * factor
            u_new = [(ui / factor).astype(ui.dtype) for ui in u_new]
        inner = {**inner, "z": z_new, "u": u_new, "rho": rho}
        return jax.tree_util.tree_unflatten(plan.treedef, x), inner, outputs


def _multiply(real: bool):
    """``v -> IFFT(m FFT(v))`` (the real part for a real ``v``)."""

    def apply(m, v):
        out = jnp.fft.ifftn(m * jnp.fft.fftn(v))
        return jnp.real(out) if real else out

    return apply

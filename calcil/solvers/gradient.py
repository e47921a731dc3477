"""GradientSolver: optax optimizers per variable group, compiled into ``lax.scan`` chunks.

Each ``run`` executes ``iterations`` optimizer steps. The steps between two log points run as
one compiled ``lax.scan`` on the device (no host round trip); per-step scalars (the total and
every named term) come back once per chunk as ``result.history``. A non-finite total stops the
updates at that step: the parameters stay at the last finite point and the status is
``"diverged"``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from calcil.objective import Objective, leaf_paths
from calcil.solvers.groups import Group, match_groups

__all__ = ["GradientSolver", "Result"]


@dataclasses.dataclass
class Result:
    """What a solver returns.

    Attributes:
        params: the final parameters (the last finite ones when the run diverged).
        history: ``{"loss/total": array, "<term>": array, ...}``, one value per step.
        status: ``"converged"``, ``"max_iterations"``, ``"max_time"`` or ``"diverged"``.
        steps: steps taken.
        message: a sentence on why the run stopped.
    """

    params: Any
    history: dict[str, np.ndarray]
    status: str
    steps: int
    message: str = ""


@dataclasses.dataclass(frozen=True)
class _GroupPlan:
    """A group resolved against the parameter tree: its leaf indices and transformation."""

    indices: tuple[int, ...]
    group: Group
    tx: Any


def _conj(tree):
    return jax.tree_util.tree_map(lambda g: jnp.conj(g) if jnp.iscomplexobj(g) else g, tree)


def _sample(data, key, step, batch_size, n):
    """Mini-batch ``step`` of shuffled epochs: a fresh permutation of ``n`` per epoch."""
    per_epoch = n // batch_size
    epoch, slot = step // per_epoch, step % per_epoch
    perm = jax.random.permutation(jax.random.fold_in(key, epoch), n)
    idx = jax.lax.dynamic_slice(perm, (slot * batch_size,), (batch_size,))
    return jax.tree_util.tree_map(lambda a: jnp.take(a, idx, axis=0), data)


class GradientSolver:
    """Minimise an :class:`~calcil.Objective` by gradient descent with optax.

    Args:
        objective: the :class:`~calcil.Objective` to minimise.
        groups: ``{pattern: cc.Group(...)}``; patterns are globs over the '/'-joined parameter
            paths, and every variable needs exactly one group.
        optimizer: shortcut for one group over all variables (an optax transformation).

    Example:
        >>> import jax.numpy as jnp, optax, calcil as cc
        >>> obj = cc.Objective(lambda p, b: p["x"], cc.losses.L2("y"))
        >>> solver = cc.GradientSolver(obj, optimizer=optax.sgd(0.5))
        >>> result = solver.run({"x": jnp.zeros(2)}, {"y": jnp.ones(2)}, iterations=20)
        >>> result.params["x"].round(3).tolist(), result.status
        ([1.0, 1.0], 'max_iterations')
    """

    def __init__(
        self,
        objective: Objective,
        groups: Mapping[str, Group] | None = None,
        optimizer=None,
    ):
        if not isinstance(objective, Objective):
            raise TypeError(f"GradientSolver needs a cc.Objective, got {objective!r}")
        if (groups is None) == (optimizer is None):
            raise ValueError(
                "give either groups={pattern: cc.Group(...)} or optimizer=... (one group for "
                "all variables), not both and not neither"
            )
        self.objective = objective
        self.groups = dict(groups) if groups is not None else {"**": Group(optimizer)}
        # Resolved once: bad optimizer names fail here, and every run (and the cached
        # compiled chunk) uses the same transformation objects.
        self._transformations = {
            pattern: None if group.frozen else group.transformation()
            for pattern, group in self.groups.items()
        }
        self._chunks = {}  # static configuration -> jitted chunk function
        self.traces = 0  # how often a chunk was traced (compiled): for tests and benchmarks

    # ------------------------------------------------------------------ planning
    def _plan(self, params):
        assignment = match_groups(params, self.groups)
        paths = list(assignment)
        plans = []
        for pattern, group in self.groups.items():
            idx = tuple(i for i, p in enumerate(paths) if assignment[p] == pattern)
            plans.append(_GroupPlan(idx, group, self._transformations[pattern]))
        return plans

    def _init_state(self, leaves, plans):
        opt_states = [
            None if plan.tx is None else plan.tx.init([leaves[i] for i in plan.indices])
            for plan in plans
        ]
        accum = [
            None if plan.tx is None else [jnp.zeros_like(leaves[i]) for i in plan.indices]
            for plan in plans
        ]
        return opt_states, accum

    # ------------------------------------------------------------------ the compiled chunk
    def _chunk_fn(self, treedef, plans, length, batch_size, n_data):
        key = (treedef, tuple(p.indices for p in plans), length, batch_size, n_data)
        if key in self._chunks:
            return self._chunks[key]
        objective = self.objective

        def total(leaves, batch):
            return objective(jax.tree_util.tree_unflatten(treedef, leaves), batch)

        def chunk(leaves, good, opt_states, accum, step, rng, diverged, data):
            self.traces += 1

            def one_step(carry, _):
                leaves, good, opt_states, accum, step, diverged = carry
                if batch_size is None:
                    batch = data
                else:
                    batch = _sample(data, rng, step, batch_size, n_data)
                (value, terms), grads = jax.value_and_grad(total, has_aux=True)(leaves, batch)
                grads = _conj(grads)  # complex variables descend along conj(grad)
                finite = jnp.isfinite(value) & ~diverged
                new_leaves, new_states, new_accum = list(leaves), list(opt_states), list(accum)
                for g, plan in enumerate(plans):
                    if plan.tx is not None:
                        new_leaves, new_states[g], new_accum[g] = _group_update(
                            plan,
                            leaves,
                            new_leaves,
                            opt_states[g],
                            accum[g],
                            grads,
                            value,
                            batch,
                            step,
                            finite,
                            total,
                        )
                params = jax.tree_util.tree_unflatten(treedef, new_leaves)
                for plan in plans:
                    if plan.group.post_update is not None:
                        params = plan.group.post_update(params, step)
                new_leaves = jax.tree_util.tree_leaves(params)

                def keep(new, old):
                    return jax.tree_util.tree_map(lambda a, b: jnp.where(finite, a, b), new, old)

                carry = (
                    keep(new_leaves, leaves),
                    keep(leaves, good),  # the last parameters with a finite objective
                    keep(new_states, opt_states),
                    keep(new_accum, accum),
                    step + 1,
                    diverged | ~jnp.isfinite(value),
                )
                return carry, (value, terms)

            carry = (leaves, good, opt_states, accum, step, diverged)
            carry, outputs = jax.lax.scan(one_step, carry, length=length)
            leaves, good, opt_states, accum, step, diverged = carry
            return (leaves, good, opt_states, accum, step, rng, diverged), outputs

        fn = jax.jit(chunk)
        self._chunks[key] = fn
        return fn

    # ------------------------------------------------------------------ run
    def run(
        self,
        init,
        data=None,
        iterations: int = 100,
        batch_size: int | None = None,
        key=None,
        log_every: int = 50,
        tol: float | None = None,
        max_time: float | None = None,
    ) -> Result:
        """Run ``iterations`` optimizer steps from ``init``.

        Args:
            init: initial parameters (any pytree of arrays).
            data: pytree of measurements handed to ``forward`` as the batch.
            iterations: optimizer steps in total.
            batch_size: draw shuffled mini-batches of this many measurements (the leading
                axis of every ``data`` leaf) on the device; ``None`` uses all data each step.
            key: ``jax.random`` key for the shuffling (default ``key(0)``).
            log_every: steps per compiled chunk; history is read back between chunks.
            tol: stop as ``"converged"`` when the total changes by less than ``tol``
                (relative) over a chunk.
            max_time: stop after this many seconds (checked between chunks).
        """
        if not isinstance(iterations, int) or iterations < 0:
            raise ValueError(f"iterations must be a non-negative integer, got {iterations!r}")
        if not isinstance(log_every, int) or log_every < 1:
            raise ValueError(f"log_every must be a positive integer, got {log_every!r}")
        leaves, treedef = jax.tree_util.tree_flatten(init)
        leaves = [jnp.array(x) for x in leaves]  # a copy: the caller's arrays stay intact
        plans = self._plan(init)
        n_data = _check_batching(data, batch_size)
        opt_states, accum = self._init_state(leaves, plans)
        rng = jax.random.key(0) if key is None else key
        zero, no = jnp.zeros((), jnp.int32), jnp.zeros((), bool)
        state = (leaves, list(leaves), opt_states, accum, zero, rng, no)
        history: dict[str, list] = {}
        t0, done, status, message = time.perf_counter(), 0, "max_iterations", ""
        while done < iterations:
            length = min(log_every, iterations - done)
            fn = self._chunk_fn(treedef, plans, length, batch_size, n_data)
            state, (values, terms) = fn(*state, data)
            values = np.asarray(values)
            history.setdefault("loss/total", []).append(values)
            for name, v in terms.items():
                history.setdefault(name, []).append(np.asarray(v))
            bad = np.flatnonzero(~np.isfinite(values))
            if bad.size:
                step = done + int(bad[0])
                culprits = [n for n, v in terms.items() if not np.isfinite(np.asarray(v)[bad[0]])]
                status = "diverged"
                message = (
                    f"the total became non-finite at step {step} (terms {culprits}); the "
                    "parameters are the last finite ones. Lower the learning rate or check "
                    "the forward model for log/sqrt/division at zero."
                )
                done = step
                history = {k: [np.concatenate(v)[: step + 1]] for k, v in history.items()}
                break
            done += length
            if tol is not None and values.size > 1:
                change = abs(values[-1] - values[0]) / max(abs(values[0]), 1e-30)
                if change < tol:
                    status, message = "converged", f"relative change {change:.2e} < tol {tol}"
                    break
            if max_time is not None and time.perf_counter() - t0 > max_time:
                status, message = "max_time", f"stopped after {max_time} s"
                break
        if not message and status == "max_iterations":
            message = f"ran {iterations} iterations"
        final = state[1] if status == "diverged" else state[0]
        params = jax.tree_util.tree_unflatten(treedef, final)
        hist = {k: np.concatenate(v) for k, v in history.items()}
        return Result(params, hist, status, done, message)


def _group_update(
    plan, leaves, new_leaves, opt_state, accum, grads, value, batch, step, finite, total
):
    """One group's accumulate / update / project, selected with ``lax.cond``."""
    import optax

    group = plan.group
    started = step >= group.start
    grads_g = [grads[i] for i in plan.indices]
    accum = [jnp.where(started, a + gi, a) for a, gi in zip(accum, grads_g, strict=True)]
    active = started & ((step - group.start + 1) % group.every == 0) & finite
    params_g = [leaves[i] for i in plan.indices]
    projection = group.projection()

    def value_fn(sub):
        full = list(leaves)
        for i, x in zip(plan.indices, sub, strict=True):
            full[i] = x
        return total(full, batch)[0]

    def update(operand):
        accum, opt_state = operand
        mean = [a / group.every for a in accum]
        if isinstance(plan.tx, optax.GradientTransformationExtraArgs):
            updates, opt_state = plan.tx.update(
                mean, opt_state, params_g, value=value, grad=mean, value_fn=value_fn
            )
        else:
            updates, opt_state = plan.tx.update(mean, opt_state, params_g)
        new = optax.apply_updates(params_g, updates)
        if projection is not None:
            new = [projection(x) for x in new]
        new = [x.astype(p.dtype) for x, p in zip(new, params_g, strict=True)]
        return new, opt_state, [jnp.zeros_like(a) for a in accum]

    def skip(operand):
        accum, opt_state = operand
        return params_g, opt_state, accum

    new_g, opt_state, accum = jax.lax.cond(active, update, skip, (accum, opt_state))
    for i, x in zip(plan.indices, new_g, strict=True):
        new_leaves[i] = x
    return new_leaves, opt_state, accum


def _check_batching(data, batch_size):
    """The number of measurements, validated for mini-batching; ``None`` without batches."""
    if batch_size is None:
        return None
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    sizes = {jnp.shape(a)[0] if jnp.ndim(a) else None for a in jax.tree_util.tree_leaves(data)}
    if not sizes or None in sizes or len(sizes) != 1:
        paths = leaf_paths(data) if data is not None else []
        shapes = [jnp.shape(a) for a in jax.tree_util.tree_leaves(data)] if data else []
        raise ValueError(
            "with batch_size, every data leaf needs the same leading (measurement) axis; got "
            f"shapes {dict(zip(paths, shapes, strict=True))}"
        )
    (n,) = sizes
    if batch_size > n:
        raise ValueError(f"batch_size {batch_size} is larger than the {n} measurements in data")
    return n

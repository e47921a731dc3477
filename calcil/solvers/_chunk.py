"""The compiled chunk: up to ``capacity`` solver steps in one ``lax.while_loop`` on the device.

``chunk(state, data, n, report) -> (state, packed)`` runs ``n <= capacity`` steps (``n`` is a
traced argument, so one compiled program serves every chunk length: changing ``iterations``,
``log_every`` or ``checkpoint_every`` compiles nothing new). The state is donated: a run holds
one copy of the parameters and optimizer state, plus ``prev``, the last parameters whose
objective was finite.

The state is ``{"params", "inner", "step", "prev", "halt"}``. ``halt`` is 0 while the run goes
on, :data:`DIVERGED` once a step's objective was not finite, :data:`NON_FINITE` when the
parameters after a chunk's last step are not finite, or the positive code a solver's step
reports in ``"_stop"`` (CG's convergence). A halted state does not step again: the loop ends
at once, so a chunk dispatched after the halt (the run loop dispatches one chunk ahead) leaves
it as it is. On divergence the parameters become ``prev``: exactly the last finite ones,
without a replay.

``packed`` is one array, the chunk's one transfer to the host: row ``i < capacity`` holds
step ``i``'s scalars in :attr:`ChunkProgram.layout` order, the last row ``[steps run, halt
code, index of the halting step or -1]``. With ``batched=True`` the state and data carry a
leading problem axis, every scalar becomes a vector over the problems (``packed`` is
``(capacity + 1, columns, problems)``), the loop runs while any problem goes on, and a halted
problem's state is frozen (its parameters at ``prev``) while the others step.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from calcil.solvers import _sharding

__all__ = [
    "CAPACITY",
    "DIVERGED",
    "NON_FINITE",
    "ChunkProgram",
    "fresh_state",
    "initial_state",
]

CAPACITY = 256  # steps per dispatch at most; longer chunks are several dispatches
DIVERGED, NON_FINITE = -1, -2


def initial_state(params, inner, step, halt=0):
    """A fresh state whose every buffer is the run's own (``params`` are copied, also into
    ``prev``): donating it never deletes the caller's arrays."""
    return _fresh(params, inner, jnp.asarray(step, jnp.int32), jnp.asarray(halt, jnp.int32))


def fresh_state(params, inner, step, halt):
    """The loop state (traceable): copies of ``params`` (twice: ``prev``) and ``inner``."""

    def copy(tree):
        return jax.tree_util.tree_map(jnp.copy, tree)

    return {
        "params": copy(params),
        "inner": copy(inner),
        "step": jnp.copy(step),
        "prev": copy(params),
        "halt": jnp.copy(halt),
    }


_fresh = jax.jit(fresh_state)


def _all_finite(tree):
    leaves = jax.tree_util.tree_leaves(tree)
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))


def _select(flag, a, b):
    """``a`` where ``flag`` else ``b``, leaf by leaf; a ``(problems,)`` flag selects whole
    problems (the leading axis of every leaf)."""

    def pick(x, y):
        return jnp.where(flag.reshape(flag.shape + (1,) * (x.ndim - flag.ndim)), x, y)

    return jax.tree_util.tree_map(pick, a, b)


class ChunkProgram:
    """One solver's compiled chunk for one plan (see the module docstring).

    Args:
        solver: the :class:`~calcil.solvers._loop.IterativeSolver` whose ``_step`` runs.
        plan: the solver's static choices for these shapes.
        mesh: a ``jax.sharding.Mesh`` to split the data over, or ``None``.
        batched: the state and data carry a leading axis of independent problems.
    """

    def __init__(self, solver, plan, mesh=None, batched: bool = False, capacity: int = CAPACITY):
        self.solver, self.plan, self.batched, self.capacity = solver, plan, batched, capacity
        self.layout: list[tuple[str, Any]] | None = None  # (name, dtype) of each step scalar
        fn = self._chunk
        if mesh is not None:
            fn = _sharding.shard_chunk(fn, mesh)
        self._jitted = jax.jit(fn, donate_argnums=0)

    def __call__(self, state, data, n: int, report: bool):
        """Run ``n`` steps (``1 <= n <= capacity``); ``report``: the last one is logged."""
        return self._jitted(state, data, np.int32(n), np.bool_(report))

    def lower(self, state, data):
        return self._jitted.lower(state, data, np.int32(1), np.bool_(True))

    def eval_shape(self, state, data):
        return jax.eval_shape(self._jitted, state, data, np.int32(1), np.bool_(True))

    # ------------------------------------------------------------------ traced
    def _single_step(self, state, data, report):
        params, inner, outputs = self.solver._step(
            self.plan, state["params"], state["inner"], state["step"], data, report
        )
        code = outputs.pop("_stop", None)
        return params, inner, outputs, code

    def _body(self, state, data, report):
        """One step; ``(new state, outputs, halting now)``."""
        if self.batched:
            step = jax.vmap(self._single_step, in_axes=(0, 0, None))
        else:
            step = self._single_step
        params, inner, outputs, code = step(state, data, report)
        finite = jnp.isfinite(outputs["loss/total"])
        running = state["halt"] == 0
        halt = jnp.where(finite, 0 if code is None else code, DIVERGED).astype(jnp.int32)
        halting = running & (halt != 0)
        ok = running & finite
        prev = _select(ok, state["params"], state["prev"])
        if self.batched:  # a halted problem stays where it is: its parameters at prev
            keep = running & (halt == 0)
            diverged = running & ~finite
            stay = _select(diverged, prev, state["params"])
            params = _select(keep, params, stay)
            inner = _select(ok, inner, state["inner"])
        new = {
            "params": params,
            "inner": inner,
            "step": state["step"] + (running & (halt == 0)).astype(jnp.int32),
            "prev": prev,
            "halt": jnp.where(running, halt, state["halt"]),
        }
        return new, outputs, halting

    def _chunk(self, state, data, n, report):
        self.solver.traces += 1
        shapes = jax.eval_shape(lambda s: self._body(s, data, report)[1], state)
        self.layout = [(name, s.dtype) for name, s in shapes.items()]
        wide = any(jnp.dtype(d).itemsize == 8 for _, d in self.layout)
        dtype = jnp.float64 if wide else jnp.float32
        problems = jax.tree_util.tree_leaves(state["halt"])[0].shape  # () or (problems,)
        columns = max(len(self.layout), 3)
        packed = jnp.zeros((self.capacity + 1, columns, *problems), dtype)
        where = jnp.full(problems, -1, jnp.int32)

        def cond(carry):
            i, state, _, _ = carry
            return (i < n) & jnp.any(state["halt"] == 0)

        def body(carry):
            i, state, packed, where = carry
            state, outputs, halting = self._body(state, data, report & (i == n - 1))
            row = jnp.stack([jnp.asarray(outputs[k]).astype(dtype) for k, _ in self.layout])
            if row.shape[0] < columns:
                row = jnp.concatenate([row, jnp.zeros((columns - row.shape[0], *problems), dtype)])
            packed = jax.lax.dynamic_update_index_in_dim(packed, row, i, 0)
            return i + 1, state, packed, jnp.where(halting, i, where)

        i, state, packed, where = jax.lax.while_loop(
            cond, body, (jnp.zeros((), jnp.int32), state, packed, where)
        )
        check = jax.vmap(_all_finite) if self.batched else _all_finite
        bad_end = (state["halt"] == 0) & ~check(state["params"]) & (i > 0)
        state = {
            **state,
            "halt": jnp.where(bad_end, NON_FINITE, state["halt"]),
        }
        where = jnp.where(bad_end, i, where)
        back = (state["halt"] == DIVERGED) | (state["halt"] == NON_FINITE)
        state["params"] = _select(back, state["prev"], state["params"])
        info = jnp.stack(
            [
                jnp.broadcast_to(i, problems).astype(dtype),
                state["halt"].astype(dtype),
                where.astype(dtype),
            ]
        )
        if columns > 3:
            info = jnp.concatenate([info, jnp.zeros((columns - 3, *problems), dtype)])
        packed = jax.lax.dynamic_update_index_in_dim(packed, info, self.capacity, 0)
        return state, packed

    # ------------------------------------------------------------------ host
    def unpack(self, packed: np.ndarray):
        """``(outputs, steps_run, halt, halt_index)`` of one dispatch read back to the host:
        ``outputs[name]`` holds the executed steps' values (``(steps,)`` or
        ``(steps, problems)``); ``halt``/``halt_index`` are arrays over the problems (scalars
        for one problem)."""
        info = packed[self.capacity]
        steps = int(np.max(info[0]))
        halt = info[1].astype(np.int64)
        where = info[2].astype(np.int64)
        outputs = {
            name: packed[:steps, j].astype(dtype) for j, (name, dtype) in enumerate(self.layout)
        }
        return outputs, steps, halt, where

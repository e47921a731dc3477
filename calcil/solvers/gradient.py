"""GradientSolver: optax optimizers per variable group, compiled into ``lax.scan`` chunks.

Each ``run`` executes ``iterations`` optimizer steps through the shared run loop
(:mod:`calcil.solvers._loop`): the steps between two log points run as one compiled
``lax.scan`` on the device, and per-step scalars come back once per chunk as
``result.history``, TensorBoard scalars and the progress bar.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from calcil._internal.integers import as_count
from calcil.objective import Objective, leaf_paths
from calcil.solvers import _fast_path, _sharding
from calcil.solvers._linalg import conj
from calcil.solvers._loop import IterativeSolver, Result
from calcil.solvers._requirements import flatten_params
from calcil.solvers.groups import Group, match_groups, transformation

__all__ = ["GradientSolver", "Result", "group_label"]


def _sample(data, key, step, batch_size, n, axis=None):
    """Mini-batch ``step`` of shuffled epochs: a fresh permutation of ``n`` per epoch.

    Sharded over ``axis``, every device draws the same indices and receives its block of the
    batch (:func:`calcil.solvers._sharding.sample`).
    """
    per_epoch = n // batch_size
    epoch, slot = step // per_epoch, step % per_epoch
    perm = jax.random.permutation(jax.random.fold_in(key, epoch), n)
    idx = jax.lax.dynamic_slice(perm, (slot * batch_size,), (batch_size,))
    if axis is not None:
        return _sharding.sample(data, idx, axis)
    return jax.tree_util.tree_map(lambda a: jnp.take(a, idx, axis=0), data)


def group_label(pattern: str) -> str:
    """A group's name in logs: its pattern without trailing globs (``"net/**"`` -> ``"net"``)."""
    label = pattern
    while label.endswith(("/**", "/*")):
        label = label.rsplit("/", 1)[0]
    return "all" if label in ("**", "*", "") else label


@dataclasses.dataclass(frozen=True)
class _Plan:
    """The static shape of a run: tree structure, each group's leaf indices, batching."""

    treedef: Any
    indices: tuple[tuple[int, ...], ...]
    batch_size: int | None
    n_data: int | None
    fast: _fast_path.FastPath | None = None
    axis: str | None = None
    dtypes: tuple[str, ...] = ()
    fast_path: str = dataclasses.field(default="", compare=False)  # the outcome, for Result


class GradientSolver(IterativeSolver):
    """Minimise an :class:`~calcil.Objective` by gradient descent with optax.

    Args:
        objective: the :class:`~calcil.Objective` to minimise.
        groups: ``{pattern: cc.Group(...)}``; patterns are globs over the '/'-joined parameter
            paths, and every variable needs exactly one group.
        optimizer: shortcut for one group over all variables (an optax transformation).
        fast_path: evaluate an ``L2`` loss of a linear forward model ``A(params[path])`` as
            ``0.5 ||B x - U^H y||^2`` when ``A`` declares ``A = U B`` with ``U`` unitary
            (:meth:`~calcil.operators.LinearOperator.unitary_factorization`: circular
            ``Convolve``, the transfer-function propagators, ``Pupil``, unitary ``FFT``, their
            compositions and multiples): ``U^H y`` is computed once and a step costs one FFT
            per factor instead of two. Same values and gradients up to rounding; ``False``
            always differentiates through ``forward``. ``result.fast_path`` says whether it
            applied and why.

    Every step evaluates the objective and its gradient at the current parameters and hands
    each group's gradient (the conjugate for complex variables, i.e. the steepest-ascent
    direction under Re<x, y>) to that group's optimizer. The update of all groups is one
    optax transformation over the list of parameter leaves
    (:func:`calcil.solvers.groups.transformation`: ``optax.multi_transform`` of each group's
    optimizer in ``optax.MultiSteps`` for ``every``, ``optax.conditionally_mask`` for
    ``start``, ``optax.set_to_zero`` when frozen); the solver adds each group's projection
    on the steps that update it, and ``post_update``. The history records, per step, the
    total, every term, and each group's learning rate (``lr/<group>``: the rate its update
    at that step used, or its last update's when the group skipped the step; logged when the
    optimizer exposes one: a named optimizer, or a state with
    ``hyperparams["learning_rate"]`` from ``optax.inject_hyperparams``, also inside
    ``optax.chain``, ``optax.masked`` or ``optax.MultiSteps``) and
    gradient norm (``grad_norm/<group>``, computed at the steps that are logged: the last
    before each log point, image or checkpoint; NaN at the others).

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
        fast_path: bool = True,
    ):
        super().__init__()
        self.fast_path = bool(fast_path)
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
        self._labels = {pattern: group_label(pattern) for pattern in self.groups}
        self._updates: dict = {}  # (labels, dtypes) -> the optax transformation of all leaves

    # ------------------------------------------------------------------ hooks
    def _analyse(self, init, data, batch_size, axis=None, batched=False):
        assignment = match_groups(init, self.groups)
        paths = list(assignment)
        indices = tuple(
            tuple(i for i, p in enumerate(paths) if assignment[p] == pattern)
            for pattern in self.groups
        )
        leaves, treedef = flatten_params("GradientSolver", init)
        batch_size, n_data = _check_batching(data, batch_size)
        self.objective.check_data(data)  # before anything is compiled
        fast, fixed, fast_path = _fast_path.analyse(
            self.fast_path, self.objective, init, data, batch_size, axis, batched
        )
        dtypes = tuple(jnp.dtype(x.dtype).name for x in leaves)
        plan = _Plan(treedef, indices, batch_size, n_data, fast, axis, dtypes, fast_path)
        return plan, fixed

    def _initial(self, plan, fixed, run, init, data, key):
        leaves = jax.tree_util.tree_leaves(init)
        inner = {"opt": self._update(plan.indices, plan.dtypes).init(leaves), "rng": key}
        return inner, _fast_path.fast_data(self.objective, plan.fast, fixed, data)

    def _step(self, plan, params, inner, step, data, report):
        from optax import MaskedNode

        treedef = plan.treedef
        objective = self.objective

        def total(leaves, batch):
            params = jax.tree_util.tree_unflatten(treedef, leaves)
            return _fast_path.evaluate(objective, plan.fast, params, batch, plan.axis)

        if plan.batch_size is None:
            batch = data
        else:
            batch = _sample(data, inner["rng"], step, plan.batch_size, plan.n_data, plan.axis)
        leaves = jax.tree_util.tree_leaves(params)
        (value, terms), grads = jax.value_and_grad(total, has_aux=True)(leaves, batch)
        grads = conj(grads)  # complex variables descend along conj(grad)
        outputs = {"loss/total": value, **terms}

        def value_fn(masked):
            """The objective at one group's leaves (``optax.lbfgs``'s line search), the
            others at their current values (``optax.MaskedNode`` in ``masked``)."""
            pairs = zip(masked, leaves, strict=True)
            full = [x if isinstance(m, MaskedNode) else m for m, x in pairs]
            return total(full, batch)[0]

        tx = self._update(plan.indices, plan.dtypes)
        updates, opt = tx.update(
            grads, inner["opt"], leaves, value=value, grad=grads, value_fn=value_fn
        )
        new_leaves = list(leaves)
        for pattern, idx in zip(self.groups, plan.indices, strict=True):
            group, label = self.groups[pattern], self._labels[pattern]
            outputs[f"grad_norm/{label}"] = _norm_when(report, [grads[i] for i in idx], value.dtype)
            if group.frozen:  # its leaves stay as they are, bit for bit
                continue
            new = _apply(group, [leaves[i] for i in idx], [updates[i] for i in idx], step)
            for i, x in zip(idx, new, strict=True):
                new_leaves[i] = x
            state = opt.inner_states[pattern]
            lr = _learning_rate(group, state, jnp.maximum(group.updates_through(step) - 1, 0))
            if lr is not None:
                outputs[f"lr/{label}"] = jnp.asarray(lr, value.dtype)
        params = jax.tree_util.tree_unflatten(treedef, new_leaves)
        for group in self.groups.values():
            if group.post_update is not None:
                params = group.post_update(params, step)
        return params, {"opt": opt, "rng": inner["rng"]}, outputs

    def _update(self, indices, dtypes):
        """The optax transformation that updates all leaves
        (:func:`~calcil.solvers.groups.transformation`), one object per assignment of leaves
        to groups and dtypes: every run of the same problem reuses it, and with it the
        compiled chunk."""
        labels = [None] * len(dtypes)
        for pattern, idx in zip(self.groups, indices, strict=True):
            for i in idx:
                labels[i] = pattern
        key = (tuple(labels), tuple(jnp.dtype(d).name for d in dtypes))
        if key not in self._updates:
            self._updates[key] = transformation(self.groups, self._transformations, *key)
        return self._updates[key]


def _norm_when(report, arrays, dtype):
    """``sqrt(sum |a|^2)`` over ``arrays`` on reported steps, NaN on the others.

    A sum-of-squares pass over a 512^2 gradient costs about 5% of a deconvolution step on
    XLA:CPU; logging needs it at log points only.
    """
    if not arrays:
        return jnp.zeros((), dtype)

    def norm(arrays):
        return jnp.sqrt(sum(jnp.sum(jnp.abs(a) ** 2) for a in arrays)).astype(dtype)

    return jax.lax.cond(report, norm, lambda _: jnp.full((), jnp.nan, dtype), arrays)


def _learning_rate(group, opt_state, count):
    """The learning rate the group's last update used, or ``None`` when it is not exposed.

    ``opt_state`` is the state after this step's update. A learning rate stored in it wins:
    ``hyperparams["learning_rate"]`` (or ``["lr"]``) of an ``optax.inject_hyperparams``
    state, also nested in ``chain``, ``masked``, ``MultiSteps`` ... states, or the step that
    ``optax.lbfgs``'s line search took. Otherwise a named optimizer's ``lr``, evaluated at
    ``count`` when it is a schedule: the number of the group's updates before its last one
    (this step's when it updates; 0 before its first), where its optimizer evaluated it.
    """
    found = _stored_learning_rates(opt_state)
    if len(found) == 1 and jnp.ndim(found[0]) == 0:  # several: ambiguous, none logged
        return found[0]
    if isinstance(group.optimizer, str):
        return group.lr(count) if callable(group.lr) else group.lr
    return None


def _stored_learning_rates(state) -> list:
    """Every learning rate held in an optax state tree (see :func:`_learning_rate`)."""
    hyperparams = getattr(state, "hyperparams", None)
    if isinstance(hyperparams, Mapping):  # inject_hyperparams: its own rate, then inside
        own = [hyperparams[k] for k in ("learning_rate", "lr") if k in hyperparams][:1]
        return own + _stored_learning_rates(getattr(state, "inner_state", None))
    if isinstance(state, tuple) and hasattr(state, "_fields"):  # a NamedTuple state
        own = [state.learning_rate] if "learning_rate" in state._fields else []
        for field in state._fields:
            if field != "learning_rate":
                own += _stored_learning_rates(getattr(state, field))
        return own
    if isinstance(state, list | tuple):
        return [lr for s in state for lr in _stored_learning_rates(s)]
    if isinstance(state, Mapping):
        return [lr for s in state.values() for lr in _stored_learning_rates(s)]
    return []


def _apply(group, params, updates, step):
    """The group's leaves after this step: updated and projected where it updates, else as
    they were (a group updated at every step compiles no branch)."""
    import optax

    projection = group.projection()

    def update(params, updates):
        new = optax.apply_updates(params, updates)
        if projection is not None:
            new = [projection(x) for x in new]
        return [x.astype(p.dtype) for x, p in zip(new, params, strict=True)]

    active = group.updates_at(step)
    if active is True:
        return update(params, updates)
    return jax.lax.cond(active, update, lambda params, _: params, params, updates)


def _check_batching(data, batch_size):
    """``(batch_size, n)``: the batch size as an int and the number of measurements, validated
    for mini-batching; ``(None, None)`` without batches."""
    if batch_size is None:
        return None, None
    batch_size = as_count(
        "batch_size",
        batch_size,
        1,
        "a positive integer (measurements per step)",
        "Leave it None to use all data at every step.",
    )
    leaves = jax.tree_util.tree_leaves(data)
    if not leaves:
        raise ValueError(
            f"batch_size={batch_size} draws mini-batches along the leading (measurement) axis "
            f"of the data's arrays, but data has none (got {data!r}). Pass the measurements "
            "as data, or leave batch_size=None."
        )
    shapes = {
        p or "data": tuple(np.shape(x)) for p, x in zip(leaf_paths(data), leaves, strict=True)
    }
    listed = ", ".join(f"{p} {s}" for p, s in shapes.items())
    scalars = [p for p, s in shapes.items() if not s]
    if scalars:
        raise ValueError(
            f"batch_size={batch_size} draws mini-batches along the leading (measurement) axis "
            f"of every data leaf, but {', '.join(scalars)} {'has' if len(scalars) == 1 else 'have'}"
            f" no axis (shapes: {listed}). Give every leaf a leading axis of one row per "
            "measurement (e.g. y[None] for one measurement), keep constants out of data "
            "(in the forward model), or leave batch_size=None."
        )
    sizes = {s[0] for s in shapes.values()}
    if len(sizes) > 1:
        raise ValueError(
            f"batch_size={batch_size} draws the same rows of every data leaf, so every leaf "
            f"needs the same leading (measurement) axis, but their lengths differ (shapes: "
            f"{listed}). Give every leaf one row per measurement, keep constants out of data "
            "(in the forward model), or leave batch_size=None."
        )
    (n,) = sizes
    if batch_size > n:
        raise ValueError(
            f"batch_size {batch_size} is larger than the {n} measurements in data (the "
            f"leading axis; shapes: {listed}). Use batch_size <= {n}, or leave it None to use "
            "all data at every step."
        )
    return batch_size, n

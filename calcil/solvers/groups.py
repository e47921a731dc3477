"""Variable groups: which optimizer updates which parameters, when, and with what projection.

A solver takes ``{pattern: Group(...)}``. Patterns are globs over the '/'-joined paths of the
parameter tree: ``*`` matches within one path segment, ``**`` across segments, and a pattern
also covers everything below a path it matches (``"net"`` covers ``net/dense/kernel``).
Every variable must be matched by exactly one group and every pattern must match something.

The updates are optax's: :func:`transformation` makes all groups one
``optax.multi_transform`` over the flat list of parameter leaves, a group's part being its
optimizer in ``optax.MultiSteps`` (``every``), ``optax.conditionally_mask`` (``start``) or
``optax.set_to_zero`` (``frozen``). Calcil adds the glob matching, the projections and
``post_update`` (applied by the solver) and the names in the logs.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from calcil._internal.integers import as_count
from calcil.objective import leaf_paths
from calcil.priors.base import Prior

__all__ = ["Group", "match_groups", "transformation"]


@functools.cache
def _optimizer_names() -> tuple[str, ...]:
    """The optax functions a name in ``Group(name, lr=...)`` may refer to: those that build an
    optimizer from a ``learning_rate`` (``"adam"``, ``"sgd"``, ``"lbfgs"`` ...).

    Building blocks (``scale_by_*``), combinators (``chain``) and transformations without a
    learning rate (``clip``, ``scale``) are not optimizers: pass those as a transformation.
    """
    import optax

    names = []
    for name in dir(optax):
        factory = getattr(optax, name)
        if name.startswith(("_", "scale_by")) or isinstance(factory, type):
            continue
        if not callable(factory):
            continue
        try:
            parameters = inspect.signature(factory).parameters
        except (TypeError, ValueError):
            continue
        if "learning_rate" in parameters:
            names.append(name)
    return tuple(sorted(names))


_EXAMPLES = ("adam", "adamw", "sgd", "rmsprop", "lbfgs")


def _check_optimizer_name(name: str) -> None:
    """A ``ValueError`` unless ``optax.<name>`` builds an optimizer from a learning rate."""
    valid = _optimizer_names()
    if name in valid:
        return
    import optax

    examples = ", ".join(repr(n) for n in _EXAMPLES if n in valid)
    listing = (
        f"Optimizer names are the {len(valid)} optax optimizers that take a learning rate, "
        f"such as {examples}."
    )
    other = (
        "Pass any other optax transformation itself, e.g. "
        "Group(optax.chain(optax.clip(1.0), optax.adam(1e-2)))."
    )
    if not name.startswith("_") and callable(getattr(optax, name, None)):
        raise ValueError(
            f"optax.{name} is not an optimizer that takes a learning rate, so "
            f"Group({name!r}, lr=...) cannot build it. {listing} {other}"
        )
    close = difflib.get_close_matches(name, valid, n=3)
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    raise ValueError(f"optax has no optimizer named {name!r}.{hint} {listing}")


def _check_learning_rate(name: str, lr) -> None:
    """``lr`` is a positive finite number or a schedule ``step -> lr`` (>= 0 at step 0)."""
    fix = f"Pass a positive float or an optax schedule, e.g. Group({name!r}, lr=1e-2)"
    if isinstance(lr, str):
        try:
            fix = f"Pass the number, Group({name!r}, lr={float(lr)!r}), or an optax schedule"
        except ValueError:
            pass
        raise TypeError(
            f"Group({name!r}, lr={lr!r}): lr must be a float or an optax schedule "
            f"(step -> learning rate), not a string. {fix}."
        )
    if isinstance(lr, jax.core.Tracer):  # built inside a traced function: cannot tell
        return
    if callable(lr):  # a schedule: it may start at 0 (warm-up), never below
        value = lr(jnp.zeros((), jnp.int32))
        if isinstance(value, jax.core.Tracer) or np.ndim(value) != 0:
            return
        value, what = float(value), "its value at step 0"
        bad = not (math.isfinite(value) and value >= 0)
    else:
        if isinstance(lr, bool) or np.ndim(lr) != 0:
            raise TypeError(
                f"Group({name!r}, lr={lr!r}): lr must be a float or an optax schedule "
                f"(step -> learning rate). {fix}."
            )
        try:
            value, what = float(lr), "it"
        except (TypeError, ValueError):
            raise TypeError(
                f"Group({name!r}, lr={lr!r}): lr must be a float or an optax schedule "
                f"(step -> learning rate). {fix}."
            ) from None
        bad = not (math.isfinite(value) and value > 0)
    if bad:
        raise ValueError(
            f"Group({name!r}, lr=...): the learning rate must be positive and finite, but "
            f"{what} is {value!r} (a negative rate climbs the objective, a zero rate never "
            f"moves it). {fix}; frozen=True keeps variables fixed."
        )


@dataclass(frozen=True)
class Group:
    """How one set of variables is optimised.

    Args:
        optimizer: an ``optax.GradientTransformation`` (e.g. ``optax.adam(1e-2)``), or the
            name of an optax optimizer that takes a learning rate (``"adam"``, ``"sgd"``,
            ``"lbfgs"`` ...) with ``lr``. Other optax names (``"clip"``, ``"chain"``,
            ``"scale_by_adam"``) are a ``ValueError``: pass such transformations themselves.
        lr: learning rate for a named optimizer: a positive finite float, or an optax
            schedule (``step -> lr``, not negative at step 0).
        start: first step at which the group is updated (earlier steps leave it fixed); an
            integer (Python or NumPy).
        every: update every ``every``-th step, with the mean of the gradients since the
            group's last update; an integer (Python or NumPy).
        frozen: never update (the variables stay at their initial values).
        project: applied to each variable after each update: a constraint or prior with a
            prox (``cc.priors.NonNegative()``, ``cc.priors.Simplex()``) or any function
            ``x -> x``.
        post_update: ``post_update(params, step) -> params``, custom code run after each step.

    Example:
        >>> import calcil as cc
        >>> g = cc.Group("adam", lr=1e-2, start=100, every=2, project=cc.priors.NonNegative())
        >>> g.start, g.every
        (100, 2)
    """

    optimizer: Any
    lr: Any = None
    start: int = 0
    every: int = 1
    frozen: bool = False
    project: Any = None
    post_update: Callable | None = None

    def __post_init__(self):
        if isinstance(self.optimizer, str):
            _check_optimizer_name(self.optimizer)
            if self.lr is None:
                raise ValueError(
                    f"Group({self.optimizer!r}) needs a learning rate: Group("
                    f"{self.optimizer!r}, lr=1e-2) or an optax schedule as lr."
                )
            _check_learning_rate(self.optimizer, self.lr)
        elif not (hasattr(self.optimizer, "init") and hasattr(self.optimizer, "update")):
            raise TypeError(
                "Group optimizer must be an optax GradientTransformation (e.g. "
                f"optax.adam(1e-2)) or an optax optimizer name, got {self.optimizer!r}"
            )
        elif self.lr is not None:
            raise ValueError(
                "Group lr is used only with an optimizer name; this optimizer already has "
                "its learning rate: drop lr=, or pass the name, e.g. Group('adam', lr=...)."
            )
        for name, low in (("start", 0), ("every", 1)):
            index = as_count(
                f"Group {name}",
                getattr(self, name),
                low,
                f"an integer >= {low}",
                f"Pass a whole number of steps (a Python or NumPy integer) >= {low}.",
            )
            object.__setattr__(self, name, index)  # a plain int from here on
        if self.project is not None and not callable(self.project):
            raise TypeError(
                f"Group project must be a constraint or a function, got {self.project!r}"
            )
        if isinstance(self.project, Prior) and not self.project.has_prox:
            raise ValueError(
                f"Group project={self.project!r} has no prox/projection; use a constraint "
                "such as cc.priors.NonNegative() or a function x -> x."
            )
        if self.post_update is not None and not callable(self.post_update):
            raise TypeError("Group post_update must be a function (params, step) -> params")

    def transformation(self):
        """The optax ``GradientTransformation`` of this group (named optimizers resolved)."""
        if not isinstance(self.optimizer, str):
            return self.optimizer
        import optax  # imported here: optax is not needed to import calcil

        return getattr(optax, self.optimizer)(learning_rate=self.lr)

    def projection(self) -> Callable | None:
        """``x -> x`` applied after each update, or ``None``."""
        if self.project is None:
            return None
        if isinstance(self.project, Prior):
            prior = self.project
            return lambda x: prior.prox(x, 1.0)
        return self.project

    def updates_at(self, step):
        """Whether step ``step`` (0-based) updates the group: from ``start`` on, every
        ``every``-th step (``start + every - 1``, ``start + 2 every - 1`` ...); the Python
        ``True`` for a group updated at every step, so that no branch is compiled for it."""
        if self.start == 0 and self.every == 1:
            return True
        return (step >= self.start) & ((step - self.start + 1) % self.every == 0)

    def updates_through(self, step):
        """How many updates the steps ``0 .. step`` apply to the group."""
        return jnp.maximum(step - self.start + 1, 0) // self.every


def transformation(groups: Mapping[str, Group], optimizers: Mapping, labels, dtypes):
    """All groups' updates as one optax transformation over the flat list of leaves.

    Args:
        groups: ``{pattern: Group}``.
        optimizers: ``{pattern: optax transformation}``: each group's optimizer
            (:meth:`Group.transformation`, resolved once by the solver; unused when frozen).
        labels: each leaf's pattern, in the order of the leaves.
        dtypes: each leaf's dtype, in the same order.

    Returns:
        ``optax.multi_transform({pattern: part}, labels)``, where a group's part is its
        optimizer, in ``optax.MultiSteps`` when ``every > 1`` (the optimizer gets the mean of
        the ``every`` gradients since its last update, and only its updates advance its
        state: a schedule runs on the group's update count), in ``optax.conditionally_mask``
        when ``start > 0`` (zero updates before step ``start``, the state unchanged), or
        ``optax.set_to_zero()`` when frozen. Extra arguments (``value``, ``grad``,
        ``value_fn`` for ``optax.lbfgs``) reach every optimizer; those shaped like the leaves
        arrive masked to the group's leaves (``optax.MaskedNode`` elsewhere), as do the
        parameters a ``value_fn`` is called with.
    """
    import optax  # imported here: optax is not needed to import calcil

    def part(pattern, group):
        if group.frozen:
            return optax.set_to_zero()
        tx = optimizers[pattern]
        if group.every > 1:
            own = [d for d, label in zip(dtypes, labels, strict=True) if label == pattern]
            tx = _accumulate(tx, group.every, own)
        if group.start > 0:
            start = group.start
            tx = optax.conditionally_mask(tx, lambda step: step >= start)
        return tx

    parts = {pattern: part(pattern, group) for pattern, group in groups.items()}
    return optax.multi_transform(parts, list(labels), mask_compatible_extra_args=True)


def _accumulate(tx, every: int, dtypes):
    """``optax.MultiSteps(tx, every)`` accumulating in the dtype of the group's leaves, with
    the extra arguments passed on to ``tx`` and ``tx`` run only on the steps that apply it.

    MultiSteps keeps one accumulator dtype (by default float32, which would drop imaginary
    parts). A group of real and complex leaves accumulates in the complex dtype: its real
    leaves' gradients enter as complex numbers (imaginary part 0) and reach ``tx`` real.
    """
    import optax

    accumulator = jnp.result_type(*dtypes)
    inner = _when_applied(tx)
    complex_leaves = [jnp.issubdtype(d, jnp.complexfloating) for d in dtypes]
    mixed = any(complex_leaves) and not all(complex_leaves)
    if mixed:

        def back(updates, params):
            def cast(u, p):
                return (u if jnp.iscomplexobj(p) else jnp.real(u)).astype(p.dtype)

            return jax.tree_util.tree_map(cast, updates, params)

        inner = optax.chain(optax.stateless(back), inner)
    steps = optax.MultiSteps(inner, every_k_schedule=every, accumulator_dtype=accumulator)

    def update(updates, state, params=None, **extra_args):
        applied = state.mini_step == every - 1  # MultiSteps applies tx's update this step
        return steps.update(updates, state, params, **extra_args, **{_APPLIED: applied})

    # (a MultiSteps object is no GradientTransformationExtraArgs: optax would drop the extra
    # arguments that its update passes on)
    accumulated = optax.GradientTransformationExtraArgs(steps.init, update)
    if not mixed:
        return accumulated

    def to_accumulator(updates, params):
        return jax.tree_util.tree_map(lambda u: u.astype(accumulator), updates)

    return optax.chain(optax.stateless(to_accumulator), accumulated)


_APPLIED = "_calcil_applied"  # the extra argument by which _accumulate tells _when_applied


def _when_applied(tx):
    """``tx`` inside ``optax.MultiSteps``: run only on the steps whose update MultiSteps
    applies (it would run ``tx`` at every step and discard all but those), and with the
    extra argument ``grad`` the mean it steps with, as ``optax.lbfgs`` expects."""
    import optax

    tx = optax.with_extra_args_support(tx)

    def update(updates, state, params=None, **extra_args):
        applied = extra_args.pop(_APPLIED)
        if "grad" in extra_args:
            extra_args["grad"] = updates

        def run():
            return tx.update(updates, state, params, **extra_args)

        def wait():  # zeros (MultiSteps applies none) and the state as it is
            shapes = jax.eval_shape(run)[0]
            zeros = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
            return zeros, state

        return jax.lax.cond(applied, run, wait)

    return optax.GradientTransformationExtraArgs(tx.init, update)


def _pattern_regex(pattern: str) -> re.Pattern:
    """``*`` within a segment, ``**`` across segments, ``?`` one character."""
    out = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out))


def _matches(regex: re.Pattern, path: str) -> bool:
    """True when ``regex`` matches ``path`` or one of its '/'-prefixes (a parent subtree)."""
    parts = path.split("/")
    return any(regex.fullmatch("/".join(parts[:k])) for k in range(1, len(parts) + 1))


def match_groups(params, groups: Mapping[str, Group]) -> dict[str, str]:
    """Assign every leaf path of ``params`` to exactly one group pattern.

    Returns:
        ``{leaf_path: pattern}``, in the order of the parameter tree's leaves.

    Raises:
        ValueError: listing the variables matched by no group or by several, or the patterns
            that match nothing, with the paths that exist.
    """
    if not groups:
        raise ValueError("no groups given: pass groups={'pattern': cc.Group(...)} or optimizer=")
    for pattern, group in groups.items():
        if not isinstance(pattern, str) or not isinstance(group, Group):
            raise TypeError(
                f"groups must map patterns (str) to cc.Group, got {pattern!r}: {group!r}"
            )
    paths = leaf_paths(params)
    regexes = {pattern: _pattern_regex(pattern) for pattern in groups}
    owners = {p: [pat for pat, rx in regexes.items() if _matches(rx, p)] for p in paths}
    unmatched = [p for p, pats in owners.items() if not pats]
    several = {p: pats for p, pats in owners.items() if len(pats) > 1}
    unused = [pat for pat in groups if not any(pat in pats for pats in owners.values())]
    problems = []
    if unmatched:
        problems.append(f"variables matched by no group: {unmatched}")
    if several:
        listed = "; ".join(f"{p} by {pats}" for p, pats in several.items())
        problems.append(f"variables matched by several groups: {listed}")
    if unused:
        problems.append(f"patterns that match no variable: {unused}")
    if problems:
        raise ValueError(
            "cannot assign variables to groups: " + ". ".join(problems) + f". The variables "
            f"are {paths}; patterns are globs over these paths ('*' within a segment, '**' "
            "across segments), and each variable needs exactly one group."
        )
    return {p: pats[0] for p, pats in owners.items()}

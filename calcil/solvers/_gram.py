"""The Gram fast path: least-squares data terms of linear forward models with cheap structure.

For ``forward(params) = A x`` (``x`` one parameter, ``A`` a linear calcil operator) and the
loss ``w * 0.5 ||A x - y||^2``, the gradient is ``w (A^H A x - A^H y)``. When ``A = U B``
with ``U`` unitary (``A._residual_form()``: a circular :class:`~calcil.operators.Convolve`
is ``F^{-1} K F``, a unitary FFT is ``U I``, and compositions and multiples of these), the
data term equals ``w * 0.5 ||B x - T y||^2`` with ``T = U^H``: the solver computes ``T y``
once per run and each step costs ``B`` and ``B^H``, which is the Gram ``A^H A = B^H B`` in
factored form (one FFT pair for a circular convolution instead of two). The value is computed
from the residual ``B x - T y``, so the logged loss is the loss itself (no cancellation of
``||y||^2`` against ``<x, A^H A x>``).

The structure is found by calling the forward model once with :class:`Symbolic` leaves: it
qualifies when it returns exactly ``A(params[path])``. Anything else (another operation, a
nonlinear operator, an operator built from the parameters) falls back to autodiff through
the forward model, as does a run with mini-batches or a loss other than ``L2``.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from calcil.losses import L2, WeightedLoss
from calcil.objective import leaf_paths
from calcil.operators._symbolic import Symbolic

__all__ = ["FastPath", "data_term", "evaluate", "find", "resolve", "terms"]


@dataclasses.dataclass(frozen=True)
class FastPath:
    """The static part of a fast data term: which leaf, the term's name, a description."""

    index: int
    term: str
    description: str = dataclasses.field(compare=False)


def _l2_weight(loss):
    """``(weight, L2 loss)`` for ``w * L2`` (``w`` a scalar, nested), else ``None``."""
    weight = 1.0
    while isinstance(loss, WeightedLoss):
        weight = weight * loss.weight
        loss = loss.loss
    return (weight, loss) if type(loss) is L2 else None


def find(objective, init, data, batch_size):
    """``(FastPath, fast_data)`` when the objective's data term qualifies, else ``(None, why)``.

    ``fast_data`` replaces the run's data: ``{"B": B, "Ty": T y, "scale": w [/ y.size]}``.
    """
    if batch_size is not None:
        return None, "mini-batches change the measurements at every step"
    weighted = _l2_weight(objective.loss)
    if weighted is None:
        return None, f"the loss {objective.loss!r} is not a (scalar-weighted) L2"
    weight, loss = weighted
    leaves, treedef = jax.tree_util.tree_flatten(init)
    probes = jax.tree_util.tree_unflatten(treedef, [Symbolic(i) for i in range(len(leaves))])
    try:
        out = objective.forward(probes, data)
    except Exception:  # any other operation on the parameters: not A(x)
        return None, "the forward model is not one linear calcil operator applied to a parameter"
    if not isinstance(out, Symbolic) or out.operator is None:
        return None, "the forward model is not one linear calcil operator applied to a parameter"
    operator = out.operator
    form = operator._residual_form()
    if form is None:
        return None, f"{operator!r} has no cheaper least-squares form"
    try:
        y = jnp.asarray(loss.measurement(data))
    except (KeyError, TypeError):
        return None, "the measurement is missing (the normal path reports it)"
    if y.shape != operator.output_shape:
        return None, "the measurement's shape does not match the prediction's"
    b, t = form
    scale = weight if loss.reduction == "sum" else weight / math.prod(y.shape)
    fast_data = {"B": b, "Ty": t(y), "scale": jnp.asarray(scale)}
    path = leaf_paths(init)[out.index]
    description = (
        f"loss/{loss.name} = 0.5 ||B x - T y||^2 on {path!r} with T y precomputed, "
        f"B = {b!r} (A = {operator!r})"
    )
    return FastPath(out.index, f"loss/{loss.name}", description), fast_data


def resolve(solver, init, data, batch_size, axis=None):
    """``(FastPath or None, the data the steps see)`` for a solver with a ``fast_path`` flag;
    records the outcome in ``solver.fast_path_info``."""
    if not solver.fast_path:
        solver.fast_path_info = "not used: fast_path=False"
        return None, data
    if axis is not None:
        solver.fast_path_info = "not used: a sharded run evaluates the data terms per device"
        return None, data
    fast, found = find(solver.objective, init, data, batch_size)
    if fast is None:
        solver.fast_path_info = f"not used: {found}"
        return None, data
    solver.fast_path_info = fast.description
    return fast, found


def terms(fast: FastPath, leaves, fast_data) -> dict:
    """The data term ``{name: scale * 0.5 ||B x - T y||^2}`` from the fast data."""
    r = fast_data["B"](leaves[fast.index]) - fast_data["Ty"]
    sq = r.real**2 + r.imag**2 if jnp.iscomplexobj(r) else r * r
    value = 0.5 * jnp.sum(sq)
    return {fast.term: (fast_data["scale"] * value).astype(value.dtype)}


def _loss_terms(objective, fast, params, batch, axis):
    if fast is not None:
        return terms(fast, jax.tree_util.tree_leaves(params), batch)
    loss_terms = objective.loss_terms(params, batch)
    if axis is None:
        return loss_terms
    from calcil.solvers._sharding import reduce_loss_terms

    return {
        f"loss/{k}": v
        for k, v in reduce_loss_terms(
            objective.loss, {k[len("loss/") :]: v for k, v in loss_terms.items()}, axis
        ).items()
    }


def evaluate(objective, fast: FastPath | None, params, batch, axis=None):
    """``objective(params, batch)``: the data term from the fast path when there is one, and
    reduced over the devices along ``axis`` in a sharded run."""
    if fast is None and axis is None:
        return objective(params, batch)
    loss_terms = _loss_terms(objective, fast, params, batch, axis)
    all_terms = {**loss_terms, **objective.prior_terms(params)}
    zero = jnp.zeros((), jnp.result_type(*all_terms.values()))
    return sum(all_terms.values(), zero), all_terms


def data_term(objective, fast: FastPath | None, params, batch, axis=None):
    """The data term alone (the smooth part for FISTA)."""
    if fast is None and axis is None:
        return objective.loss(objective.forward(params, batch), batch)
    return sum(_loss_terms(objective, fast, params, batch, axis).values())

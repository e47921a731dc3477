"""The least-squares fast path: an L2 data term through a linear operator with a unitary factor.

For ``forward(params) = A x`` (``x`` one parameter, ``A`` a linear calcil operator built
outside the forward model) and the loss ``w * 0.5 ||A x - y||^2``, the gradient is
``w (A^H A x - A^H y)``. When ``A`` declares ``A = U B`` with ``U`` unitary
(:meth:`~calcil.operators.LinearOperator.unitary_factorization`: a circular ``Convolve``,
the transfer-function propagators, a unitary ``FFT``, their compositions and multiples),
the data term equals ``w * 0.5 ||B x - U^H y||^2``: the solver computes ``U^H y`` once per
run and each step costs ``B`` and ``B^H`` (one FFT each instead of two). The value comes from
the residual ``B x - U^H y``, so the logged loss is the loss itself.

The structure is read with :func:`calcil.operators.applied_operator` (an abstract trace of
the forward model; its errors are the user's and propagate). A run with mini-batches, on
several devices, with a loss other than one scaled ``L2``, or whose forward model is not one
such operator applied to a parameter, differentiates through the forward model instead; the
outcome, used or why not, is reported in :attr:`calcil.Result.fast_path`.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from calcil.losses import LeastSquares
from calcil.objective import leaf_paths
from calcil.operators import AppliedOperator, applied_operator
from calcil.solvers._sharding import reduce_loss_terms

__all__ = [
    "FastPath",
    "analyse",
    "data_term",
    "evaluate",
    "fast_data",
    "loss_terms",
    "resolve",
]


@dataclasses.dataclass(frozen=True)
class FastPath:
    """The static part of a fast data term: which leaf, and the term's logged name."""

    index: int
    term: str
    dtype: str  # of the residual B x - U^H y
    from_data: bool = False  # A is built by the forward model from the data


def _least_squares(loss):
    """``(weight, the LeastSquares loss)`` when ``loss`` is ``w * L2``, else ``None``."""
    parts = loss.parts()
    if len(parts) == 1 and type(parts[0][1]) is LeastSquares:
        return parts[0]
    return None


def _find(objective, init, data, batch_size):
    """``(FastPath, factors, description)`` when the data term qualifies, else
    ``(None, None, why not)``. ``factors`` holds what every run of these shapes reuses:
    ``{"B": B, "U": U, "scale": w [/ y.size]}``."""
    if batch_size is not None:
        return None, None, "mini-batches change the measurements at every step"
    weighted = _least_squares(objective.loss)
    if weighted is None:
        return None, None, f"the loss {objective.loss!r} is not a (scalar-weighted) L2"
    weight, loss = weighted
    found = applied_operator(objective.forward, init, data)
    if not isinstance(found, AppliedOperator):
        return None, None, f"the forward model is not A(x) for a fixed linear operator: {found}"
    operator = found.operator
    dtype = _leaf_dtype(init, found.index)
    factors = operator.unitary_factorization(dtype)
    if factors is None:
        return None, None, f"{operator!r} declares no unitary factorization A = U B"
    y = loss.measurement(data)
    if tuple(np.shape(y)) != tuple(operator.output_shape):
        return None, None, "the measurement's shape does not match the prediction's"
    # The residual A x - y lives in A's output space: a real y of a complex A is embedded.
    residual = jnp.result_type(jnp.result_type(y), operator.result_dtype(dtype))
    scale = weight if loss.reduction == "sum" else weight / math.prod(np.shape(y))
    fixed = {"B": factors.B, "U": factors.U, "scale": jnp.asarray(scale)}
    path = leaf_paths(init)[found.index]
    description = (
        f"used: loss/{loss.name} = 0.5 ||B x - U^H y||^2 on {path!r} with U^H y computed "
        f"once, B = {factors.B!r} (A = {operator!r})"
    )
    fast = FastPath(found.index, f"loss/{loss.name}", jnp.dtype(residual).name, found.built_inside)
    return fast, fixed, description


def _leaf_dtype(tree, index):
    return jnp.result_type(jax.tree_util.tree_leaves(tree)[index])


def analyse(enabled: bool, objective, init, data, batch_size, axis=None, batched=False):
    """``(FastPath or None, factors or None, outcome)``; the outcome is a sentence for
    :attr:`calcil.Result.fast_path` (``"used: ..."`` or ``"not used: ..."``).
    :func:`fast_data` turns the factors and a run's data into what the steps see.

    The factors hold for every run of these shapes when ``A`` is closed over by the forward
    model; when the forward model builds ``A`` from the data (``FastPath.from_data``), they
    hold for these data only. With ``batched`` (one problem of a ``run_batch``, standing for
    all), such an ``A`` differs between problems and the fast path is not used."""
    if not enabled:
        return None, None, "not used: fast_path=False"
    if axis is not None:
        return None, None, "not used: a sharded run evaluates the data terms per device"
    fast, fixed, outcome = _find(objective, init, data, batch_size)
    if fast is None:
        return None, None, f"not used: {outcome}"
    if batched and fast.from_data:
        return (
            None,
            None,
            (
                "not used: the forward model builds the operator from the data, which differs "
                "between the problems of run_batch"
            ),
        )
    return fast, fixed, outcome


def fast_data(objective, fast: FastPath | None, fixed, data) -> dict | None:
    """``{"B": B, "Uy": U^H y, "scale": s}``: the data the steps see (traceable); ``None``
    without a fast path (the steps see the data)."""
    if fast is None:
        return None
    ((_, loss),) = objective.loss.parts()
    y = jnp.asarray(loss.measurement(data)).astype(fast.dtype)
    return {"B": fixed["B"], "Uy": fixed["U"].H(y), "scale": fixed["scale"]}


def resolve(enabled: bool, objective, init, data, batch_size, axis=None):
    """``(FastPath or None, the data the steps see, outcome)`` in one call (eager)."""
    fast, fixed, outcome = analyse(enabled, objective, init, data, batch_size, axis)
    if fast is None:
        return None, data, outcome
    return fast, fast_data(objective, fast, fixed, data), outcome


def _fast_terms(fast: FastPath, leaves, fast_data) -> dict:
    """The data term ``{name: scale * 0.5 ||B x - U^H y||^2}`` from the fast data."""
    r = fast_data["B"](leaves[fast.index]) - fast_data["Uy"]
    sq = r.real**2 + r.imag**2 if jnp.iscomplexobj(r) else r * r
    value = 0.5 * jnp.sum(sq)
    return {fast.term: (fast_data["scale"] * value).astype(value.dtype)}


def loss_terms(objective, fast, params, batch, axis=None) -> dict:
    """The data terms ``{"loss/<name>": value}``, by the fast path when there is one."""
    return _loss_terms(objective, fast, params, batch, axis)


def _loss_terms(objective, fast, params, batch, axis):
    if fast is not None:
        return _fast_terms(fast, jax.tree_util.tree_leaves(params), batch)
    loss_terms = objective.loss_terms(params, batch)
    if axis is None:
        return loss_terms
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

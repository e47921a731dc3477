"""Reading the structure of a forward model: which linear operator it applies to which variable.

A solver that knows ``forward(params, batch) = A(params[path])`` for a linear calcil operator
``A`` can use ``A``'s structure (its :meth:`~calcil.operators.LinearOperator.unitary_factorization`
for the least-squares fast path). :func:`applied_operator` finds it by tracing the forward
model once, abstractly (``jax.eval_shape``: nothing is computed), while every operator
application is recorded. Errors raised by the forward model are the user's and propagate;
a forward model that does anything else than apply linear operators to one variable simply
has no such structure, and the reason is returned.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp

from calcil.operators.base import LinearOperator, compose, recording

__all__ = ["AppliedOperator", "applied_operator"]


@dataclasses.dataclass(frozen=True)
class AppliedOperator:
    """``fn(params, ...) = operator(leaves(params)[index])``: what :func:`applied_operator` finds.

    Example:
        >>> import jax.numpy as jnp, calcil as cc
        >>> A = cc.operators.FFT((4,))
        >>> found = cc.operators.applied_operator(lambda p: A(p["b"]), {"a": 1.0, "b": jnp.ones(4)})
        >>> found.index                                  # the second leaf, "b"
        1
    """

    index: int
    operator: LinearOperator
    built_inside: bool = False  # built by ``fn`` (from its other arguments), not closed over


def applied_operator(fn, params, *args) -> AppliedOperator | str:
    """The linear operator ``fn`` applies to one leaf of ``params``, or why there is none.

    ``fn(params, *args)`` qualifies when it returns ``A(leaf)`` for a linear calcil operator
    ``A`` that does not depend on ``params`` (a composition of several applied in turn counts:
    ``B(A(x))`` is ``(B @ A)(x)``). ``A`` may be built inside ``fn`` from ``args`` (a measured
    PSF in the batch: the result's ``built_inside`` is then true, and ``A`` holds the values
    of these ``args``), but not from ``params`` (blind deconvolution: then ``fn`` is not
    linear).

    ``fn`` is first traced abstractly (``jax.eval_shape``: nothing is computed). Only when the
    operator found there is built inside ``fn`` is ``fn`` evaluated once, under ``jax.jvp``
    with respect to ``params``, to tell arrays computed from ``args`` (concrete) from those
    computed from ``params`` (traced).

    Args:
        fn: ``fn(params, *args) -> array``, traceable by JAX.
        params: a pytree of float or complex arrays.
        *args: further arguments (arrays or pytrees of them).

    Returns:
        An :class:`AppliedOperator`, or a string saying why ``fn`` is not of that form.

    Example:
        >>> import jax.numpy as jnp, calcil as cc
        >>> A = cc.operators.FFT((4,))
        >>> found = cc.operators.applied_operator(lambda p: A(p["x"]), {"x": jnp.ones(4)})
        >>> found.index, found.operator is A
        (0, True)
        >>> cc.operators.applied_operator(lambda p: 2 * A(p["x"]), {"x": jnp.ones(4)})
        'the result is not the output of a calcil operator'
    """
    leaves, treedef = jax.tree_util.tree_flatten(params)
    found: list = []

    def probe(leaves, *args):
        with recording() as records:
            out = fn(jax.tree_util.tree_unflatten(treedef, leaves), *args)
        found.append(_chain(records, out, leaves))
        return out

    jax.eval_shape(probe, leaves, *args)
    if not (isinstance(found[-1], AppliedOperator) and _traced(found[-1].operator)):
        return found[-1]
    tangents = [jnp.zeros_like(x) for x in leaves]
    jax.jvp(lambda ls: probe(ls, *args), (leaves,), (tangents,))
    if isinstance(found[-1], AppliedOperator) and _traced(found[-1].operator):
        return "the operator is built from the variables (the forward model is not linear in them)"
    if isinstance(found[-1], AppliedOperator):
        return dataclasses.replace(found[-1], built_inside=True)
    return found[-1]


def _traced(operator) -> bool:
    return any(isinstance(a, jax.core.Tracer) for a in jax.tree_util.tree_leaves(operator))


def _chain(records, out, leaves) -> AppliedOperator | str:
    """Follow the recorded applications back from ``out`` to a leaf of the parameters."""
    producer = {id(y): (op, x) for op, x, y in records}  # a composition's record comes last
    operators = []
    current = out
    while id(current) in producer:
        op, current = producer[id(current)]
        if not op.linear:
            return f"{op!r} is not linear"
        operators.append(op)
        index = next((i for i, leaf in enumerate(leaves) if leaf is current), None)
        if index is not None:
            return AppliedOperator(index, functools.reduce(compose, operators))
    if not operators:
        return "the result is not the output of a calcil operator"
    return "the operators are not applied to a variable itself"

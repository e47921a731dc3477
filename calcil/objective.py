"""The objective of a reconstruction: data terms plus priors on named parameters.

``total(params, batch) = loss(forward(params, batch), batch) + sum_path prior_path(params[path])``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp

from calcil.losses import Loss
from calcil.priors.base import Prior

__all__ = ["Objective", "leaf_paths", "select"]


def _key_name(key) -> str:
    for attr in ("key", "name", "idx"):
        if hasattr(key, attr):
            return str(getattr(key, attr))
    return str(key)


def leaf_paths(tree) -> list[str]:
    """The '/'-joined path of every leaf of a pytree (``{"net": {"w": ..}}`` -> ``"net/w"``)."""
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    return ["/".join(_key_name(k) for k in path) for path, _ in flat]


def select(tree, path: str) -> list:
    """The leaves at ``path`` or below it (a prior on ``"net"`` covers all of ``net/**``)."""
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    out = []
    for keys, leaf in flat:
        p = "/".join(_key_name(k) for k in keys)
        if p == path or p.startswith(path + "/"):
            out.append(leaf)
    if not out:
        raise KeyError(
            f"no parameter at path {path!r}; the parameters have paths {leaf_paths(tree)}. "
            "Paths are '/'-joined keys into the parameter tree."
        )
    return out


class Objective:
    """Data fidelity plus priors, with every term named for logging.

    Args:
        forward: ``forward(params, batch) -> prediction``, the physics of the imaging system.
        loss: a :mod:`calcil.losses` term comparing the prediction with the batch.
        priors: ``{path: prior}``; ``path`` is a '/'-joined key into the parameters (a prior
            on a subtree applies to each of its leaves and adds up).

    Calling it returns ``(value, terms)`` with terms named ``loss/<name>`` and
    ``prior/<path>/<name>``; ``value`` is their sum. It is a pure function of ``params``
    and ``batch``: jit it, differentiate it, vmap it.

    Example:
        >>> import jax.numpy as jnp, calcil as cc
        >>> A = cc.operators.Diagonal(jnp.array([1.0, 2.0]))
        >>> obj = cc.Objective(lambda p, b: A(p["x"]), cc.losses.L2("y"),
        ...                    priors={"x": 0.5 * cc.priors.L2()})
        >>> value, terms = obj({"x": jnp.ones(2)}, {"y": jnp.zeros(2)})
        >>> float(value), sorted(terms)
        (3.0, ['loss/l2', 'prior/x/l2'])
    """

    def __init__(
        self,
        forward: Callable,
        loss: Loss,
        priors: Mapping[str, Prior] | None = None,
    ):
        if not callable(forward):
            raise TypeError(
                f"forward must be a function (params, batch) -> prediction, got {forward!r}"
            )
        if not isinstance(loss, Loss):
            raise TypeError(
                f"loss must be a calcil.losses term (e.g. cc.losses.L2('y')), got {loss!r}"
            )
        priors = dict(priors or {})
        for path, prior in priors.items():
            if not isinstance(path, str) or not isinstance(prior, Prior):
                raise TypeError(
                    f"priors must map parameter paths (str) to calcil.priors terms, got "
                    f"{path!r}: {prior!r}"
                )
        self.forward, self.loss, self.priors = forward, loss, priors

    def check_data(self, data) -> None:
        """Raise a ``ValueError`` when ``data`` holds measurements the loss cannot model.

        NaN or inf in a loss's target, negative counts for ``Poisson``, negative intensities
        for ``Amplitude``, ``WeightedL2`` weights that are negative, not finite or of a shape
        that does not broadcast to the measurement's. Only concrete arrays are checked
        (traced ones pass). The solvers call it before compiling.

        Example:
            >>> import jax.numpy as jnp, calcil as cc
            >>> obj = cc.Objective(lambda p, b: p["x"], cc.losses.Poisson("y"))
            >>> obj.check_data({"y": jnp.array([3.0, 0.0])})    # counts: fine
            >>> obj.check_data({"y": jnp.array([3.0, -1.0])})
            Traceback (most recent call last):
            ...
            ValueError: Poisson: data['y'] must be >= 0 (photon counts), but has 1 negative ...
        """
        self.loss.check_data(data)

    def loss_terms(self, params, batch) -> dict[str, jax.Array]:
        """The data terms, ``{"loss/<name>": value}``."""
        prediction = self.forward(params, batch)
        return {f"loss/{k}": v for k, v in self.loss.terms(prediction, batch).items()}

    def prior_terms(self, params) -> dict[str, jax.Array]:
        """The prior terms, ``{"prior/<path>/<name>": value}``."""
        out = {}
        for path, prior in self.priors.items():
            for leaf in select(params, path):
                for name, v in prior.terms(leaf).items():
                    key = f"prior/{path}/{name}"
                    out[key] = out[key] + v if key in out else v
        return out

    def terms(self, params, batch) -> dict[str, jax.Array]:
        return {**self.loss_terms(params, batch), **self.prior_terms(params)}

    def __call__(self, params, batch=None) -> tuple[jax.Array, dict[str, jax.Array]]:
        terms = self.terms(params, batch)
        zero = jnp.zeros((), jnp.result_type(*terms.values()))  # keeps float32 under x64
        value = sum(terms.values(), zero)
        return value, terms

    def value(self, params, batch=None) -> jax.Array:
        """The total alone (for ``jax.grad``)."""
        return self(params, batch)[0]

    def __repr__(self):
        priors = ", ".join(f"{k!r}: {v!r}" for k, v in self.priors.items())
        name = getattr(self.forward, "__name__", "forward")
        return f"Objective(forward={name}, loss={self.loss!r}, priors={{{priors}}})"

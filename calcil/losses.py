"""Data-fidelity terms: compare a prediction with a measurement taken from the batch.

A loss maps ``(prediction, batch) -> scalar``; ``batch[target]`` is the measurement. Losses
are immutable pytrees; ``w * loss`` weights one and ``loss_a + loss_b`` adds them (each term is
logged under its own name). ``reduction="mean"`` averages over elements instead of summing.

``loss.check_data(data)`` validates concrete measurements before a solver compiles anything:
NaN or infinite values in any target, negative counts for :class:`Poisson`, negative
intensities for :class:`Amplitude`, and weights of :class:`WeightedL2` (shape, sign,
finiteness) are a ``ValueError`` that names the entry and says how to fix it.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from calcil._internal.struct import Struct, merge_terms, short_repr, static_field

__all__ = ["L2", "Amplitude", "Loss", "LossSum", "Poisson", "WeightedL2"]

REDUCTIONS = ("sum", "mean")


def _intensity(prediction):
    """``|u|^2`` of a complex field; real predictions are already intensities."""
    if jnp.iscomplexobj(prediction):
        return prediction.real**2 + prediction.imag**2
    return prediction


@jax.custom_jvp
def _safe_sqrt(x):
    """``sqrt(max(x, 0))`` whose derivative stays finite at 0."""
    return jnp.sqrt(jnp.maximum(x, 0))


@_safe_sqrt.defjvp
def _safe_sqrt_jvp(primals, tangents):
    (x,), (dx,) = primals, tangents
    y = _safe_sqrt(x)
    tiny = jnp.finfo(y.dtype).tiny
    # Flat (zero slope) where x < 0; finite where x = 0.
    return y, jnp.where(x < 0, 0, dx * 0.5 / jnp.sqrt(jnp.maximum(x, tiny)))


def _extremes(xp, y):
    """``[min, max]`` of ``y`` (of its real and imaginary parts when complex), NaN when ``y``
    holds a NaN: one pass over the data, with NumPy or ``jax.numpy`` (``xp``)."""
    parts = (xp.real(y), xp.imag(y)) if xp.iscomplexobj(y) else (y,)
    lo, hi = xp.min(parts[0]), xp.max(parts[0])
    for part in parts[1:]:
        lo, hi = xp.minimum(lo, xp.min(part)), xp.maximum(hi, xp.max(part))
    return xp.stack([lo, hi])


def _counts(xp, y):
    """``(non-finite, NaN, negative)`` element counts of ``y`` (negatives of real ``y``)."""
    finite = xp.isfinite(y)
    negative = 0 if xp.iscomplexobj(y) else xp.sum(finite & (y < 0))
    return xp.stack([xp.sum(~finite), xp.sum(xp.isnan(y)), xp.asarray(negative)])


_device_extremes = jax.jit(lambda y: _extremes(jnp, y))
_device_counts = jax.jit(lambda y: _counts(jnp, y).astype(jnp.int32))


def _is_traced(x) -> bool:
    return isinstance(x, jax.core.Tracer)


def _where(y, mask_fn) -> str:
    """``"smallest -2, the first at index (i, j), shape (m, n)"`` for bad values of ``y``."""
    if not getattr(y, "is_fully_addressable", True):  # another process holds part of it
        return f"shape {tuple(y.shape)}"
    host = np.asarray(y)
    mask = mask_fn(host)
    first = tuple(int(i) for i in np.unravel_index(int(np.argmax(mask)), mask.shape))
    smallest = f"smallest {host.min():.4g}, " if mask_fn is _negative else ""
    return f"{smallest}the first at index {first}, shape {host.shape}"


def _values(n: int) -> str:
    return "value" if n == 1 else "values"


def _not_finite(host):
    return ~np.isfinite(host)


def _negative(host):
    return host < 0


def _check_values(owner: str, name: str, y, nonnegative: tuple[str, str] | None = None):
    """Raise a ``ValueError`` when concrete ``y`` holds NaN or inf, or negative values when
    ``nonnegative = (why they cannot be, how to fix it)``; traced ``y`` passes.

    A ``jax.Array`` is checked by one small compiled reduction (its minimum and maximum)
    where it lives, with no copy of the data to the host; values are counted, and read on
    the host, only to describe a failure.
    """
    if _is_traced(y):
        return
    on_device = isinstance(y, jax.Array)
    if not on_device:
        y = np.asarray(y)
        if not (np.issubdtype(y.dtype, np.number) or y.dtype == np.bool_):
            return  # not numeric: the loss itself reports what it cannot use
    if np.size(y) == 0:
        return
    lo, hi = (float(v) for v in np.asarray(_device_extremes(y) if on_device else _extremes(np, y)))
    negative = nonnegative is not None and not jnp.iscomplexobj(y) and lo < 0
    if math.isfinite(lo) and math.isfinite(hi) and not negative:
        return  # the common case: one pass, no counting
    counts = _device_counts(y) if on_device else _counts(np, y)
    n_bad, n_nan, n_negative = (int(c) for c in np.asarray(counts))
    size = int(np.size(y))
    if n_bad:
        kinds = ((n_nan, "NaN"), (n_bad - n_nan, "infinite"))
        found = " and ".join(f"{n} {kind}" for n, kind in kinds if n)
        raise ValueError(
            f"{owner}: {name} must hold finite values, but has {found} "
            f"{_values(n_bad)} (of {size}; {_where(y, _not_finite)}). Replace them (e.g. "
            "jnp.nan_to_num(y)) and give those pixels zero weight with cc.losses.WeightedL2, "
            "or leave them out of the data."
        )
    if nonnegative is not None and n_negative:
        why, fix = nonnegative
        raise ValueError(
            f"{owner}: {name} must be >= 0 ({why}), but has {n_negative} negative "
            f"{_values(n_negative)} (of {size}; {_where(y, _negative)}). {fix}"
        )


def _check_weight_shape(owner: str, name: str, weight_shape, target: str, target_shape) -> None:
    """Weights must broadcast to the measurement's shape (not enlarge it)."""
    weight_shape, target_shape = tuple(weight_shape), tuple(target_shape)
    try:
        fits = np.broadcast_shapes(weight_shape, target_shape) == target_shape
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(
            f"{owner}: {name} of shape {weight_shape} do not broadcast to the shape "
            f"{target_shape} of {target}. Give the weights the measurement's shape "
            f"{target_shape}, or one that broadcasts to it (such as () for a single weight)."
        )


class Loss(Struct):
    """Base class: subclasses implement :meth:`elementwise` (or :meth:`value`)."""

    # (why the measurements cannot be negative, how to fix data that is): checked by
    # check_data for losses of counts or intensities; None allows any sign.
    _nonnegative = None

    target: Any = static_field()
    reduction: str = static_field()
    name: str = static_field()

    def __init__(self, target, reduction: str, name: str):
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
        self.target, self.reduction, self.name = target, reduction, name

    def measurement(self, batch):
        """``batch[target]``, with an error listing the batch's keys when it is missing."""
        return self._lookup(batch, self.target, "target")

    def _lookup(self, batch, key, argument):
        try:
            return batch[key]
        except (KeyError, TypeError, IndexError):
            keys = list(batch) if hasattr(batch, "keys") else type(batch).__name__
            raise KeyError(
                f"{type(self).__name__} reads batch[{key!r}], but the batch has {keys}. Pass "
                f"that entry in the data or set {argument}=..."
            ) from None

    def check_data(self, data) -> None:
        """Raise a ``ValueError`` when ``data`` holds measurements this loss cannot model.

        Checks concrete arrays only (traced ones pass): NaN or inf in ``data[target]``, and
        what a subclass adds (negative counts for :class:`Poisson` ...). Solvers call it
        (through :meth:`calcil.Objective.check_data`) before compiling.

        Raises:
            KeyError: ``data`` has no entry ``target``.
            ValueError: naming the entry, what is wrong with it, and how to fix it.
        """
        if self.target is None:
            return
        _check_values(
            type(self).__name__,
            self._data_name(),
            self.measurement(data),
            nonnegative=self._nonnegative,
        )

    def _data_name(self) -> str:
        return f"data[{self.target!r}]"

    def elementwise(self, prediction, measurement, batch) -> jax.Array:
        raise NotImplementedError(f"{type(self).__name__} does not implement elementwise()")

    def value(self, prediction, batch) -> jax.Array:
        y = self.measurement(batch)
        if jnp.shape(prediction) != jnp.shape(y):
            raise ValueError(
                f"{type(self).__name__}: prediction of shape {jnp.shape(prediction)} does not "
                f"match batch[{self.target!r}] of shape {jnp.shape(y)}"
            )
        return self._reduce(prediction, y, batch)

    def _reduce(self, prediction, y, batch):
        e = self.elementwise(prediction, y, batch)
        return jnp.sum(e) if self.reduction == "sum" else jnp.mean(e)

    def __call__(self, prediction, batch) -> jax.Array:
        return self.value(prediction, batch)

    def terms(self, prediction, batch) -> dict[str, jax.Array]:
        """Named values for logging: ``{name: value}``."""
        return {self.name: self(prediction, batch)}

    def __mul__(self, weight):
        if isinstance(weight, Loss) or jnp.ndim(weight) != 0:
            raise TypeError("a loss can be multiplied by a scalar weight only")
        return WeightedLoss(weight, self)

    __rmul__ = __mul__

    def __add__(self, other):
        if not isinstance(other, Loss):
            return NotImplemented
        return LossSum((self, other))

    def _repr_fields(self):
        fields = super()._repr_fields()
        if fields.get("reduction") == "sum":
            del fields["reduction"]
        fields.pop("name", None)
        return fields


class L2(Loss):
    """``0.5 sum |prediction - y|^2`` (Gaussian noise), real or complex.

    Example:
        >>> import jax.numpy as jnp, calcil as cc
        >>> float(cc.losses.L2("y")(jnp.array([1.0, 3.0]), {"y": jnp.array([0.0, 1.0])}))
        2.5
    """

    def __init__(self, target="y", reduction="sum", name="l2"):
        super().__init__(target, reduction, name)

    def elementwise(self, prediction, y, batch):
        return 0.5 * _abs_sq(prediction - y)

    def _reduce(self, prediction, y, batch):
        # The 0.5 after the reduction: one elementwise pass fewer, forward and backward.
        e = _abs_sq(prediction - y)
        return 0.5 * (jnp.sum(e) if self.reduction == "sum" else jnp.mean(e))


def _abs_sq(r):
    return r.real**2 + r.imag**2 if jnp.iscomplexobj(r) else r * r


class WeightedL2(Loss):
    """``0.5 sum w |prediction - y|^2`` with weights ``w`` (inverse noise variances).

    ``weights`` is an array (broadcast with the measurement) or the name of a batch entry,
    which is sampled along with the measurement in mini-batches.

    Example:
        >>> import jax.numpy as jnp, calcil as cc
        >>> loss = cc.losses.WeightedL2("y", jnp.array([1.0, 4.0]))
        >>> float(loss(jnp.array([1.0, 1.0]), {"y": jnp.zeros(2)}))
        2.5
    """

    weights: Any
    weights_key: str | None = static_field()

    def __init__(self, target="y", weights=None, reduction="sum", name="weighted_l2"):
        if weights is None:
            raise ValueError("WeightedL2 needs weights: an array or the name of a batch entry")
        is_key = isinstance(weights, str)
        self.weights = None if is_key else jnp.asarray(weights)
        self.weights_key = weights if is_key else None
        super().__init__(target, reduction, name)

    def _weights(self, batch):
        if self.weights_key is None:
            return self.weights, "the weights"
        weights = self._lookup(batch, self.weights_key, "weights")
        return weights, f"the weights data[{self.weights_key!r}]"

    def check_data(self, data) -> None:
        """As :meth:`Loss.check_data`; the weights must also be finite, non-negative (inverse
        variances) and broadcast to the measurement's shape."""
        super().check_data(data)
        y = self.measurement(data)
        w, name = self._weights(data)
        _check_weight_shape("WeightedL2", name, jnp.shape(w), self._data_name(), jnp.shape(y))
        _check_values(
            "WeightedL2",
            name,
            w,
            nonnegative=(
                "weights are inverse noise variances",
                "Use weight 0 for pixels to ignore and positive weights elsewhere.",
            ),
        )

    def elementwise(self, prediction, y, batch):
        w, name = self._weights(batch)
        _check_weight_shape("WeightedL2", name, jnp.shape(w), f"batch[{self.target!r}]", y.shape)
        r = prediction - y
        return 0.5 * w * jnp.real(r * jnp.conj(r))


class Poisson(Loss):
    """Poisson negative log-likelihood ``sum(p - y log p)`` (the constant ``log y!`` dropped).

    ``p`` is the predicted mean photon count; a complex prediction is a field and its
    intensity ``|u|^2`` is used. Safe at zero and below: for ``p < eps`` the term continues
    along its tangent at ``eps`` (finite, convex, and its slope ``1 - y/eps`` pushes ``p``
    back up where photons were counted); pixels with ``y = 0`` contribute ``p`` alone.

    Example:
        >>> import jax.numpy as jnp, calcil as cc
        >>> float(cc.losses.Poisson("y")(jnp.array([1.0, 0.0]), {"y": jnp.array([1.0, 0.0])}))
        1.0
    """

    eps: float = static_field()
    _nonnegative = (
        "photon counts",
        "Pass counts (for a background-subtracted or offset image add the offset back, or "
        "clip with jnp.maximum(y, 0)), or use cc.losses.L2 for data that can be negative.",
    )

    def __init__(self, target="y", reduction="sum", eps=1e-12, name="poisson"):
        self.eps = float(eps)
        super().__init__(target, reduction, name)

    def elementwise(self, prediction, y, batch):
        p = _intensity(prediction)
        eps = jnp.asarray(self.eps, p.dtype)
        q = jnp.maximum(p, eps)
        term = q - jnp.where(y > 0, y * jnp.log(q), 0)
        below = jnp.where(y > 0, 1 - y / eps, 1) * (p - eps)  # tangent continuation
        return jnp.where(p < eps, term + below, term)


class Amplitude(Loss):
    """Amplitude loss ``0.5 sum (sqrt(p) - sqrt(y))^2`` for phase retrieval.

    ``p`` is a predicted intensity; a complex prediction is a field and ``|u|^2`` is used (so
    the loss is ``0.5 sum (|u| - sqrt(y))^2``). The square root has a finite derivative at 0.

    Example:
        >>> import jax.numpy as jnp, calcil as cc
        >>> float(cc.losses.Amplitude("y")(jnp.array([4.0]), {"y": jnp.array([1.0])}))
        0.5
    """

    _nonnegative = (
        "measured intensities, whose square roots are the amplitudes",
        "Clip noisy intensities with jnp.maximum(y, 0), or use cc.losses.L2 on the intensities.",
    )

    def __init__(self, target="y", reduction="sum", name="amplitude"):
        super().__init__(target, reduction, name)

    def elementwise(self, prediction, y, batch):
        return 0.5 * (_safe_sqrt(_intensity(prediction)) - _safe_sqrt(y)) ** 2


class WeightedLoss(Loss):
    """``w * loss``; ``w`` is a leaf (traceable)."""

    weight: Any
    loss: Loss

    def __init__(self, weight, loss: Loss):
        self.weight, self.loss = weight, loss
        super().__init__(loss.target, loss.reduction, loss.name)

    def check_data(self, data) -> None:
        self.loss.check_data(data)

    def value(self, prediction, batch):
        return self.weight * self.loss.value(prediction, batch)

    def terms(self, prediction, batch):
        return {k: self.weight * v for k, v in self.loss.terms(prediction, batch).items()}

    def __repr__(self):
        return f"{short_repr(self.weight)} * {self.loss!r}"


class LossSum(Loss):
    """``loss_a + loss_b``: values add; each term keeps its name (duplicates numbered)."""

    losses: tuple

    def __init__(self, losses):
        flat = []
        for loss in losses:
            flat += list(loss.losses) if isinstance(loss, LossSum) else [loss]
        self.losses = tuple(flat)
        super().__init__(None, "sum", "+".join(loss.name for loss in self.losses))

    def check_data(self, data) -> None:
        for loss in self.losses:
            loss.check_data(data)

    def value(self, prediction, batch):
        return sum(loss.value(prediction, batch) for loss in self.losses)

    def terms(self, prediction, batch):
        return merge_terms(loss.terms(prediction, batch) for loss in self.losses)

    def __repr__(self):
        return " + ".join(repr(loss) for loss in self.losses)

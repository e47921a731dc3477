"""Data-fidelity terms: compare a prediction with a measurement taken from the batch.

A loss maps ``(prediction, batch) -> scalar``; ``batch[target]`` is the measurement. Losses
are immutable pytrees; ``w * loss`` weights one and ``loss_a + loss_b`` adds them, both giving
a :class:`LossSum` (the loss family of the weighted sums in :mod:`calcil._internal.terms`;
each term is logged under its own name). ``reduction="mean"`` averages over elements instead
of summing.

``loss.check_data(data)`` validates concrete measurements before a solver compiles anything:
NaN or infinite values in any target, negative counts for :class:`Poisson`, negative
intensities for :class:`Amplitude`, and weights of :class:`WeightedLeastSquares` (shape, sign,
finiteness) are a ``ValueError`` that names the entry and says how to fix it.

Old names kept as aliases: ``L2`` is :class:`LeastSquares`, ``WeightedL2`` is
:class:`WeightedLeastSquares`; reprs, messages and logged names (``l2``, ``weighted_l2``) are
those of the old names.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from calcil._internal.measurements import check_values, check_weight_shape
from calcil._internal.struct import static_field
from calcil._internal.terms import Sum, Term

__all__ = [
    "L1",
    "L2",
    "Amplitude",
    "ElementwiseLoss",
    "LeastSquares",
    "Loss",
    "LossSum",
    "Poisson",
    "WeightedL2",
    "WeightedLeastSquares",
]

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


class Loss(Term, family="loss"):
    """Base class of data terms: ``loss(prediction, batch)`` is a real scalar.

    Subclasses implement :meth:`value`, and :meth:`reductions` to run on several devices;
    most compare the prediction with one measurement and derive from :class:`ElementwiseLoss`.
    A convex quadratic overrides :meth:`not_quadratic` to return ``None``.
    """

    has_prox = False

    def value(self, prediction, batch) -> jax.Array:
        """The loss of ``prediction`` against the measurements in ``batch`` (override)."""
        raise NotImplementedError(f"{self._display} does not implement value()")

    def prox(self, v, step, batch) -> jax.Array:
        """``argmin_u 0.5 ||u - v||^2 + step * loss(u, batch)``, for losses with a closed
        form (``has_prox``): what primal-dual methods (:class:`~calcil.PDHG`) need."""
        raise NotImplementedError(
            f"{self._display} has no proximal operator: use it with cc.GradientSolver or "
            "cc.ProximalGradient."
        )

    def check_data(self, data) -> None:
        """Raise a ``ValueError`` when ``data`` holds measurements this loss cannot model
        (nothing to check here; :class:`ElementwiseLoss` checks its target)."""

    def reductions(self) -> tuple[str, ...]:
        """How each logged term combines over measurements, in the order of :meth:`terms`:
        ``"sum"`` when it adds the measurements' contributions, ``"mean"`` when it averages
        them. A run on several devices reduces each term over the devices accordingly."""
        raise NotImplementedError(
            f"{self._display} does not say how its value combines over measurements: "
            "implement reductions() -> ('sum',) or ('mean',) to run it on several devices."
        )

    def _weight_error(self, weight) -> str | None:
        if super()._weight_error(weight) is not None:
            return "a loss can be multiplied by a scalar weight only"
        return None


class ElementwiseLoss(Loss):
    """A loss of the measurement ``batch[target]``, summed (or averaged) over its elements.

    Subclasses implement :meth:`elementwise` (or :meth:`value`); a class attribute
    ``_nonnegative = (why, how to fix)`` makes :meth:`check_data` reject negative data.

    Example:
        >>> import jax.numpy as jnp, calcil as cc
        >>> class Absolute(cc.losses.ElementwiseLoss):
        ...     def __init__(self, target="y", reduction="sum"):
        ...         super().__init__(target, reduction, "absolute")
        ...     def elementwise(self, prediction, y, batch):
        ...         return jnp.abs(prediction - y)
        >>> float(Absolute()(jnp.array([1.0, 3.0]), {"y": jnp.array([0.0, 1.0])}))
        3.0
    """

    # (why the measurements cannot be negative, how to fix data that is): checked by
    # check_data for losses of counts or intensities; None allows any sign.
    _nonnegative = None

    target: Any = static_field()
    reduction: str = static_field()

    def __init__(self, target, reduction: str, name: str):
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
        self.target, self.reduction = target, reduction
        super().__init__(name)

    def measurement(self, batch):
        """``batch[target]``, with an error listing the batch's keys when it is missing."""
        return self._lookup(batch, self.target, "target")

    def _lookup(self, batch, key, argument):
        try:
            return batch[key]
        except (KeyError, TypeError, IndexError):
            keys = list(batch) if hasattr(batch, "keys") else type(batch).__name__
            raise KeyError(
                f"{self._display} reads batch[{key!r}], but the batch has {keys}. Pass "
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
        check_values(
            self._display,
            self._data_name(),
            self.measurement(data),
            nonnegative=self._nonnegative,
        )

    def _data_name(self) -> str:
        return f"data[{self.target!r}]"

    def reductions(self) -> tuple[str, ...]:
        return (self.reduction,)

    def elementwise(self, prediction, measurement, batch) -> jax.Array:
        raise NotImplementedError(f"{self._display} does not implement elementwise()")

    def value(self, prediction, batch) -> jax.Array:
        y = self.measurement(batch)
        if jnp.shape(prediction) != jnp.shape(y):
            raise ValueError(
                f"{self._display}: prediction of shape {jnp.shape(prediction)} does not "
                f"match batch[{self.target!r}] of shape {jnp.shape(y)}"
            )
        return self._reduce(prediction, y, batch)

    def _reduce(self, prediction, y, batch):
        e = self.elementwise(prediction, y, batch)
        return jnp.sum(e) if self.reduction == "sum" else jnp.mean(e)

    def prox(self, v, step, batch):
        y = self.measurement(batch)
        t = step if self.reduction == "sum" else step / jnp.size(y)
        return self._prox(jnp.asarray(v), y, t, batch)

    def _prox(self, v, y, t, batch):
        """The elementwise prox of ``t * elementwise(., y)`` (subclasses with a closed form)."""
        return super().prox(v, t, batch)

    def _repr_fields(self):
        fields = super()._repr_fields()
        if fields.get("reduction") == "sum":
            del fields["reduction"]
        return fields


class LeastSquares(ElementwiseLoss):
    """``0.5 sum |prediction - y|^2`` (Gaussian noise), real or complex.

    ``L2`` is an alias of this class; reprs and messages call it ``L2`` and logs name it
    ``l2``, as before the rename. A convex quadratic.

    Example:
        >>> import jax.numpy as jnp, calcil as cc
        >>> loss = cc.losses.LeastSquares("y")
        >>> float(loss(jnp.array([1.0, 3.0]), {"y": jnp.array([0.0, 1.0])}))
        2.5
        >>> cc.losses.L2 is cc.losses.LeastSquares
        True
    """

    _label = "L2"

    def __init__(self, target="y", reduction="sum", name="l2"):
        super().__init__(target, reduction, name)

    def elementwise(self, prediction, y, batch):
        return 0.5 * _abs_sq(prediction - y)

    def _reduce(self, prediction, y, batch):
        # The 0.5 after the reduction: one elementwise pass fewer, forward and backward.
        e = _abs_sq(prediction - y)
        return 0.5 * (jnp.sum(e) if self.reduction == "sum" else jnp.mean(e))

    has_prox = True

    def _prox(self, v, y, t, batch):
        return ((v + t * y) / (1 + t)).astype(v.dtype)

    def not_quadratic(self):
        return None


def _abs_sq(r):
    return r.real**2 + r.imag**2 if jnp.iscomplexobj(r) else r * r


class WeightedLeastSquares(ElementwiseLoss):
    """``0.5 sum w |prediction - y|^2`` with per-element weights ``w`` (inverse noise variances).

    ``weights`` is an array (broadcast with the measurement) or the name of a batch entry,
    which is sampled along with the measurement in mini-batches. ``WeightedL2`` is an alias of
    this class; reprs and messages call it ``WeightedL2`` and logs name it ``weighted_l2``. A
    convex quadratic (the weights must be non-negative: :meth:`check_data` says so).

    Example:
        >>> import jax.numpy as jnp, calcil as cc
        >>> loss = cc.losses.WeightedLeastSquares("y", jnp.array([1.0, 4.0]))
        >>> float(loss(jnp.array([1.0, 1.0]), {"y": jnp.zeros(2)}))
        2.5
    """

    _label = "WeightedL2"

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
        """As :meth:`ElementwiseLoss.check_data`; the weights must also be finite,
        non-negative (inverse variances) and broadcast to the measurement's shape."""
        super().check_data(data)
        y = self.measurement(data)
        w, name = self._weights(data)
        check_weight_shape(self._display, name, jnp.shape(w), self._data_name(), jnp.shape(y))
        check_values(
            self._display,
            name,
            w,
            nonnegative=(
                "weights are inverse noise variances",
                "Use weight 0 for pixels to ignore and positive weights elsewhere.",
            ),
        )

    def elementwise(self, prediction, y, batch):
        w, name = self._weights(batch)
        where = f"batch[{self.target!r}]"
        check_weight_shape(self._display, name, jnp.shape(w), where, y.shape)
        r = prediction - y
        return 0.5 * w * jnp.real(r * jnp.conj(r))

    has_prox = True

    def _prox(self, v, y, t, batch):
        w, _ = self._weights(batch)
        return ((v + t * w * y) / (1 + t * w)).astype(v.dtype)

    def not_quadratic(self):
        return None


class Poisson(ElementwiseLoss):
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

    has_prox = True

    def _prox(self, v, y, t, batch):
        """``((v - t) + sqrt((v - t)^2 + 4 t y)) / 2``: the positive root of
        ``u^2 + (t - v) u - t y = 0`` (real predictions: counts, not fields)."""
        if jnp.iscomplexobj(v):
            raise ValueError(
                "Poisson's prox acts on predicted counts (real); a complex prediction is a "
                "field whose intensity is compared, which has no closed-form prox."
            )
        d = v - t
        return (0.5 * (d + jnp.sqrt(d * d + 4 * t * y))).astype(v.dtype)


class L1(ElementwiseLoss):
    """``sum |prediction - y|``: least absolute deviations, robust to outliers (impulse
    noise, dead pixels). Not smooth: use it with :class:`~calcil.PDHG` (prox: soft
    thresholding towards ``y``) or :class:`~calcil.GradientSolver`.

    Example:
        >>> import jax.numpy as jnp, calcil as cc
        >>> float(cc.losses.L1("y")(jnp.array([1.0, 3.0]), {"y": jnp.array([0.0, 5.0])}))
        3.0
    """

    has_prox = True

    def __init__(self, target="y", reduction="sum", name="l1"):
        super().__init__(target, reduction, name)

    def elementwise(self, prediction, y, batch):
        return jnp.abs(prediction - y)

    def _prox(self, v, y, t, batch):
        r = v - y
        a = jnp.abs(r)
        shrunk = jnp.where(a > t, r * (1 - t / jnp.where(a > 0, a, 1)), 0)
        return (y + shrunk).astype(v.dtype)


class Amplitude(ElementwiseLoss):
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


class LossSum(Sum, Loss):
    """``w_1 L_1 + w_2 L_2 + ...``: what ``w * loss`` and ``loss_a + loss_b`` build.

    Values add; each term keeps its name in the logs (duplicates numbered). Data checks and
    reductions are those of every term. Weights are leaves (traceable).

    Example:
        >>> import jax.numpy as jnp, calcil as cc
        >>> loss = cc.losses.LeastSquares("y") + 0.5 * cc.losses.Poisson("y", reduction="mean")
        >>> loss.reductions()
        ('sum', 'mean')
        >>> loss
        L2(target='y') + 0.5 * Poisson(target='y', reduction='mean', eps=1e-12)
    """

    @property
    def has_prox(self) -> bool:
        return len(self.summands) == 1 and self.summands[0].has_prox

    def prox(self, v, step, batch):
        if not self.has_prox:
            return super().prox(v, step, batch)
        ((weight, loss),) = self._weighted_parts()
        return loss.prox(v, step if weight is None else weight * step, batch)

    def check_data(self, data) -> None:
        for loss in self.summands:
            loss.check_data(data)

    def reductions(self) -> tuple[str, ...]:
        return tuple(r for loss in self.summands for r in loss.reductions())


Loss._sum = LossSum

#: Alias of :class:`LeastSquares`, the name it had first.
L2 = LeastSquares
#: Alias of :class:`WeightedLeastSquares`, the name it had first.
WeightedL2 = WeightedLeastSquares

"""Weighted sums of named terms: the algebra that losses and priors share.

A :class:`Term` is a named, immutable pytree whose value is a real scalar: a prior ``R(x)``, a
loss ``L(prediction, batch)``. ``w * term`` and ``a + b`` build one :class:`Sum`,
``w_1 T_1 + w_2 T_2 + ...``:

- the weights are pytree leaves, so they can be traced, differentiated and changed without
  recompiling;
- nested sums and multiples flatten: ``w1 * (w2 * T)`` is ``(w1 w2) * T`` and
  ``w * (a + b)`` is ``w a + w b``;
- every term keeps its name for logging; repeated names are numbered (``l1``, ``l1_2``).

A family of terms (priors, losses) is a subclass declared with ``family="prior"``: its terms
add only to each other, it fixes the call signature (``prior(x)``, ``loss(prediction,
batch)``), and a thin subclass of :class:`Sum` that it names in ``_sum`` adds what the family
needs (the prox of a scaled prior, the data checks of a sum of losses).

Every term describes itself to the solvers, so they never inspect the algebra:
:meth:`Term.parts` is the flat weighted sum and :meth:`Term.not_quadratic` tells whether the
term is a convex quadratic.

Example:
    >>> import calcil as cc
    >>> prior = 2.0 * (cc.priors.L1() + 3.0 * cc.priors.Tikhonov())
    >>> [(float(w), type(t).__name__) for w, t in prior.parts()]
    [(2.0, 'L1'), (6.0, 'Tikhonov')]
    >>> prior
    2 * L1() + 6 * L2()
"""

from __future__ import annotations

import numbers
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from calcil._internal.struct import Struct, merge_terms, short_repr, static_field

__all__ = ["Sum", "Term"]


def _times(a, b):
    """``a * b`` for weights, where ``None`` stands for an unweighted term (weight 1)."""
    if a is None:
        return b
    if b is None:
        return a
    return a * b


def _scaled(weight, value):
    return value if weight is None else weight * value


def _weight_shape(weight) -> tuple | None:
    """The shape of a numeric weight (``()`` for a scalar), ``None`` for anything else."""
    if isinstance(weight, numbers.Number | np.generic):
        return ()
    if isinstance(weight, jax.Array | np.ndarray):  # tracers included
        return tuple(weight.shape)
    return None


def _weight_problem(weight) -> str | None:
    """Why a weight keeps its term from being a convex quadratic; ``None`` when it does not.

    A traced weight cannot be inspected and counts as fine.
    """
    w = jnp.asarray(weight)
    if jnp.iscomplexobj(w):
        return f"its weight {short_repr(weight)} is complex"
    try:
        negative = bool(jnp.any(w < 0))
    except jax.errors.ConcretizationTypeError:
        return None
    return f"its weight {short_repr(weight)} is negative" if negative else None


class Term(Struct):
    """Base class of named scalar terms; ``w * term`` and ``a + b`` build a :class:`Sum`.

    A subclass declared with ``family="noun"`` (``class Prior(Term, family="prior")``) starts a
    family; its subclasses implement :meth:`value`. Reprs and messages call a term by its class
    name, or by ``_label`` where a class sets one (a class renamed for clarity keeps the short
    name that existing outputs show).
    """

    name: str = static_field()

    _family: ClassVar[type] = None  # the family's base class (set by family=...)
    _noun: ClassVar[str] = "term"  # "prior", "loss": used in messages
    _sum: ClassVar[type] = None  # the family's Sum subclass, what w * t and a + b build
    _label: ClassVar[str | None] = None
    _reserved_names = frozenset({"parts", "not_quadratic", "terms", "value"})

    def __init_subclass__(cls, family: str | None = None, **kwargs):
        super().__init_subclass__(**kwargs)
        if family is not None:
            cls._family, cls._noun = cls, family

    def __init__(self, name: str):
        self.name = name

    @property
    def _display(self) -> str:
        """The name used in reprs and messages."""
        return type(self).__dict__.get("_label") or type(self).__name__

    # ---------------------------------------------------------------- value and logging

    def value(self, *args) -> jax.Array:
        """The term's value (override in subclasses)."""
        raise NotImplementedError(f"{self._display} does not implement value()")

    def __call__(self, *args) -> jax.Array:
        return self.value(*args)

    def terms(self, *args) -> dict[str, jax.Array]:
        """Named values for logging: ``{name: value}`` (a sum lists each of its terms)."""
        return {self.name: self(*args)}

    # ---------------------------------------------------------------- self-description

    def parts(self) -> tuple[tuple[Any, Term], ...]:
        """The term as a flat weighted sum ``((w_1, T_1), (w_2, T_2), ...)``.

        No ``T_i`` is itself a sum; weights of nested multiples are multiplied through. A
        plain term is ``((1.0, term),)``.
        """
        return tuple((1.0 if w is None else w, t) for w, t in self._weighted_parts())

    def _weighted_parts(self) -> tuple:
        """As :meth:`parts`, with ``None`` for the weight of a term added unweighted."""
        return ((None, self),)

    def not_quadratic(self) -> str | None:
        """``None`` when the term is a convex quadratic, else a short reason why not.

        Plain terms are not quadratic (``"Poisson is not quadratic"``) unless their class
        overrides this; a sum is quadratic when every part is and no weight is negative.
        """
        return f"{self._display} is not quadratic"

    # ---------------------------------------------------------------- algebra

    def _weight_error(self, weight) -> str | None:
        """Why ``weight`` cannot scale a term of this family; ``None`` when it can."""
        noun = self._noun
        if isinstance(weight, Term):
            title = noun.capitalize()
            return f"{title} * {title} is not defined: add {noun}s with +, weight with w *"
        shape = _weight_shape(weight)
        if shape is None:
            return f"a {noun} weight must be a number, got {type(weight).__name__}"
        if shape != ():
            return f"a {noun} weight must be a scalar, got shape {shape}"
        return None

    def __mul__(self, weight):
        return self._sum((self,), (weight,))

    __rmul__ = __mul__

    def __add__(self, other):
        if not isinstance(other, self._family):
            return NotImplemented
        return self._sum((self, other))

    # ---------------------------------------------------------------- repr

    def _repr_fields(self) -> dict[str, Any]:
        return {k: v for k, v in super()._repr_fields().items() if k != "name"}

    def __repr__(self):
        fields = ", ".join(f"{k}={short_repr(v)}" for k, v in self._repr_fields().items())
        return f"{self._display}({fields})"


class Sum(Term):
    """``w_1 T_1 + w_2 T_2 + ...`` of terms of one family: its value, and its logged terms
    ``{name_i: w_i T_i}``, add up.

    Args:
        terms: the terms to add (sums among them are flattened into this one).
        weights: a scalar weight for each of ``terms``, or ``None`` for no weight (1).

    ``weights`` and ``summands`` hold the flat sum (``None`` where a term has no weight); its
    name is the names joined by ``+`` (``"tv+l1"``).
    """

    weights: tuple
    summands: tuple

    def __init__(self, terms, weights=None):
        terms = tuple(terms)
        weights = (None,) * len(terms) if weights is None else tuple(weights)
        if not terms or len(weights) != len(terms):
            raise ValueError(
                f"{type(self).__name__} needs one or more terms and one weight (or None) for "
                f"each; got {len(terms)} terms and {len(weights)} weights"
            )
        flat = []
        for weight, term in zip(weights, terms, strict=True):
            if not isinstance(term, self._family):
                raise TypeError(
                    f"{type(self).__name__} adds {self._noun} terms only; got {term!r}. A "
                    "sum combines terms of one kind (losses with losses, priors with priors)."
                )
            why = None if weight is None else term._weight_error(weight)
            if why is not None:
                raise TypeError(why)
            flat += [(_times(weight, w), t) for w, t in term._weighted_parts()]
        self.weights = tuple(w for w, _ in flat)
        self.summands = tuple(t for _, t in flat)
        super().__init__("+".join(t.name for t in self.summands))

    def _weighted_parts(self):
        return tuple(zip(self.weights, self.summands, strict=True))

    def value(self, *args):
        total = None
        for weight, term in self._weighted_parts():
            v = _scaled(weight, term.value(*args))
            total = v if total is None else total + v
        return total

    def terms(self, *args):
        return merge_terms(
            {k: _scaled(weight, v) for k, v in term.terms(*args).items()}
            for weight, term in self._weighted_parts()
        )

    def not_quadratic(self):
        for weight, term in self._weighted_parts():
            why = None if weight is None else _weight_problem(weight)
            why = why or term.not_quadratic()
            if why is not None:
                return why
        return None

    def __repr__(self):
        return " + ".join(
            repr(t) if w is None else f"{short_repr(w)} * {t!r}" for w, t in self._weighted_parts()
        )


# The base itself is a family of one kind (families set their own on subclassing).
Term._family, Term._sum = Term, Sum

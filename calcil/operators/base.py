"""Operator algebra: immutable pytree operators, composition, sums, scaling and adjoints.

An :class:`Operator` maps arrays of a declared ``input_shape``/``input_dtype`` to arrays of a
declared ``output_shape``/``output_dtype``. Dtypes follow the data unless pinned: an operator
with ``follows_dtype`` true declares its real working dtype (float32, float64 under x64),
accepts real or complex input of that precision, and returns complex output for complex
input; compositions, sums and multiples resolve their dtypes from their parts.

Operators are JAX pytrees: array fields (a PSF, a pupil, weights) are leaves, everything else
(shapes, axes, modes) is static. They can therefore be passed through ``jax.jit``,
``jax.vmap`` and ``jax.grad`` as ordinary arguments, and built from traced values inside a
forward model (blind deconvolution differentiates through a PSF).

Writing an operator::

    class Scale2(LinearOperator):
        weight: jax.Array                      # a leaf

        def __init__(self, weight, input_shape):
            self.weight = jnp.asarray(weight)
            super().__init__(input_shape, self.weight.dtype)

        def forward(self, x):
            return 2 * self.weight * x

        def adjoint(self, y):                  # optional: derived by autodiff otherwise
            return 2 * jnp.conj(self.weight) * y

Fields are assigned once, in ``__init__``; afterwards the operator is immutable. Fields
declared with :func:`static_field` are static (hashable metadata); all other fields are leaves.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from calcil._internal.dtypes import (
    accepted_dtype,
    complex_dtype_of,
    default_real,
    describe_dtype,
    is_complex,
    restrict,
)
from calcil._internal.integers import as_ints
from calcil._internal.random import device_normal
from calcil._internal.struct import Struct, short_repr, static_field
from calcil.operators._dtype_rules import check_input, compose_dtypes, sum_dtypes

Shape = tuple[int, ...]

__all__ = ["Identity", "LinearOperator", "Operator", "UnitaryFactorization", "recording"]

# The applications recorded by ``recording()``: (operator, argument, result) triples.
_RECORD: contextvars.ContextVar[list | None] = contextvars.ContextVar("calcil_record", default=None)


@contextlib.contextmanager
def recording():
    """Record every operator application in this context as ``(operator, x, A(x))``.

    Used to read the structure of a forward model (which linear operator it applies to which
    variable) by tracing it once: see :func:`calcil.operators.applied_operator`. Outside this
    context nothing is recorded.
    """
    records: list = []
    token = _RECORD.set(records)
    try:
        yield records
    finally:
        _RECORD.reset(token)


def _normalize_shape(shape, name="input_shape") -> Shape | None:
    if shape is None:
        return None
    try:
        items = tuple(shape)
    except TypeError:
        raise TypeError(f"{name} must be a tuple of ints, got {shape!r}") from None
    out = as_ints(items, name)
    if any(n < 0 for n in out):
        raise ValueError(f"{name} must be non-negative, got {out}")
    return out


def _normalize_dtype(dtype):
    return None if dtype is None else jax.dtypes.canonicalize_dtype(jnp.dtype(dtype))


_RESERVED = frozenset(
    {
        "forward",
        "adjoint",
        "autodiff_adjoint",
        "H",
        "gram",
        "norm",
        "linearize",
        "linear",
        "result_dtype",
    }
)


class UnitaryFactorization(NamedTuple):
    """``A = U @ B`` with ``U`` unitary (``U^H U = I``); see
    :meth:`LinearOperator.unitary_factorization`.

    Example:
        >>> import jax.numpy as jnp, calcil as cc
        >>> A = cc.operators.Convolve(jnp.ones((3, 3)) / 9, (8, 8))
        >>> U, B = A.unitary_factorization()
        >>> x = jnp.arange(64.0).reshape(8, 8)
        >>> bool(jnp.allclose(U(B(x)), A(x), atol=1e-4))
        True
    """

    U: Any
    B: Any


class Operator(Struct):
    """A map from arrays of ``input_shape``/``input_dtype`` to ``output_shape``/``output_dtype``.

    Subclasses implement :meth:`forward` and call ``super().__init__(input_shape, input_dtype)``
    at the end of their ``__init__``; the output shape and dtype are inferred with
    ``jax.eval_shape`` unless given. ``input_shape=None`` declares a shape-polymorphic
    elementwise operator (such as :class:`Intensity`) whose shapes are fixed by composition.

    Dtypes: ``input_dtype`` defaults to float32 (float64 under ``jax_enable_x64``). With
    ``follows_dtype=True`` (the structural operators built without ``input_dtype``) the
    operator is not pinned: ``input_dtype``/``output_dtype`` report its real working dtypes
    (what real data gives), it also accepts the complex dtype of the same precision, and
    :meth:`result_dtype` tells the output dtype for either (complex for the linear ones). A
    pinned operator takes its ``input_dtype``; a real input into a complex operator is
    promoted, and an input that would lose an imaginary part or precision is a ``ValueError``.

    Apply with ``A(x)`` or ``A @ x``; compose with ``A @ B``; ``A + B``, ``A - B``, ``c * A``
    and ``-A`` build new operators. Nothing is computed until the result is applied.
    """

    input_shape: Shape | None = static_field()
    input_dtype: Any = static_field()
    output_shape: Shape | None = static_field()
    output_dtype: Any = static_field()
    follows_dtype: bool = static_field()

    linear = False
    _reserved_names = _RESERVED

    def __init__(
        self,
        input_shape,
        input_dtype=None,
        output_shape=None,
        output_dtype=None,
        *,
        follows_dtype=False,
    ):
        self.input_shape = _normalize_shape(input_shape)
        if input_dtype is None and self.input_shape is not None:
            input_dtype = default_real()
        self.input_dtype = _normalize_dtype(input_dtype)
        if self.input_shape is not None and (output_shape is None or output_dtype is None):
            spec = jax.ShapeDtypeStruct(self.input_shape, self.input_dtype)
            out = jax.eval_shape(self.forward, spec)
            output_shape = out.shape if output_shape is None else output_shape
            output_dtype = out.dtype if output_dtype is None else output_dtype
        self.output_shape = _normalize_shape(output_shape, "output_shape")
        self.output_dtype = _normalize_dtype(output_dtype)
        # Following the data needs a real working dtype (complex input is the other kind).
        self.follows_dtype = bool(
            follows_dtype
            and self.input_dtype is not None
            and self.output_dtype is not None
            and not is_complex(self.input_dtype)
        )

    # ------------------------------------------------------------------ dtypes
    def result_dtype(self, dtype):
        """The output dtype for an input of ``dtype`` (after the operator embeds it).

        ``output_dtype`` for a pinned operator; for one that follows the data, its complex
        counterpart when ``dtype`` is complex. A shape-polymorphic operator's is traced on a
        scalar of ``dtype``.
        """
        if dtype is None:
            return self.output_dtype
        if self.input_shape is None:
            return jax.eval_shape(self.forward, jax.ShapeDtypeStruct((), dtype)).dtype
        if self.follows_dtype and is_complex(dtype):
            return complex_dtype_of(self.output_dtype)
        return self.output_dtype

    def _accepted_dtype(self, dtype):
        """The dtype an input of ``dtype`` is embedded into, ``None`` when it would lose data."""
        return accepted_dtype(dtype, self.input_dtype, self.follows_dtype)

    def _describe_input(self) -> str:
        return describe_dtype(self.input_dtype, self.follows_dtype)

    # ------------------------------------------------------------------ application
    def forward(self, x: jax.Array) -> jax.Array:
        """Apply the operator without checks (override in subclasses)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement forward()")

    def __call__(self, x) -> jax.Array:
        checked = check_input(self, x)
        y = self.forward(checked)
        if self.input_shape is not None:  # shape-polymorphic operators: forward decides
            out = self.result_dtype(checked.dtype)
            y = y if out is None else restrict(y, out)
        records = _RECORD.get()
        if records is not None:
            records.append((self, x, y))
        return y

    def __matmul__(self, other):
        if isinstance(other, Operator):
            return compose(self, other)
        return self(other)

    def __rmatmul__(self, other):
        raise TypeError(
            f"cannot compute array @ {type(self).__name__}: operators act from the left, "
            "write A @ x or A(x)."
        )

    # ------------------------------------------------------------------ algebra
    def __add__(self, other):
        if not isinstance(other, Operator):
            return NotImplemented
        return add(self, other)

    def __sub__(self, other):
        if not isinstance(other, Operator):
            return NotImplemented
        return add(self, scale(-1, other))

    def __neg__(self):
        return scale(-1, self)

    def __mul__(self, other):
        if isinstance(other, Operator):
            raise TypeError(
                "Operator * Operator is not defined: use A @ B to compose, or "
                "cc.operators.Diagonal(w) for an elementwise product."
            )
        if jnp.ndim(other) != 0:
            raise TypeError(
                f"an operator can be multiplied by a scalar only, got an array of shape "
                f"{jnp.shape(other)}: use cc.operators.Diagonal(w) for elementwise weights."
            )
        return scale(other, self)

    __rmul__ = __mul__

    def __truediv__(self, other):
        return self * (1 / other)

    def linearize(self, x) -> LinearOperator:
        """The Jacobian of this operator at ``x`` as a :class:`LinearOperator` (``jax.jvp``)."""
        x = check_input(self, x)
        return Linearization(self, x)

    # ------------------------------------------------------------------ display
    def _repr_fields(self) -> dict[str, Any]:
        skip = {"input_shape", "input_dtype", "output_shape", "output_dtype", "follows_dtype"}
        return {k: v for k, v in super()._repr_fields().items() if k not in skip}

    def __repr__(self):
        parts = [f"{k}={short_repr(v)}" for k, v in self._repr_fields().items()]
        if self.input_shape is not None:
            follows = self.follows_dtype
            parts.append(
                f"{self.input_shape} {describe_dtype(self.input_dtype, follows)} -> "
                f"{self.output_shape} {describe_dtype(self.output_dtype, follows)}"
            )
        return f"{type(self).__name__}({', '.join(parts)})"


class LinearOperator(Operator):
    """An operator that is linear over the reals: ``A(a x + b z) = a A(x) + b A(z)``.

    ``A.H`` is the adjoint under the real inner product ``Re <x, y> = Re sum(conj(x) * y)``,
    i.e. the conjugate transpose for complex maps. Subclasses may write :meth:`adjoint` by hand
    (fast path); otherwise it is derived by autodiff (``jax.linear_transpose`` with the
    conjugations that turn the bilinear transpose into the adjoint).
    """

    linear = True

    def adjoint(self, y: jax.Array) -> jax.Array:
        """Apply the adjoint without checks (override for a hand-written fast path)."""
        return self.autodiff_adjoint(y)

    def _adjoint_result_dtype(self, dtype):
        """The adjoint's output dtype for ``y`` of ``dtype``: the input space of ``A`` for
        data of that kind. Complex for complex ``y`` when the dtype follows the data and real
        input gives real output; otherwise ``y`` does not tell the input's kind, and the
        adjoint is the one on ``input_dtype``."""
        if self.follows_dtype and is_complex(dtype) and not is_complex(self.output_dtype):
            return complex_dtype_of(self.input_dtype)
        return self.input_dtype

    def autodiff_adjoint(self, y: jax.Array) -> jax.Array:
        """The adjoint derived by transposing :meth:`forward`: ``conj(A^T conj(y))``."""
        y = jnp.asarray(y)
        in_dtype = self._adjoint_result_dtype(y.dtype)
        spec = jax.ShapeDtypeStruct(self.input_shape, in_dtype)
        transpose = jax.linear_transpose(self.forward, spec)
        out_dtype = self.result_dtype(in_dtype)
        if out_dtype is not None:
            y = restrict(y, out_dtype)
        (x,) = transpose(jnp.conj(y))
        return jnp.conj(x)

    @property
    def has_custom_adjoint(self) -> bool:
        """True when the operator defines a hand-written :meth:`adjoint`."""
        return type(self).adjoint is not LinearOperator.adjoint

    @property
    def H(self) -> LinearOperator:
        """The adjoint operator ``A^H`` (conjugate transpose)."""
        return Adjoint(self)

    @property
    def gram(self) -> LinearOperator:
        """The normal operator ``A^H A`` (operators with cheaper structure override it)."""
        return compose(self.H, self)

    def unitary_factorization(self, dtype=None) -> UnitaryFactorization | None:
        """``A = U @ B`` with ``U`` unitary and ``B`` cheaper to apply than ``A``, or ``None``.

        ``dtype`` is the dtype of the inputs it will serve (default ``input_dtype``): an
        operator whose dtype follows the data may factor real and complex data differently.

        The structure behind the solvers' least-squares fast path: since ``U^H U = I``,
        ``||A x - y|| = ||B x - U^H y||``, so ``0.5 ||A x - y||^2`` is evaluated with
        ``U^H y`` computed once and each step costs ``B`` and ``B^H`` (the Gram
        ``A^H A = B^H B`` in factored form). A circular :class:`~calcil.operators.Convolve`
        and the transfer-function propagators (``AngularSpectrum``, ``Fresnel``, ``Pupil``)
        are ``F^H (D F)``: one FFT per application of ``B`` instead of two. A unitary
        operator (``FFT``, ``Fraunhofer``, a unit-modulus ``Diagonal``) is ``U @ I``.
        Compositions, adjoints and scalar multiples derive theirs from their parts.

        Operators declare it by overriding this method; ``None`` (the default) means no
        factorization saves work. ``cc.testing.check_unitary_factorization`` checks one.
        """
        return None

    def norm(self, key=None, iterations: int = 100) -> jax.Array:
        """Spectral norm ``||A||_2`` (largest singular value) by power iteration on ``A^H A``.

        Args:
            key: a ``jax.random`` key for the starting vector (default ``key(0)``).
            iterations: power iterations; the error decays like ``(s2/s1)^(2 iterations)``.
        """
        if self.input_shape is None:
            raise ValueError(f"{self!r} has no input shape; compose it with a shaped operator")
        key = jax.random.key(0) if key is None else key
        v0 = device_normal(key, self.input_shape, self.input_dtype)
        return _power_iteration(self, v0, iterations)

    def __repr__(self):
        return super().__repr__()


@functools.partial(jax.jit, static_argnames="iterations")
def _power_iteration(op: LinearOperator, v, iterations: int):
    def step(_, v):
        w = op.H(op(v))
        return w / jnp.linalg.norm(w)

    v = jax.lax.fori_loop(0, iterations, step, v / jnp.linalg.norm(v))
    return jnp.linalg.norm(op(v))


# ---------------------------------------------------------------------- combinators
class Identity(LinearOperator):
    """``I x = x``; the dtype follows the data unless ``input_dtype`` pins it.

    Example:
        >>> import jax.numpy as jnp, calcil as cc
        >>> cc.operators.Identity((3,))(jnp.arange(3.0)).tolist()
        [0.0, 1.0, 2.0]
    """

    def __init__(self, input_shape, input_dtype=None):
        super().__init__(
            input_shape,
            default_real() if input_dtype is None else input_dtype,
            follows_dtype=input_dtype is None,
        )

    def forward(self, x):
        return x

    def adjoint(self, y):
        return y

    @property
    def gram(self):
        return self


class Adjoint(LinearOperator):
    """The adjoint ``A^H`` of a linear operator; ``A.H.H`` is ``A`` again."""

    operator: LinearOperator

    def __init__(self, operator: LinearOperator):
        self.operator = operator
        super().__init__(
            operator.output_shape,
            operator.output_dtype,
            operator.input_shape,
            operator.input_dtype,
            follows_dtype=operator.follows_dtype,
        )

    def result_dtype(self, dtype):
        return self.operator._adjoint_result_dtype(dtype)

    def _adjoint_result_dtype(self, dtype):
        return self.operator.result_dtype(dtype)

    def forward(self, y):
        return restrict(self.operator.adjoint(y), self.operator._adjoint_result_dtype(y.dtype))

    def adjoint(self, x):
        return self.operator.forward(x)

    @property
    def H(self):
        return self.operator

    def unitary_factorization(self, dtype=None):
        """A unitary operator's adjoint is unitary (``U^H = U^H @ I``); nothing else carries
        over (``(U B)^H = B^H U^H`` has its unitary factor on the right)."""
        factors = self.operator.unitary_factorization()
        if factors is None or not isinstance(factors.B, Identity):
            return None
        return UnitaryFactorization(self, Identity(self.input_shape, self.input_dtype))

    def __repr__(self):
        return f"({self.operator!r}).H"


def _shape_mismatch(kind, outer, inner, detail):
    return ValueError(
        f"cannot {kind} {outer!r} and {inner!r}: {detail}. Insert a Crop, Pad or reshape "
        "operator, or rebuild one of them with matching shapes."
    )


class Composition(Operator):
    """``outer @ inner``: apply ``inner`` then ``outer``; dtypes resolved from both parts."""

    outer: Operator
    inner: Operator

    def __init__(self, outer: Operator, inner: Operator):
        if outer.input_shape is not None and inner.output_shape is not None:
            if outer.input_shape != inner.output_shape:
                raise _shape_mismatch(
                    "compose",
                    outer,
                    inner,
                    f"the left operator expects shape {outer.input_shape} but the right "
                    f"one produces {inner.output_shape}",
                )
        in_dtype, follows = compose_dtypes(outer, inner)
        self.outer, self.inner = outer, inner
        shaped = outer.input_shape is not None
        out_dtype = None
        if shaped and in_dtype is not None:
            middle = outer._accepted_dtype(inner.result_dtype(in_dtype))
            out_dtype = outer.result_dtype(middle)
        super().__init__(
            inner.input_shape,
            in_dtype,
            outer.output_shape if shaped else None,
            out_dtype,
            follows_dtype=follows,
        )

    def result_dtype(self, dtype):
        if not self.follows_dtype or dtype is None or not is_complex(dtype):
            return super().result_dtype(dtype)
        return self.outer.result_dtype(self.inner.result_dtype(dtype))

    def forward(self, x):
        return self.outer(self.inner(x))

    def __repr__(self):
        return f"{self.outer!r} @ {self.inner!r}"


class LinearComposition(Composition, LinearOperator):
    """``outer @ inner`` of two linear operators; adjoint ``inner^H @ outer^H``."""

    def adjoint(self, y):
        # The inner operator's output space for this data: complex when the data is.
        middle = self.inner.result_dtype(self._adjoint_result_dtype(y.dtype))
        return self.inner.H(restrict(self.outer.H(y), middle))

    @property
    def gram(self):
        """``inner^H (outer^H outer) inner`` with the outer Gram's structure; ``inner^H inner``
        when the outer operator is unitary."""
        outer = self.outer.gram
        if isinstance(outer, Identity):
            return self.inner.gram
        return compose(self.inner.H, compose(outer, self.inner))

    def unitary_factorization(self, dtype=None):
        """``outer = U_o B_o`` gives ``A = U_o (B_o inner)``; when ``B_o = I`` the inner
        operator's own factorization ``inner = U_i B_i`` moves out too: ``A = (U_o U_i) B_i``."""
        if isinstance(self.outer, Identity):
            return self.inner.unitary_factorization(dtype)
        dtype = self.input_dtype if dtype is None else self._accepted_dtype(dtype)
        if dtype is None:
            return None
        outer = self.outer.unitary_factorization(self.inner.result_dtype(dtype))
        if outer is None:
            return None
        if not isinstance(outer.B, Identity):
            return UnitaryFactorization(outer.U, compose(outer.B, self.inner))
        inner = self.inner.unitary_factorization(dtype)
        if inner is None:
            return UnitaryFactorization(outer.U, self.inner)
        return UnitaryFactorization(compose(outer.U, inner.U), inner.B)


class Sum(Operator):
    """``left + right``: both applied to the same input, outputs added."""

    left: Operator
    right: Operator

    def __init__(self, left: Operator, right: Operator):
        if left.input_shape != right.input_shape or left.output_shape != right.output_shape:
            raise _shape_mismatch(
                "add",
                left,
                right,
                f"shapes {left.input_shape} -> {left.output_shape} and "
                f"{right.input_shape} -> {right.output_shape} differ",
            )
        in_dtype, follows = sum_dtypes(left, right)
        self.left, self.right = left, right
        out_dtype = None
        if left.output_dtype is not None and right.output_dtype is not None:
            out_dtype = jnp.promote_types(left.result_dtype(in_dtype), right.result_dtype(in_dtype))
        super().__init__(
            left.input_shape, in_dtype, left.output_shape, out_dtype, follows_dtype=follows
        )

    def result_dtype(self, dtype):
        if not self.follows_dtype or dtype is None or not is_complex(dtype):
            return super().result_dtype(dtype)
        return jnp.promote_types(self.left.result_dtype(dtype), self.right.result_dtype(dtype))

    def forward(self, x):
        return self.left(x) + self.right(x)

    def __repr__(self):
        return f"({self.left!r} + {self.right!r})"


class LinearSum(Sum, LinearOperator):
    """Sum of two linear operators; adjoint ``left^H + right^H``."""

    def adjoint(self, y):
        x_dtype = self._adjoint_result_dtype(y.dtype)
        left = self.left.H(restrict(y, self.left.result_dtype(x_dtype)))
        right = self.right.H(restrict(y, self.right.result_dtype(x_dtype)))
        return left + right


class Scaled(Operator):
    """``scalar * operator``; the scalar is a leaf, so it may be traced or differentiated.

    A complex scalar on an operator whose dtype follows the data makes every output complex:
    the product then works on complex inputs (a real input is promoted), like :class:`FFT`.
    """

    scalar: Any
    operator: Operator

    def __init__(self, scalar, operator: Operator):
        self.scalar = scalar
        self.operator = operator
        in_dtype, follows = operator.input_dtype, operator.follows_dtype
        if follows and is_complex(jnp.result_type(scalar)):
            in_dtype, follows = complex_dtype_of(in_dtype), False
        out_dtype = None
        if operator.output_dtype is not None:
            out_dtype = jnp.result_type(operator.result_dtype(in_dtype), scalar)
        super().__init__(
            operator.input_shape,
            in_dtype,
            operator.output_shape,
            out_dtype,
            follows_dtype=follows,
        )

    def result_dtype(self, dtype):
        if not self.follows_dtype or dtype is None or not is_complex(dtype):
            return super().result_dtype(dtype)
        return jnp.result_type(self.operator.result_dtype(dtype), self.scalar)

    def forward(self, x):
        return self.scalar * self.operator(x)

    def __repr__(self):
        return f"{short_repr(self.scalar)} * {self.operator!r}"


class LinearScaled(Scaled, LinearOperator):
    """Scaled linear operator; adjoint ``conj(c) A^H``."""

    def adjoint(self, y):
        middle = self.operator.result_dtype(self._adjoint_result_dtype(y.dtype))
        return self.operator.H(restrict(jnp.conj(self.scalar) * y, middle))

    @property
    def gram(self):
        """``|c|^2 A^H A`` with the structure of ``A``'s Gram."""
        return scale(jnp.abs(self.scalar) ** 2, self.operator.gram)

    def unitary_factorization(self, dtype=None):
        """``c (U B) = U (c B)``."""
        dtype = self.input_dtype if dtype is None else self._accepted_dtype(dtype)
        factors = None if dtype is None else self.operator.unitary_factorization(dtype)
        if factors is None:
            return None
        return UnitaryFactorization(factors.U, scale(self.scalar, factors.B))


class Linearization(LinearOperator):
    """The Jacobian ``J = dN/dx`` of an operator ``N`` at a point ``x`` (``jax.jvp``)."""

    operator: Operator
    point: jax.Array

    def __init__(self, operator: Operator, point):
        self.operator = operator
        self.point = point
        super().__init__(point.shape, point.dtype)

    def forward(self, v):
        return jax.jvp(self.operator.forward, (self.point,), (v,))[1]

    def __repr__(self):
        return f"linearize({self.operator!r}, at {short_repr(self.point)})"


def compose(outer: Operator, inner: Operator) -> Operator:
    """``outer @ inner``, linear when both are."""
    if outer.linear and inner.linear:
        return LinearComposition(outer, inner)
    return Composition(outer, inner)


def add(left: Operator, right: Operator) -> Operator:
    """``left + right``, linear when both are."""
    if left.linear and right.linear:
        return LinearSum(left, right)
    return Sum(left, right)


def scale(scalar, operator: Operator) -> Operator:
    """``scalar * operator``, linear when the operator is."""
    return (LinearScaled if operator.linear else Scaled)(scalar, operator)

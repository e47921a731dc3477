"""Operator algebra: immutable pytree operators, composition, sums, scaling and adjoints.

An :class:`Operator` maps arrays of a declared ``input_shape``/``input_dtype`` to arrays of a
declared ``output_shape``/``output_dtype``. Operators are JAX pytrees: array fields (a PSF, a
pupil, weights) are leaves, everything else (shapes, axes, modes) is static. They can therefore
be passed through ``jax.jit``, ``jax.vmap`` and ``jax.grad`` as ordinary arguments, and built
from traced values inside a forward model (blind deconvolution differentiates through a PSF).

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

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp

from calcil._struct import Struct, short_repr, static_field
from calcil.operators._dtypes import (
    default_real,
    describe_dtype,
    embed,
    real_dtype_of,
    restrict,
)
from calcil.operators._symbolic import Symbolic

Shape = tuple[int, ...]

__all__ = [
    "LinearOperator",
    "Operator",
    "from_function",
]


def _normalize_shape(shape, name="input_shape") -> Shape | None:
    if shape is None:
        return None
    try:
        out = tuple(int(n) for n in shape)
    except TypeError:
        raise TypeError(f"{name} must be a tuple of ints, got {shape!r}") from None
    if any(n < 0 for n in out):
        raise ValueError(f"{name} must be non-negative, got {out}")
    return out


def _normalize_dtype(dtype):
    return None if dtype is None else jax.dtypes.canonicalize_dtype(jnp.dtype(dtype))


_RESERVED = frozenset(
    {"forward", "adjoint", "autodiff_adjoint", "H", "gram", "norm", "linearize", "linear"}
)


class Operator(Struct):
    """A map from arrays of ``input_shape``/``input_dtype`` to ``output_shape``/``output_dtype``.

    Subclasses implement :meth:`forward` and call ``super().__init__(input_shape, input_dtype)``
    at the end of their ``__init__``; the output shape and dtype are inferred with
    ``jax.eval_shape`` unless given. ``input_shape=None`` declares a shape-polymorphic
    elementwise operator (such as :class:`Intensity`) whose shapes are fixed by composition.

    Apply with ``A(x)`` or ``A @ x``; compose with ``A @ B``; ``A + B``, ``A - B``, ``c * A``
    and ``-A`` build new operators. Nothing is computed until the result is applied.
    """

    input_shape: Shape | None = static_field()
    input_dtype: Any = static_field()
    output_shape: Shape | None = static_field()
    output_dtype: Any = static_field()

    linear = False
    _reserved_names = _RESERVED

    def __init__(self, input_shape, input_dtype=None, output_shape=None, output_dtype=None):
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

    # ------------------------------------------------------------------ application
    def forward(self, x: jax.Array) -> jax.Array:
        """Apply the operator without checks (override in subclasses)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement forward()")

    def __call__(self, x) -> jax.Array:
        if isinstance(x, Symbolic):  # a solver probing the forward model's structure
            return x.apply(self)
        x = _check_input(self, x, self.input_shape, self.input_dtype)
        y = self.forward(x)
        return y if self.output_dtype is None else restrict(y, self.output_dtype)

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
        x = _check_input(self, x, self.input_shape, self.input_dtype)
        return Linearization(self, x)

    # ------------------------------------------------------------------ display
    def _repr_fields(self) -> dict[str, Any]:
        skip = {"input_shape", "input_dtype", "output_shape", "output_dtype"}
        return {k: v for k, v in super()._repr_fields().items() if k not in skip}

    def __repr__(self):
        parts = [f"{k}={short_repr(v)}" for k, v in self._repr_fields().items()]
        if self.input_shape is not None:
            parts.append(
                f"{self.input_shape} {describe_dtype(self.input_dtype)} -> "
                f"{self.output_shape} {describe_dtype(self.output_dtype)}"
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

    def autodiff_adjoint(self, y: jax.Array) -> jax.Array:
        """The adjoint derived by transposing :meth:`forward`: ``conj(A^T conj(y))``."""
        spec = jax.ShapeDtypeStruct(self.input_shape, self.input_dtype)
        transpose = jax.linear_transpose(self.forward, spec)
        y = restrict(jnp.asarray(y), self.output_dtype)
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

    def _residual_form(self) -> tuple[LinearOperator, LinearOperator] | None:
        """``(B, T)`` with ``||A x - y|| = ||B x - T y||`` for all ``x``, ``y``, or ``None``.

        For ``A = U B`` with ``U`` unitary, ``T = U^H``: a least-squares data term can then be
        evaluated as ``0.5 ||B x - T y||^2`` with ``T y`` computed once, and its gradient
        ``B^H (B x - T y) = A^H A x - A^H y`` costs ``B`` and ``B^H`` only (a circular
        convolution: one FFT pair instead of two). ``None`` when no such form saves work.
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
        v0 = _random(key, self.input_shape, self.input_dtype)
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


def _random(key, shape, dtype):
    """Standard normal samples of ``dtype`` (complex: unit variance over both parts)."""
    if jnp.issubdtype(dtype, jnp.complexfloating):
        kr, ki = jax.random.split(key)
        part = real_dtype_of(dtype)
        re, im = jax.random.normal(kr, shape, part), jax.random.normal(ki, shape, part)
        return ((re + 1j * im) / math.sqrt(2)).astype(dtype)
    if jnp.issubdtype(dtype, jnp.floating):
        return jax.random.normal(key, shape, dtype)
    return jax.random.randint(key, shape, -3, 4).astype(dtype)


def _check_input(op, x, shape, dtype) -> jax.Array:
    """Validate ``x`` against a declared shape/dtype and embed it into ``dtype``."""
    x = jnp.asarray(x)
    if shape is not None and x.shape != shape:
        raise ValueError(
            f"{type(op).__name__} expects input of shape {shape}, got {x.shape}. "
            "Apply it to arrays of its input_shape (batch with jax.vmap), or build it "
            f"with input_shape={x.shape}."
        )
    if dtype is None:
        return x
    if jnp.promote_types(x.dtype, dtype) != dtype:
        raise ValueError(
            f"{type(op).__name__} expects input of dtype {describe_dtype(dtype)}, got "
            f"{describe_dtype(x.dtype)}, which would lose precision or an imaginary part. "
            f"Build the operator with input_dtype={x.dtype.name!s} or cast the input."
        )
    return embed(x, dtype)


# ---------------------------------------------------------------------- combinators
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
        )

    def forward(self, y):
        return restrict(self.operator.adjoint(y), self.operator.input_dtype)

    def adjoint(self, x):
        return self.operator.forward(x)

    @property
    def H(self):
        return self.operator

    def _residual_form(self):
        # The adjoint of a unitary U (form (I, U^H)) is unitary with form (I, U).
        from calcil.operators.elementwise import Identity

        form = self.operator._residual_form()
        if form is None or not isinstance(form[0], Identity):
            return None
        return Identity(self.input_shape, self.input_dtype), self.operator

    def __repr__(self):
        return f"({self.operator!r}).H"


def _shape_mismatch(kind, outer, inner, detail):
    return ValueError(
        f"cannot {kind} {outer!r} and {inner!r}: {detail}. Insert a Crop, Pad or reshape "
        "operator, or rebuild one of them with matching shapes."
    )


class Composition(Operator):
    """``outer @ inner``: apply ``inner`` then ``outer``."""

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
        if outer.input_dtype is not None and inner.output_dtype is not None:
            if jnp.promote_types(inner.output_dtype, outer.input_dtype) != outer.input_dtype:
                raise ValueError(
                    f"cannot compose {outer!r} and {inner!r}: the right operator produces "
                    f"{describe_dtype(inner.output_dtype)} but the left one takes "
                    f"{describe_dtype(outer.input_dtype)}. Build the left operator with "
                    f"input_dtype={inner.output_dtype.name}."
                )
        self.outer, self.inner = outer, inner
        shaped = outer.input_shape is not None
        super().__init__(
            inner.input_shape,
            inner.input_dtype,
            outer.output_shape if shaped else None,
            outer.output_dtype if shaped else None,
        )

    def forward(self, x):
        return self.outer(self.inner(x))

    def __repr__(self):
        return f"{self.outer!r} @ {self.inner!r}"


class LinearComposition(Composition, LinearOperator):
    """``outer @ inner`` of two linear operators; adjoint ``inner^H @ outer^H``."""

    def adjoint(self, y):
        z = restrict(self.outer.H(y), self.inner.output_dtype)
        return self.inner.H(z)

    @property
    def gram(self):
        """``inner^H (outer^H outer) inner`` with the outer Gram's structure; ``inner^H inner``
        when the outer operator is unitary."""
        from calcil.operators.elementwise import Identity

        outer = self.outer.gram
        if isinstance(outer, Identity):
            return self.inner.gram
        return compose(self.inner.H, compose(outer, self.inner))

    def _residual_form(self):
        # ||U B_o inner x - y|| = ||B_o inner x - T_o y||; a unitary outer (B_o = I) passes the
        # question on to inner.
        from calcil.operators.elementwise import Identity

        form = self.outer._residual_form()
        if form is None:
            return None
        b_outer, t_outer = form
        if isinstance(b_outer, Identity) and self.inner.output_dtype == self.outer.input_dtype:
            inner = self.inner._residual_form()
            if inner is None:
                return self.inner, t_outer
            return inner[0], compose(inner[1], t_outer)
        return compose(b_outer, self.inner), t_outer


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
        if left.input_dtype != right.input_dtype:
            raise ValueError(
                f"cannot add {left!r} and {right!r}: input dtypes "
                f"{describe_dtype(left.input_dtype)} and {describe_dtype(right.input_dtype)} "
                "differ. Build both with the same input_dtype."
            )
        self.left, self.right = left, right
        out_dtype = None
        if left.output_dtype is not None:
            out_dtype = jnp.promote_types(left.output_dtype, right.output_dtype)
        super().__init__(left.input_shape, left.input_dtype, left.output_shape, out_dtype)

    def forward(self, x):
        return self.left(x) + self.right(x)

    def __repr__(self):
        return f"({self.left!r} + {self.right!r})"


class LinearSum(Sum, LinearOperator):
    """Sum of two linear operators; adjoint ``left^H + right^H``."""

    def adjoint(self, y):
        left = self.left.H(restrict(y, self.left.output_dtype))
        right = self.right.H(restrict(y, self.right.output_dtype))
        return left + right


class Scaled(Operator):
    """``scalar * operator``; the scalar is a leaf, so it may be traced or differentiated."""

    scalar: Any
    operator: Operator

    def __init__(self, scalar, operator: Operator):
        self.scalar = scalar
        self.operator = operator
        out_dtype = None
        if operator.output_dtype is not None:
            out_dtype = jnp.result_type(operator.output_dtype, scalar)
        super().__init__(
            operator.input_shape, operator.input_dtype, operator.output_shape, out_dtype
        )

    def forward(self, x):
        return self.scalar * self.operator(x)

    def __repr__(self):
        return f"{short_repr(self.scalar)} * {self.operator!r}"


class LinearScaled(Scaled, LinearOperator):
    """Scaled linear operator; adjoint ``conj(c) A^H``."""

    def adjoint(self, y):
        z = restrict(jnp.conj(self.scalar) * y, self.operator.output_dtype)
        return self.operator.H(z)

    @property
    def gram(self):
        """``|c|^2 A^H A`` with the structure of ``A``'s Gram."""
        return scale(jnp.abs(self.scalar) ** 2, self.operator.gram)

    def _residual_form(self):
        form = self.operator._residual_form()
        return None if form is None else (scale(self.scalar, form[0]), form[1])


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


# ---------------------------------------------------------------------- user functions
class FunctionOperator(Operator):
    """An operator wrapping a user function ``fn(x) -> y`` (see :func:`from_function`)."""

    fn: Any = static_field()

    def __init__(self, fn, input_shape, input_dtype=None):
        self.fn = fn
        super().__init__(input_shape, input_dtype)

    def forward(self, x):
        return self.fn(x)


class FunctionLinearOperator(LinearOperator):
    """A linear operator wrapping ``fn`` and optionally its hand-written adjoint."""

    fn: Any = static_field()
    adjoint_fn: Any = static_field()

    def __init__(self, fn, input_shape, input_dtype=None, adjoint_fn=None):
        self.fn = fn
        self.adjoint_fn = adjoint_fn
        super().__init__(input_shape, input_dtype)

    def forward(self, x):
        return self.fn(x)

    def adjoint(self, y):
        if self.adjoint_fn is None:
            return self.autodiff_adjoint(y)
        return self.adjoint_fn(y)

    @property
    def has_custom_adjoint(self) -> bool:
        return self.adjoint_fn is not None


def from_function(fn, input_shape, input_dtype=None, linear: bool = False, adjoint=None):
    """Wrap a JAX function as an operator.

    Args:
        fn: ``fn(x) -> y``, traceable by JAX. For ``linear=True`` it must be linear in ``x``.
        input_shape: shape of ``x``.
        input_dtype: dtype of ``x`` (default float32).
        linear: return a :class:`LinearOperator` whose adjoint is derived by autodiff.
        adjoint: optional hand-written adjoint ``adjoint(y) -> x`` (implies ``linear``).

    Example:
        >>> import jax.numpy as jnp, calcil as cc
        >>> A = cc.operators.from_function(lambda x: jnp.cumsum(x), (4,), linear=True)
        >>> A.H(jnp.ones(4)).tolist()
        [4.0, 3.0, 2.0, 1.0]
    """
    if linear or adjoint is not None:
        return FunctionLinearOperator(fn, input_shape, input_dtype, adjoint_fn=adjoint)
    return FunctionOperator(fn, input_shape, input_dtype)

"""Elementwise operators: Diagonal (weights with broadcasting), Intensity, Exp; and Identity
(defined with the operator algebra, whose unit it is).

Identity, and Diagonal with real weights, follow the data's dtype unless ``input_dtype`` pins
it: real or complex input of the working precision, output of the same kind.
"""

import jax
import jax.numpy as jnp
import numpy as np

from calcil._internal.dtypes import inexact_or_default, is_complex
from calcil._internal.integers import as_ints
from calcil._internal.shapes import check_broadcast, sum_to_shape
from calcil.operators.base import Identity, LinearOperator, Operator, UnitaryFactorization

__all__ = ["Diagonal", "Exp", "Identity", "Intensity"]


class Diagonal(LinearOperator):
    """Elementwise product ``y = w * x`` with NumPy broadcasting.

    ``w`` may broadcast the input to a larger output (``K`` illumination patterns applied to
    one object give ``K`` images); the adjoint ``conj(w) * y`` then sums over the broadcast axes.

    Args:
        weights: array ``w`` (a leaf: it may be traced or estimated).
        input_shape: shape of ``x``; defaults to ``w.shape``.
        input_dtype: pins the dtype of ``x``. By default complex weights take complex input
            of their precision (a real input is promoted), and real weights follow the data:
            real or complex input of their precision (integer weights: the working
            precision), output of the same kind.

    Example:
        >>> import jax.numpy as jnp, calcil as cc
        >>> D = cc.operators.Diagonal(jnp.array([1.0, 2.0, 3.0]))
        >>> D(jnp.ones(3)).tolist()
        [1.0, 2.0, 3.0]
    """

    weights: jax.Array

    def __init__(self, weights, input_shape=None, input_dtype=None):
        self.weights = jnp.asarray(weights)
        if input_shape is None:
            input_shape = self.weights.shape
        input_shape = as_ints(input_shape, "Diagonal input_shape")
        check_broadcast("Diagonal weights", self.weights.shape, input_shape, plural=True)
        dtype = input_dtype
        if dtype is None:
            dtype = inexact_or_default(self.weights.dtype)
        follows = input_dtype is None and not is_complex(dtype)
        super().__init__(input_shape, dtype, follows_dtype=follows)

    def forward(self, x):
        return self.weights * x

    def adjoint(self, y):
        return sum_to_shape(jnp.conj(self.weights) * y, self.input_shape)

    @property
    def gram(self):
        """``A^H A = Diagonal(sum |w|^2)``, summed over the axes ``w`` broadcasts to."""
        out_shape = np.broadcast_shapes(self.input_shape, self.weights.shape)
        w2 = jnp.broadcast_to(jnp.abs(self.weights) ** 2, out_shape)
        pinned = None if self.follows_dtype else self.input_dtype
        return Diagonal(sum_to_shape(w2, self.input_shape), self.input_shape, pinned)

    def unitary_factorization(self, dtype=None):
        """A phase screen (``|w| = 1`` everywhere, no broadcasting) is unitary: ``D = D @ I``.

        Decided on concrete weights (traced ones: ``None``). Other weights have no unitary
        factor that saves work (a mask that drops samples is not unitary).
        """
        if self.output_shape != self.input_shape or isinstance(self.weights, jax.core.Tracer):
            return None
        modulus = np.abs(np.asarray(self.weights))
        tol = 4 * np.finfo(modulus.dtype).eps if modulus.size else 0
        if modulus.size == 0 or not np.all(np.abs(modulus - 1) <= tol):
            return None
        pinned = None if self.follows_dtype else self.input_dtype
        return UnitaryFactorization(self, Identity(self.input_shape, pinned))


class Intensity(Operator):
    """Nonlinear ``|u|^2``, the intensity a camera records from a complex field ``u``.

    Shape-polymorphic: ``Intensity()`` takes its shape from the operator it is composed with.

    Example:
        >>> import jax.numpy as jnp, calcil as cc
        >>> cc.operators.Intensity()(jnp.array([3 + 4j])).tolist()
        [25.0]
    """

    def __init__(self, input_shape=None, input_dtype=None):
        super().__init__(input_shape, input_dtype)

    def forward(self, u):
        if jnp.iscomplexobj(u):
            return u.real**2 + u.imag**2
        return u * u


class Exp(Operator):
    """Nonlinear elementwise ``exp(x)`` (Beer-Lambert absorption, phase factors ``exp(i phi)``).

    Shape-polymorphic like :class:`Intensity`.

    Example:
        >>> import jax.numpy as jnp, calcil as cc
        >>> float(cc.operators.Exp()(jnp.array(0.0)))
        1.0
    """

    def __init__(self, input_shape=None, input_dtype=None):
        super().__init__(input_shape, input_dtype)

    def forward(self, x):
        return jnp.exp(x)

"""Checks for operators, public so that users can test their own operators.

Example:
    >>> import jax.numpy as jnp, calcil as cc
    >>> A = cc.operators.from_function(lambda x: jnp.cumsum(x), (16,), linear=True)
    >>> error = cc.testing.check_adjoint(A)    # raises AssertionError when wrong
    >>> cc.testing.check_operator(A)           # shapes, dtypes, jit, vmap, pytree, adjoint
"""

import jax
import jax.numpy as jnp
import numpy as np

from calcil._internal.dtypes import complex_dtype_of, is_complex, real_dtype_of, restrict
from calcil._internal.random import host_normal as _random
from calcil.operators.base import LinearOperator, Operator

__all__ = [
    "check_adjoint",
    "check_operator",
    "check_unitary_factorization",
    "default_rtol",
    "input_dtypes",
]


def default_rtol(dtype) -> float:
    """Tolerance for a relative error in ``dtype``: 1e-4 in single, 1e-10 in double precision."""
    return 1e-4 if real_dtype_of(dtype) == jnp.float32 else 1e-10


def _inner(a, b):
    """The real inner product ``Re <a, b> = Re sum(conj(a) b)``, accumulated in float64."""
    a, b = np.asarray(a).astype(np.complex128), np.asarray(b).astype(np.complex128)
    return float(np.real(np.vdot(a, b)))


def _norm(a):
    return float(np.linalg.norm(np.asarray(a).astype(np.complex128).ravel()))


def input_dtypes(op: Operator) -> tuple:
    """The input dtypes an operator is checked on.

    Its ``input_dtype``; for an operator whose dtype follows the data (``follows_dtype``,
    real output for real input), also the complex dtype of the same precision, so that real
    and complex data are both covered.
    """
    if op.follows_dtype and not is_complex(op.output_dtype):
        return (op.input_dtype, complex_dtype_of(op.input_dtype))
    return (op.input_dtype,)


def _samples(op: Operator, key, dtype=None):
    """Random ``x`` of ``dtype`` (default ``op.input_dtype``) and ``y`` of the matching
    output dtype, drawn on the host from ``key``'s bits.

    NumPy rather than ``jax.random``: an eager ``jax.random.normal`` compiles once per new
    shape, which would cost more than the check itself.
    """
    bits = (
        jax.random.key_data(key) if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key) else key
    )
    rng = np.random.default_rng(np.asarray(bits).ravel().tolist())
    dtype = op.input_dtype if dtype is None else dtype
    x = _random(rng, op.input_shape, dtype)
    y = None
    if op.output_shape is not None:
        y = _random(rng, op.output_shape, op.result_dtype(dtype))
    return x, y


@jax.jit
def _apply_both(op, x, y):
    return op(x), op.H(y)


def check_adjoint(op: LinearOperator, key=None, rtol=None) -> float:
    """Dot-product test: ``Re <A x, y> = Re <x, A^H y>`` for random ``x`` and ``y``.

    ``x`` and ``y`` are standard normal in the operator's input and output dtypes (complex
    for complex spaces). An operator whose dtype follows the data is tested on real and on
    complex data (:func:`input_dtypes`). The error is measured relative to
    ``||A x|| ||y|| + ||x|| ||A^H y||``, which does not depend on the operator's scale.

    Args:
        op: a :class:`~calcil.operators.LinearOperator` with declared shapes.
        key: ``jax.random`` key (default ``key(0)``).
        rtol: tolerance; default :func:`default_rtol` of the operator's dtypes.

    Returns:
        The largest measured relative error.

    Raises:
        AssertionError: with the measured error, when it exceeds ``rtol``.
    """
    if not isinstance(op, LinearOperator):
        raise TypeError(f"check_adjoint needs a LinearOperator, got {type(op).__name__}")
    if op.input_shape is None:
        raise ValueError(f"check_adjoint needs an operator with shapes; {op!r} has none")
    key = jax.random.key(0) if key is None else key
    if rtol is None:
        rtol = max(default_rtol(op.input_dtype), default_rtol(op.output_dtype))
    return max(_dot_test(op, key, dtype, rtol) for dtype in input_dtypes(op))


def _dot_test(op, key, dtype, rtol) -> float:
    x, y = _samples(op, key, dtype)
    ax, ahy = _apply_both(op, x, y)
    if ax.shape != op.output_shape or ahy.shape != op.input_shape:
        raise AssertionError(
            f"{op!r}: forward gave {ax.shape} (declared {op.output_shape}), adjoint gave "
            f"{ahy.shape} (declared {op.input_shape})"
        )
    if ax.dtype != op.result_dtype(x.dtype) or ahy.dtype != x.dtype:
        raise AssertionError(
            f"{op!r} on {x.dtype} input: forward gave {ax.dtype} (expected "
            f"{op.result_dtype(x.dtype)}), adjoint gave {ahy.dtype} (expected {x.dtype})"
        )
    lhs, rhs = _inner(ax, y), _inner(x, ahy)
    scale = _norm(ax) * _norm(y) + _norm(x) * _norm(ahy)
    error = abs(lhs - rhs) / scale if scale > 0 else abs(lhs - rhs)
    if not error <= rtol:
        raise AssertionError(
            f"adjoint test failed for {op!r} on {x.dtype} input: Re<Ax, y> = {lhs:.8g} but "
            f"Re<x, A^H y> = {rhs:.8g} (relative error {error:.3g} > rtol {rtol:.3g}). The "
            "adjoint is not the conjugate transpose of the forward map."
        )
    return error


def _assert_close(name, op, got, want, rtol):
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape:
        raise AssertionError(f"{name} for {op!r}: shape {got.shape}, expected {want.shape}")
    scale = max(_norm(want), 1e-30)
    error = _norm(got.astype(np.complex128) - want.astype(np.complex128)) / scale
    if not error <= rtol:
        raise AssertionError(f"{name} for {op!r}: relative error {error:.3g} > rtol {rtol:.3g}")


def check_operator(op: Operator, key=None, rtol=None) -> None:
    """Check an operator's declarations and its behaviour under JAX transformations.

    Checks that the output matches the declared ``output_shape``/``output_dtype``, that
    ``jax.jit`` and ``jax.vmap`` give the same result as eager application, that the operator
    survives a pytree round trip (flatten, unflatten, and passing it through ``jit`` as an
    argument), and for linear operators :func:`check_adjoint`, the adjoint's declared shapes
    and, where the adjoint is hand-written, its agreement with the autodiff adjoint.
    Nonlinear operators have their linearization at a random point adjoint-tested. Each
    check runs for every dtype of :func:`input_dtypes` (real and complex data for an operator
    whose dtype follows the data).

    Raises:
        AssertionError: naming the failed check.
    """
    if op.input_shape is None:
        raise ValueError(f"check_operator needs an operator with shapes; {op!r} has none")
    key = jax.random.key(0) if key is None else key
    if rtol is None:
        rtol = max(default_rtol(op.input_dtype), default_rtol(op.output_dtype))
    for dtype in input_dtypes(op):
        _check_operator(op, key, rtol, dtype)


def _check_operator(op, key, rtol, dtype):
    k1, k2, k3 = jax.random.split(key, 3)
    x, _ = _samples(op, k1, dtype)
    y = op(x)
    declared = op.result_dtype(x.dtype)
    if y.shape != op.output_shape or y.dtype != declared:
        raise AssertionError(
            f"{op!r} on {x.dtype} input produced {y.shape} {y.dtype}, but declares "
            f"{op.output_shape} {declared}"
        )
    _assert_close("jit", op, jax.jit(op)(x), y, rtol)
    _assert_close("operator as a jit argument", op, jax.jit(lambda A, v: A(v))(op, x), y, rtol)
    leaves, treedef = jax.tree_util.tree_flatten(op)
    rebuilt = jax.tree_util.tree_unflatten(treedef, leaves)
    _assert_close("pytree round trip", op, rebuilt(x), y, rtol)
    x2, _ = _samples(op, k2, dtype)
    batch = jnp.stack([x, x2])
    want = jnp.stack([y, op(x2)])
    _assert_close("vmap", op, jax.vmap(op)(batch), want, rtol)
    if isinstance(op, LinearOperator):
        _dot_test(op, k3, dtype, rtol)
        adj = op.H
        if adj.input_shape != op.output_shape or adj.output_shape != op.input_shape:
            raise AssertionError(f"{op!r}: adjoint declares shapes that do not mirror A")
        if op.has_custom_adjoint:
            _, yy = _samples(op, k3, dtype)
            derived = restrict(op.autodiff_adjoint(yy), x.dtype)
            _assert_close("hand-written vs autodiff adjoint", op, adj(yy), derived, rtol)
    else:
        check_adjoint(op.linearize(x), k3, rtol)


def check_unitary_factorization(op: LinearOperator, key=None, rtol=None) -> None:
    """Check ``op``'s declared :meth:`~calcil.operators.LinearOperator.unitary_factorization`.

    On random ``x`` and ``y`` of each input dtype (:func:`input_dtypes`): ``U(B(x)) = A(x)``,
    ``U^H U v = v`` (``U`` unitary), and ``||B x - U^H y|| = ||A x - y||``, the identity the
    least-squares fast path relies on.

    Raises:
        AssertionError: naming the failed identity and its relative error, or when ``op``
            declares no factorization.

    Example:
        >>> import jax.numpy as jnp, calcil as cc
        >>> A = cc.operators.Convolve(jnp.ones((3, 3)) / 9, (16, 16))
        >>> cc.testing.check_unitary_factorization(A)
    """
    if op.unitary_factorization() is None:
        raise AssertionError(f"{op!r} declares no unitary factorization")
    key = jax.random.key(0) if key is None else key
    if rtol is None:
        rtol = max(default_rtol(op.input_dtype), default_rtol(op.output_dtype))
    for dtype in input_dtypes(op):
        U, B = op.unitary_factorization(dtype)
        x, y = _samples(op, key, dtype)
        _assert_close("U(B(x)) against A(x)", op, U(B(x)), op(x), rtol)
        v = U.H(y)
        _assert_close("U^H U v against v (U unitary)", op, U.H(U(v)), v, rtol)
        _assert_close("||U v|| against ||v||", op, _norm(U(v)), _norm(v), rtol)
        _assert_close(
            "||B x - U^H y|| against ||A x - y||", op, _norm(B(x) - v), _norm(op(x) - y), rtol
        )

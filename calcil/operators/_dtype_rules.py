"""Dtype rules of the operator algebra: input checks, and the dtypes of compositions and sums.

An operator whose ``follows_dtype`` is true takes real or complex input of its precision; a
pinned one takes its ``input_dtype`` (and inputs that promote to it without loss). These
functions apply that rule to an input array, to ``outer @ inner`` and to ``left + right``,
and word the errors: what was expected, what was given, how to fix it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from calcil._internal.dtypes import (
    complex_dtype_of,
    describe_dtype,
    embed,
    is_complex,
    real_dtype_of,
)


def dtype_error(op, given, what="input") -> ValueError:
    """What ``op`` takes, what it was given, and how to fix it."""
    name, expected = type(op).__name__, op._describe_input()
    given = jnp.dtype(given)
    if is_complex(given) and not is_complex(op.input_dtype) and not op.follows_dtype:
        why = "casting would drop the imaginary part"
        fix = (
            f"Build the operator with input_dtype={complex_dtype_of(op.input_dtype).name}, "
            "or pass jnp.real(x) if the imaginary part is meant to be discarded."
        )
    else:
        why = "casting would lose precision"
        working = real_dtype_of(op.input_dtype)
        cast = complex_dtype_of(working) if is_complex(given) else working
        build = (
            "Build the operator inside jax.enable_x64 (its dtype follows the data in double "
            f"precision then) or with input_dtype={given.name}"
            if op.follows_dtype
            else f"Build the operator with input_dtype={given.name} (inside jax.enable_x64)"
        )
        fix = f"{build}, or cast the input with x.astype({cast.name})."
    return ValueError(f"{name} expects {what} of dtype {expected}, got {given.name}: {why}. {fix}")


def check_input(op, x) -> jax.Array:
    """Validate ``x`` against ``op``'s input shape and dtype and embed it into that dtype."""
    x = jnp.asarray(x)
    shape = op.input_shape
    if shape is not None and x.shape != shape:
        raise ValueError(
            f"{type(op).__name__} expects input of shape {shape}, got {x.shape}. "
            "Apply it to arrays of its input_shape (batch with jax.vmap), or build it "
            f"with input_shape={x.shape}."
        )
    target = op._accepted_dtype(x.dtype)
    if target is None:
        raise dtype_error(op, x.dtype)
    return embed(x, target)


def compose_dtypes(outer, inner):
    """``(input_dtype, follows_dtype)`` of ``outer @ inner``; ``ValueError`` on a mismatch.

    Both follow: the composition follows. One follows: it takes the kind (real or complex) of
    the pinned side, and the composition is pinned (``Crop @ AngularSpectrum`` takes and
    returns complex64). Neither follows: the right output must promote into the left input.
    """
    if inner.input_dtype is None or inner.output_dtype is None or outer.input_dtype is None:
        return inner.input_dtype, inner.follows_dtype and outer.input_dtype is None
    in_dtype, follows = inner.input_dtype, inner.follows_dtype and outer.follows_dtype
    middle = inner.output_dtype
    real_out = not is_complex(inner.output_dtype)
    if (
        inner.follows_dtype
        and real_out
        and not outer.follows_dtype
        and is_complex(outer.input_dtype)
    ):
        in_dtype = complex_dtype_of(inner.input_dtype)
        middle = inner.result_dtype(in_dtype)
    if outer._accepted_dtype(middle) is None:
        produced = describe_dtype(middle, follows)
        raise ValueError(
            f"cannot compose {outer!r} and {inner!r}: the right operator produces {produced} "
            f"but the left one takes {outer._describe_input()}. Build both in the same "
            f"precision, or build the left operator with input_dtype={middle.name}."
        )
    return in_dtype, follows


def same_dtype(a, b) -> bool:
    """Equal dtypes, ``None`` only equal to ``None`` (NumPy reads ``dtype == None`` as float64)."""
    if a is None or b is None:
        return a is None and b is None
    return jnp.dtype(a) == jnp.dtype(b)


def sum_dtypes(left, right):
    """``(input_dtype, follows_dtype)`` of ``left + right``; ``ValueError`` on a mismatch.

    Both follow: the sum follows. One follows: it takes the other's (pinned) input dtype,
    which must have its precision. Neither follows: the input dtypes must be equal.
    """
    if left.follows_dtype and right.follows_dtype:
        ok = same_dtype(left.input_dtype, right.input_dtype)
        in_dtype, follows = left.input_dtype, True
    elif left.follows_dtype or right.follows_dtype:
        free, pinned = (left, right) if left.follows_dtype else (right, left)
        in_dtype, follows = pinned.input_dtype, False
        ok = in_dtype is not None and same_dtype(free._accepted_dtype(in_dtype), in_dtype)
    else:
        ok = same_dtype(left.input_dtype, right.input_dtype)
        in_dtype, follows = left.input_dtype, False
    if not ok:
        raise ValueError(
            f"cannot add {left!r} and {right!r}: input dtypes {left._describe_input()} and "
            f"{right._describe_input()} differ. Build both with the same input_dtype (or "
            "both in the same precision)."
        )
    return in_dtype, follows

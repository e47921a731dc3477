"""Sampling operators: Crop, Pad, Subsample, Bin, Gather and Mask.

Each acts on the trailing axes it is given (leading batch axes pass through) and has a
hand-written adjoint: Crop and Pad are each other's adjoints, Subsample's adjoint puts samples
back on a zero grid, Bin's spreads each block value over the block, Gather's scatter-adds.

Dtypes follow the data unless pinned: built without ``input_dtype``, each takes real or
complex input of the working precision (float32/complex64, or float64/complex128 under x64)
and returns the same kind; ``input_dtype=`` pins it.
"""

import jax
import jax.numpy as jnp
import numpy as np

from calcil._internal.dtypes import default_real
from calcil._internal.integers import as_int, as_ints
from calcil._internal.shapes import check_broadcast, per_axis, sum_to_shape
from calcil._internal.struct import static_field
from calcil.operators.base import LinearOperator

__all__ = ["Bin", "Crop", "Gather", "Mask", "Pad", "Subsample"]


def _dtype(input_dtype):
    """The working dtype: the default real one (which then follows the data) unless pinned."""
    return default_real() if input_dtype is None else input_dtype


def _factors(factors, input_shape, name):
    """An int applies to every axis; a tuple to the last ``len(factors)`` axes."""
    if np.ndim(factors) == 0:
        return (as_int(factors, name),) * len(input_shape)
    return as_ints(factors, name)


def _zero_pad(x, widths):
    """Pad with zeros; ``widths`` is one ``(before, after)`` pair per axis."""
    if all(w == (0, 0) for w in widths):
        return x
    return jnp.pad(x, widths)


def _window(x, starts, sizes):
    """``x[s0:s0+n0, s1:s1+n1, ...]`` with static starts and sizes (one per axis)."""
    return jax.lax.slice(x, starts, tuple(s + n for s, n in zip(starts, sizes, strict=True)))


class Crop(LinearOperator):
    """Extract a window: ``y = x[..., s:s+m, t:t+n]`` on the trailing axes.

    Args:
        input_shape: shape of ``x``.
        output_shape: window shape; may be shorter than ``input_shape`` (trailing axes).
        start: first index of the window per cropped axis; default ``(in - out) // 2``
            (centred).
        input_dtype: pins the input dtype; by default it follows the data (real or complex
            of the working precision, the output of the same dtype).

    Example:
        >>> import jax.numpy as jnp, calcil as cc
        >>> cc.operators.Crop((4,), (2,))(jnp.arange(4.0)).tolist()
        [1.0, 2.0]
    """

    start: tuple[int, ...] = static_field()

    def __init__(self, input_shape, output_shape, start=None, input_dtype=None):
        input_shape = as_ints(input_shape, "Crop input_shape")
        output_shape = as_ints(output_shape, "Crop output_shape")
        lead = len(input_shape) - len(output_shape)
        if lead < 0:
            raise ValueError(
                f"Crop output_shape {output_shape} has more axes than input_shape {input_shape}"
            )
        output_shape = input_shape[:lead] + output_shape
        if any(o > i for i, o in zip(input_shape, output_shape, strict=True)):
            raise ValueError(
                f"Crop output_shape {output_shape} is larger than input_shape {input_shape}; "
                "use Pad to enlarge."
            )
        if start is None:
            start = tuple((i - o) // 2 for i, o in zip(input_shape, output_shape, strict=True))
        else:
            start = (0,) * lead + per_axis(start, len(input_shape) - lead, "Crop start")
        for i, o, s in zip(input_shape, output_shape, start, strict=True):
            if s < 0 or s + o > i:
                raise ValueError(
                    f"Crop window start={start[lead:]} size={output_shape[lead:]} does not fit "
                    f"in input_shape {input_shape[lead:]}"
                )
        self.start = start
        dtype = _dtype(input_dtype)
        super().__init__(input_shape, dtype, output_shape, dtype, follows_dtype=input_dtype is None)

    def forward(self, x):
        return _window(x, self.start, self.output_shape)

    def adjoint(self, y):
        widths = [
            (s, i - s - o)
            for i, o, s in zip(self.input_shape, self.output_shape, self.start, strict=True)
        ]
        return _zero_pad(y, widths)


class Pad(LinearOperator):
    """Zero padding with ``numpy.pad`` ``pad_width`` semantics.

    Args:
        input_shape: shape of ``x``.
        pad_width: ``int``, ``(before, after)``, or one ``(before, after)`` per axis.
        input_dtype: pins the input dtype; by default it follows the data.

    Example:
        >>> import jax.numpy as jnp, calcil as cc
        >>> cc.operators.Pad((2,), (1, 2))(jnp.ones(2)).tolist()
        [0.0, 1.0, 1.0, 0.0, 0.0]
    """

    pad_width: tuple[tuple[int, int], ...] = static_field()

    def __init__(self, input_shape, pad_width, input_dtype=None):
        input_shape = as_ints(input_shape, "Pad input_shape")
        try:
            widths = np.asarray(pad_width)
            widths = np.broadcast_to(widths, (len(input_shape), 2))
        except ValueError:
            raise ValueError(
                f"Pad pad_width={pad_width!r} does not fit a {len(input_shape)}-d input: give "
                "an int, (before, after) or one (before, after) pair per axis."
            ) from None
        if widths.size and not np.issubdtype(widths.dtype, np.integer):
            raise TypeError(
                f"Pad pad_width must be integers (int or NumPy integers), got {pad_width!r}: "
                "pass whole numbers of pixels."
            )
        if (widths < 0).any():
            raise ValueError(
                f"Pad pad_width must be non-negative, got {pad_width!r}: use Crop to remove "
                "samples."
            )
        self.pad_width = tuple((int(b), int(a)) for b, a in widths)
        pairs = zip(input_shape, self.pad_width, strict=True)
        output_shape = tuple(n + b + a for n, (b, a) in pairs)
        dtype = _dtype(input_dtype)
        super().__init__(input_shape, dtype, output_shape, dtype, follows_dtype=input_dtype is None)

    def forward(self, x):
        return _zero_pad(x, self.pad_width)

    def adjoint(self, y):
        return _window(y, tuple(b for b, _ in self.pad_width), self.input_shape)


class Subsample(LinearOperator):
    """Keep every ``factor``-th sample: ``y = x[..., o0::f0, o1::f1]`` on the trailing axes.

    Args:
        input_shape: shape of ``x``.
        factors: step per axis: an int applies to every axis, a tuple to the last
            ``len(factors)`` axes (leading batch axes are kept whole).
        offset: first kept index per subsampled axis (int or tuple).
        input_dtype: pins the input dtype; by default it follows the data.

    Example:
        >>> import jax.numpy as jnp, calcil as cc
        >>> cc.operators.Subsample((6,), 2, offset=1)(jnp.arange(6.0)).tolist()
        [1.0, 3.0, 5.0]
    """

    factors: tuple[int, ...] = static_field()
    offset: tuple[int, ...] = static_field()

    def __init__(self, input_shape, factors, offset=0, input_dtype=None):
        input_shape = as_ints(input_shape, "Subsample input_shape")
        factors = _factors(factors, input_shape, "Subsample factors")
        k = len(factors)
        if k > len(input_shape) or any(f < 1 for f in factors):
            raise ValueError(
                f"Subsample factors {factors} must be positive, one per trailing axis of "
                f"input_shape {input_shape}"
            )
        offset = per_axis(offset, k, "Subsample offset")
        trailing = input_shape[len(input_shape) - k :]
        if any(not 0 <= o < n for o, n in zip(offset, trailing, strict=True)):
            raise ValueError(f"Subsample offset {offset} is outside the axes {trailing}")
        lead = len(input_shape) - k
        self.factors, self.offset = (1,) * lead + factors, (0,) * lead + offset
        super().__init__(input_shape, _dtype(input_dtype), follows_dtype=input_dtype is None)

    def forward(self, x):
        return jax.lax.slice(x, self.offset, x.shape, self.factors)

    def adjoint(self, y):
        # Interior padding puts f-1 zeros between samples: the transpose of a strided slice.
        config = [
            (o, n - o - ((m - 1) * f + 1), f - 1)
            for n, m, f, o in zip(self.input_shape, y.shape, self.factors, self.offset, strict=True)
        ]
        return jax.lax.pad(y, jnp.zeros((), y.dtype), config)


class Bin(LinearOperator):
    """Pixel binning over non-overlapping blocks of the trailing axes.

    ``y[i, j] = r(x[f0 i : f0 (i+1), f1 j : f1 (j+1)])`` with ``r`` a sum (a camera's
    detector binning) or a mean. ``factors``: an int bins every axis, a tuple the last
    ``len(factors)`` axes. Each binned axis must be divisible by its factor. The dtype follows
    the data unless ``input_dtype`` pins it.

    Example:
        >>> import jax.numpy as jnp, calcil as cc
        >>> cc.operators.Bin((4,), 2)(jnp.arange(4.0)).tolist()
        [1.0, 5.0]
    """

    factors: tuple[int, ...] = static_field()
    reduce: str = static_field()

    def __init__(self, input_shape, factors, reduce="sum", input_dtype=None):
        input_shape = as_ints(input_shape, "Bin input_shape")
        if reduce not in ("sum", "mean"):
            raise ValueError(f"Bin reduce must be 'sum' or 'mean', got {reduce!r}")
        factors = _factors(factors, input_shape, "Bin factors")
        lead = len(input_shape) - len(factors)
        if lead < 0 or any(f < 1 for f in factors):
            raise ValueError(f"Bin factors {factors} do not fit input_shape {input_shape}")
        trailing = input_shape[lead:]
        if any(n % f for n, f in zip(trailing, factors, strict=True)):
            raise ValueError(
                f"Bin factors {factors} must divide the binned axes {trailing}: crop or pad "
                "the input to a multiple of the factors first."
            )
        self.factors, self.reduce = factors, reduce
        super().__init__(input_shape, _dtype(input_dtype), follows_dtype=input_dtype is None)

    def _blocked_shape(self, shape):
        lead = len(shape) - len(self.factors)
        blocked = list(shape[:lead])
        for n, f in zip(shape[lead:], self.factors, strict=True):
            blocked += [n // f, f]
        return tuple(blocked), tuple(lead + 2 * i + 1 for i in range(len(self.factors)))

    def forward(self, x):
        blocked, block_axes = self._blocked_shape(x.shape)
        xb = x.reshape(blocked)
        return xb.sum(block_axes) if self.reduce == "sum" else xb.mean(block_axes)

    def adjoint(self, y):
        blocked, block_axes = self._blocked_shape(self.input_shape)
        yb = jnp.broadcast_to(jnp.expand_dims(y, block_axes), blocked).reshape(self.input_shape)
        return yb if self.reduce == "sum" else yb / np.prod(self.factors)


class Gather(LinearOperator):
    """``y = x[indices]`` with NumPy advanced indexing; the adjoint scatter-adds.

    Args:
        input_shape: shape of ``x``.
        indices: an integer array (indexes the first axis), a tuple of integer arrays
            (one per leading axis, broadcast together), or a boolean mask of ``input_shape``
            (static NumPy; converted to integer indices). Indices are checked against the
            shape when concrete: JAX would otherwise clamp out-of-range indices silently.
        input_dtype: pins the input dtype; by default it follows the data.

    Example:
        >>> import jax.numpy as jnp, numpy as np, calcil as cc
        >>> G = cc.operators.Gather((4,), np.array([3, 0, 3]))
        >>> G(jnp.arange(4.0)).tolist(), G.H(jnp.ones(3)).tolist()
        ([3.0, 0.0, 3.0], [1.0, 0.0, 0.0, 2.0])
    """

    indices: tuple

    def __init__(self, input_shape, indices, input_dtype=None):
        input_shape = as_ints(input_shape, "Gather input_shape")
        if not isinstance(indices, tuple):
            indices = (indices,)
        if len(indices) == 1 and jnp.result_type(indices[0]) == jnp.bool_:
            if isinstance(indices[0], jax.core.Tracer):
                raise TypeError(
                    "Gather needs a concrete boolean mask (its number of samples fixes the "
                    "output shape); pass integer indices to gather with traced indices."
                )
            mask = np.asarray(indices[0])
            if mask.shape != input_shape[: mask.ndim]:
                raise ValueError(
                    f"Gather boolean mask of shape {mask.shape} does not match input_shape "
                    f"{input_shape}"
                )
            indices = np.nonzero(mask)
        if len(indices) > len(input_shape):
            raise ValueError(
                f"Gather got {len(indices)} index arrays for a {len(input_shape)}-d input"
            )
        checked = []
        for axis, idx in enumerate(indices):
            if not isinstance(idx, jax.core.Tracer):
                idx = np.asarray(idx)
                if not np.issubdtype(idx.dtype, np.integer):
                    raise TypeError(f"Gather indices must be integers, got {idx.dtype}")
                n = input_shape[axis]
                if idx.size and (idx.min() < -n or idx.max() >= n):
                    raise ValueError(
                        f"Gather indices along axis {axis} must lie in [-{n}, {n}), got "
                        f"values from {idx.min()} to {idx.max()}"
                    )
            checked.append(jnp.asarray(idx))
        self.indices = tuple(checked)
        super().__init__(input_shape, _dtype(input_dtype), follows_dtype=input_dtype is None)

    def forward(self, x):
        return x[self.indices]

    def adjoint(self, y):
        return jnp.zeros(self.input_shape, y.dtype).at[self.indices].add(y)

    def _repr_fields(self):
        return {"n_samples": int(np.prod(self.indices[0].shape)) if self.indices else 0}


class Mask(LinearOperator):
    """``y = m * x`` for a boolean (or 0/1) mask ``m``; self-adjoint, broadcasting like Diagonal.

    A concrete mask with values other than 0 and 1 is refused: weights belong in
    :class:`Diagonal`. A traced mask (built inside a transformation) is cast to boolean. The
    dtype follows the data unless ``input_dtype`` pins it.

    Example:
        >>> import jax.numpy as jnp, calcil as cc
        >>> M = cc.operators.Mask(jnp.array([True, False, True]))
        >>> M(jnp.ones(3)).tolist()
        [1.0, 0.0, 1.0]
    """

    mask: jax.Array

    def __init__(self, mask, input_shape=None, input_dtype=None):
        if not isinstance(mask, jax.core.Tracer):  # traced masks cannot be inspected
            _check_binary(mask)
        self.mask = jnp.asarray(mask).astype(bool)
        if input_shape is None:
            input_shape = self.mask.shape
        input_shape = as_ints(input_shape, "Mask input_shape")
        check_broadcast("Mask", self.mask.shape, input_shape)
        super().__init__(input_shape, _dtype(input_dtype), follows_dtype=input_dtype is None)

    def forward(self, x):
        return jnp.where(self.mask, x, jnp.zeros((), x.dtype))

    def adjoint(self, y):
        return sum_to_shape(jnp.where(self.mask, y, jnp.zeros((), y.dtype)), self.input_shape)

    @property
    def gram(self):
        return self if self.output_shape == self.input_shape else super().gram


def _check_binary(mask):
    """A concrete mask must hold 0/1 (or booleans): soft weights would be rounded to 1."""
    values = mask if isinstance(mask, jax.Array) else np.asarray(mask)
    if values.dtype == bool:
        return
    with jax.ensure_compile_time_eval():  # a concrete mask inside a jit trace stays concrete
        binary = (values == 0) | (values == 1)
        ok = bool(binary.all())
    if not ok:
        example = np.asarray(values)[~np.asarray(binary)].flat[0].item()
        raise ValueError(
            f"Mask takes a boolean or 0/1 mask, got other values (e.g. {example!r}). For "
            "weights use cc.operators.Diagonal(weights); for a threshold pass mask > t."
        )

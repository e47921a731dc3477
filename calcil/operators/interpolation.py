"""Resampling operators: a Fourier sub-pixel ``Shift`` and linear ``Interpolate``.

Both are linear in the image and differentiable in their geometry (the shift, the sample
coordinates), which are array leaves: a solver can estimate them next to the image
(registration, drift, motion, probe positions).
"""

import jax
import jax.numpy as jnp
import numpy as np

from calcil._internal.dtypes import default_real, is_complex, real_dtype_of
from calcil._internal.shapes import normalize_axes
from calcil._internal.struct import static_field
from calcil.operators._checks import finite_leaf
from calcil.operators.base import Identity, LinearOperator, UnitaryFactorization

__all__ = ["Interpolate", "Shift"]


class Shift(LinearOperator):
    """Circular sub-pixel shift by a Fourier phase ramp.

    ``y = IFFT(FFT(x) * exp(-2 pi i sum_a f_a s_a))`` over ``axes``, with ``f_a`` the DFT
    frequencies in cycles per pixel (``numpy.fft.fftfreq``) and ``s_a`` the shift in pixels: a
    positive shift moves content toward higher indices, and an integer shift equals
    ``jnp.roll(x, s, axes)``. Exact for band-limited (periodic) signals. On an axis of even
    length the Nyquist frequency gets the Hermitian-symmetric factor ``cos(pi s)``, so real
    input gives real output and complex input is shifted part by part.

    ``Shift.H`` shifts back by ``-s``. The shift is unitary when no shifted axis has a
    Nyquist frequency (odd sizes) or the shift is whole; it then declares
    ``unitary_factorization`` ``U = Shift``, ``B = I`` for the least-squares fast path. A
    fractional shift along an even axis scales the Nyquist component by ``cos(pi s)``.

    ``shift`` is a leaf: gradients with respect to it are defined (registration, drift).

    Args:
        input_shape: shape of ``x``.
        shift: pixels, a scalar or one value per shifted axis.
        axes: the shifted axes; default the last ``len(shift)`` axes (the last for a scalar).
        input_dtype: pins the input dtype; by default it follows the data.

    Example:
        >>> import jax.numpy as jnp, calcil as cc
        >>> S = cc.operators.Shift((6,), 2.0)
        >>> S(jnp.arange(6.0)).round(4).tolist()         # jnp.roll(x, 2)
        [4.0, 5.0, 0.0, 1.0, 2.0, 3.0]
        >>> x = jnp.cos(2 * jnp.pi * jnp.arange(8) / 8)
        >>> y = cc.operators.Shift((8,), 0.5)(x)          # band-limited: exact
        >>> bool(jnp.allclose(y, jnp.cos(2 * jnp.pi * (jnp.arange(8) - 0.5) / 8), atol=1e-5))
        True
    """

    shift: jax.Array
    axes: tuple[int, ...] = static_field()

    def __init__(self, input_shape, shift, axes=None, input_dtype=None):
        ndim = len(tuple(input_shape))
        self.shift = jnp.atleast_1d(finite_leaf(shift, "shift", "Shift"))
        if self.shift.ndim != 1:
            raise ValueError(
                f"Shift shift must be a scalar or one value per axis, got shape {self.shift.shape}"
            )
        n = self.shift.shape[0]
        if axes is None:
            if n > ndim:
                raise ValueError(f"Shift has {n} shifts for a {ndim}-d input_shape")
            axes = tuple(range(ndim - n, ndim))
        self.axes = normalize_axes(axes, ndim)
        if len(self.axes) != n:
            raise ValueError(
                f"Shift needs one shift per axis: {n} shifts for axes {self.axes}; pass "
                "shift with one value per axis (or one value for one axis)"
            )
        dtype = default_real() if input_dtype is None else input_dtype
        super().__init__(input_shape, dtype, input_shape, dtype, follows_dtype=input_dtype is None)

    def multiplier(self, dtype) -> jax.Array:
        """The Fourier multiplier ``exp(-2 pi i sum_a f_a s_a)`` (Hermitian ``cos(pi s)`` at an
        even axis's Nyquist frequency), broadcastable against ``FFT(x)`` of ``dtype``."""
        real = real_dtype_of(dtype)
        phase = 1
        for axis, s in zip(self.axes, self.shift.astype(real), strict=True):
            n = self.input_shape[axis]
            f = jnp.fft.fftfreq(n).astype(real)
            shape = [1] * len(self.input_shape)
            shape[axis] = n
            ramp = jnp.exp(-2j * jnp.pi * f * s)
            if n % 2 == 0:  # Nyquist: the Hermitian-symmetric cos(pi s), real for real data
                nyquist = np.arange(n) == n // 2  # a select, not a scatter (cheap under vmap)
                ramp = jnp.where(nyquist, jnp.cos(jnp.pi * s).astype(ramp.dtype), ramp)
            phase = phase * ramp.reshape(shape)
        return phase

    def forward(self, x):
        spectrum = jnp.fft.fftn(x, axes=self.axes) * self.multiplier(x.dtype)
        y = jnp.fft.ifftn(spectrum, axes=self.axes)
        return y if is_complex(x.dtype) else y.real.astype(x.dtype)

    def unitary_factorization(self, dtype=None):
        """``U = Shift``, ``B = I`` when the shift is unitary (odd sizes or whole shifts)."""
        dtype = self.input_dtype if dtype is None else self._accepted_dtype(dtype)
        if dtype is None or not self._unitary():
            return None
        return UnitaryFactorization(self, Identity(self.input_shape, dtype))

    def _unitary(self) -> bool:
        if all(self.input_shape[a] % 2 == 1 for a in self.axes):
            return True
        if isinstance(self.shift, jax.core.Tracer):
            return False
        return bool(np.all(np.asarray(self.shift) == np.round(np.asarray(self.shift))))


class Interpolate(LinearOperator):
    """Linear interpolation of ``x`` at given pixel coordinates.

    ``y[...] = sum_corners w * x[corner]`` with multilinear weights, exactly
    ``scipy.ndimage.map_coordinates(x, coordinates, order=1, mode="grid-constant")``: samples
    beyond the grid are zero and the interpolation runs across the border toward zero, so
    ``y`` is continuous in the coordinates. The adjoint scatters the same weights.

    ``coordinates`` (shape ``(ndim, *output_shape)``, pixel indices along the last ``ndim``
    axes of ``x``; leading axes of ``x`` are a batch) is a leaf: gradients with respect to
    it are defined (registration, motion, positions).

    Args:
        input_shape: shape of ``x``: ``(*batch, *grid)`` with ``len(grid) = ndim``.
        coordinates: ``(ndim, *output_shape)`` fractional indices.
        order: 1 (linear); other orders are not implemented.
        input_dtype: pins the input dtype; by default it follows the data.

    Example:
        >>> import jax.numpy as jnp, calcil as cc
        >>> A = cc.operators.Interpolate((4,), jnp.array([[0.5, 2.25, 3.5]]))
        >>> A(jnp.array([0.0, 2.0, 4.0, 6.0])).tolist()   # beyond index 3: toward zero
        [1.0, 4.5, 3.0]
    """

    coordinates: jax.Array

    def __init__(self, input_shape, coordinates, order=1, input_dtype=None):
        if order != 1:
            raise ValueError(f"Interpolate supports order=1 (linear) only, got order={order!r}")
        self.coordinates = finite_leaf(coordinates, "coordinates", "Interpolate")
        shape = tuple(input_shape)
        ndim = self.coordinates.shape[0] if self.coordinates.ndim else 0
        if self.coordinates.ndim < 1 or not 1 <= ndim <= len(shape):
            raise ValueError(
                f"Interpolate coordinates must have shape (ndim, *output_shape) with ndim <= "
                f"{len(shape)} (the axes of input_shape {shape}), got shape "
                f"{self.coordinates.shape}"
            )
        out = shape[: len(shape) - ndim] + tuple(self.coordinates.shape[1:])
        dtype = default_real() if input_dtype is None else input_dtype
        super().__init__(shape, dtype, out, dtype, follows_dtype=input_dtype is None)

    def forward(self, x):
        ndim = self.coordinates.shape[0]
        grid = x.shape[x.ndim - ndim :]
        batch = x.shape[: x.ndim - ndim]
        # zero padding: one before and two after each grid axis, indices clipped to [-1, n]
        padded = jnp.pad(x, ((0, 0),) * len(batch) + ((1, 2),) * ndim)
        flat = padded.reshape((*batch, -1))
        strides = np.cumprod([1, *[n + 3 for n in grid[::-1]]])[:-1][::-1]
        coords = self.coordinates.astype(real_dtype_of(x.dtype))
        lows, fracs = [], []
        for a in range(ndim):
            q = jnp.clip(coords[a], -1.0, float(grid[a]))
            q0 = jnp.floor(q)
            lows.append(q0.astype(jnp.int32) + 1)
            fracs.append(q - q0)
        out = 0
        for corner in np.ndindex(*(2,) * ndim):
            index = sum((lows[a] + corner[a]) * int(strides[a]) for a in range(ndim))
            weight = 1
            for a in range(ndim):
                weight = weight * (fracs[a] if corner[a] else 1 - fracs[a])
            out = out + jnp.take(flat, index, axis=-1, mode="clip") * weight
        return out

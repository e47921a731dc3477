"""Scanning (far-field) ptychography: diffraction intensities of a probe scanned over an object.

Positions are in object pixels as ``(row, col)``: the top-left corner of the probe window, so
the probe's pixel ``(i, j)`` lights the object's pixel ``(row + i, col + j)``.
"""

import jax
import jax.numpy as jnp
import numpy as np

from calcil._internal.dtypes import default_complex, is_complex, real_dtype_of
from calcil.operators._checks import field_shape, finite_leaf
from calcil.operators.base import Operator
from calcil.operators.interpolation import Shift

__all__ = ["Ptychography"]


def _probe_leaf(probe):
    if isinstance(probe, jax.core.Tracer):
        return probe
    array = np.asarray(probe)
    if array.ndim != 2 or 0 in array.shape:
        raise ValueError(
            f"Ptychography probe must be a 2-d complex array (py, px), got shape {array.shape}"
        )
    if not np.issubdtype(array.dtype, np.number) or not np.all(np.isfinite(array)):
        raise ValueError("Ptychography probe must be finite complex numbers")
    dtype = array.dtype if is_complex(array.dtype) else default_complex()
    return jnp.asarray(array, jax.dtypes.canonicalize_dtype(dtype))


def _positions_leaf(positions, object_shape, probe_shape):
    leaf = finite_leaf(positions, "positions", "Ptychography", "object pixels")
    if leaf.ndim != 2 or leaf.shape[1] != 2 or leaf.shape[0] == 0:
        raise ValueError(
            "Ptychography positions must have shape (n_positions, 2) as (row, col) in object "
            f"pixels, got shape {leaf.shape}"
        )
    if isinstance(positions, jax.core.Tracer):
        return leaf
    array = np.asarray(positions, dtype=float)
    corner = np.floor(array)
    limit = np.asarray(object_shape) - np.asarray(probe_shape)
    outside = np.flatnonzero(np.any((corner < 0) | (corner > limit), axis=1))
    if outside.size:
        i = int(outside[0])
        raise ValueError(
            f"Ptychography: {outside.size} position(s) put the probe window outside the object "
            f"(first: index {i}, position {tuple(array[i].tolist())}). With the probe "
            f"{tuple(probe_shape)} on the object {tuple(object_shape)}, rows must lie in "
            f"[0, {limit[0] + 1}) and columns in [0, {limit[1] + 1}); pad the object or move "
            "the scan."
        )
    return leaf


class Ptychography(Operator):
    """Far-field scanning ptychography: a complex object to diffraction intensities.

    For each position ``p = (row, col)`` (object pixels, the probe window's top-left corner),
    with ``k = floor(p)`` and the sub-pixel remainder ``r = p - k``::

        I_p = |fftshift(fft2(Shift(probe, r) * t[k0 : k0 + py, k1 : k1 + px], norm="ortho"))|^2

    :class:`Shift` moves the probe by ``r`` pixels with a Fourier phase ramp (circular within
    its window; keep the probe's support away from the window's edges), so the intensities
    are differentiable in the positions. The far field is the Fraunhofer pattern on the
    detector up to its scale (detector pixel ``wavelength z / (px dx)``); ``norm="ortho"``
    keeps the energy, ``sum I_p = sum |probe * t|^2``, and ``fftshift`` puts the zero
    frequency at ``(py // 2, px // 2)``.

    ``probe`` and ``positions`` are leaves: build the operator from the unknowns inside the
    forward model to refine the probe and the scan positions with the object. Positions given
    as concrete values must keep the window inside the object (``0 <= k`` and
    ``k + probe.shape <= object_shape``), else a ``ValueError``; traced positions that drift
    outside during a reconstruction are clamped to the object's edge (``lax.dynamic_slice``),
    so leave a margin.

    Args:
        object_shape: ``(ny, nx)``.
        probe: ``(py, px)`` complex illumination, not larger than the object.
        positions: ``(n_positions, 2)`` as ``(row, col)``, object pixels.
        input_dtype: default complex64 (complex128 with x64).

    Returns:
        ``(n_positions, py, px)`` real intensities.

    Reference:
        J. M. Rodenburg and H. M. L. Faulkner, "A phase retrieval algorithm for shifting
        illumination," Appl. Phys. Lett. 85, 4795 (2004); A. Maiden, D. Johnson and P. Li,
        "Further improvements to the ptychographical iterative engine," Optica 4, 736 (2017)
        (position correction).

    Example:
        >>> import jax.numpy as jnp, calcil as cc
        >>> probe = jnp.ones((8, 8), jnp.complex64)
        >>> A = cc.operators.Ptychography((32, 32), probe, [[0, 0], [4.5, 10.25]])
        >>> I = A(jnp.ones((32, 32), jnp.complex64))
        >>> I.shape, round(float(I[0, 4, 4]), 3), round(float(I[0].sum()), 3)   # DC at (4, 4)
        ((2, 8, 8), 64.0, 64.0)
    """

    probe: jax.Array
    positions: jax.Array

    def __init__(self, object_shape, probe, positions, input_dtype=None):
        shape = field_shape(object_shape, "Ptychography", min_ndim=2)
        if len(shape) != 2:
            raise ValueError(f"Ptychography object_shape must be (ny, nx), got {shape}")
        self.probe = _probe_leaf(probe)
        if self.probe.ndim != 2:
            raise ValueError(f"Ptychography probe must be 2-d (py, px), got {self.probe.shape}")
        if any(p > n for p, n in zip(self.probe.shape, shape, strict=True)):
            raise ValueError(
                f"Ptychography: the probe {self.probe.shape} is larger than the object {shape}; "
                "crop the probe or pad the object"
            )
        self.positions = _positions_leaf(positions, shape, self.probe.shape)
        dtype = default_complex() if input_dtype is None else input_dtype
        out = (self.positions.shape[0], *self.probe.shape)
        super().__init__(shape, dtype, out, real_dtype_of(jnp.dtype(dtype)))

    def forward(self, t):
        real = real_dtype_of(t.dtype)
        probe = self.probe.astype(t.dtype)
        probe_spectrum = jnp.fft.fft2(probe)

        def far_field(position):
            position = position.astype(real)
            corner = jnp.floor(position)
            ramp = Shift(probe.shape, position - corner).multiplier(t.dtype)
            shifted = jnp.fft.ifft2(probe_spectrum * ramp)
            window = jax.lax.dynamic_slice(t, corner.astype(jnp.int32), probe.shape)
            wave = jnp.fft.fft2(shifted * window, norm="ortho")
            return jnp.fft.fftshift(wave.real**2 + wave.imag**2)

        return jax.vmap(far_field)(self.positions)

    def _repr_fields(self):
        return {"probe_shape": self.probe.shape, "n_positions": self.positions.shape[0]}

"""Partially coherent imaging (Abbe's method) and illumination source patterns.

Conventions as in :mod:`calcil.operators.optics.pupil`: complex transmittances
``t[..., y, x]`` with pixel size ``dx``; spatial frequencies in cycles per unit length, given
as ``(fy, fx)`` pairs; positions ``y_i = i dx``, ``x_j = j dx``.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np

from calcil._internal.dtypes import default_complex, real_dtype_of
from calcil._internal.struct import static_field
from calcil.operators._checks import positive
from calcil.operators.base import Operator
from calcil.operators.optics.pupil import Pupil

__all__ = ["PartiallyCoherent", "source_points"]

_KINDS = ("disk", "annulus", "half")


def source_points(kind, na_illumination, wavelength, n, angle=0.0):
    """Discrete illumination sources ``(frequencies, weights)`` for :class:`PartiallyCoherent`.

    ``frequencies`` is ``(m, 2)`` in cycles per unit length as ``(fy, fx)`` and ``weights``
    ``(m,)`` sum to 1 (equal, but for the half-disk's diameter). With
    ``r = na_illumination / wavelength``:

    * ``"disk"``: the points of an ``n x n`` grid over ``[-r, r]^2`` within the disk
      ``|f| <= r`` (brightfield, condenser NA ``na_illumination``);
    * ``"annulus"``: ``n`` points evenly on the circle ``|f| = r`` (annular illumination);
    * ``"half"``: the disk points with ``f . (sin angle, cos angle) >= 0``, the half-disk
      toward the direction ``angle`` (radians from +x toward +y): differential phase
      contrast uses ``angle = 0, pi / 2, pi, 3 pi / 2``. Points on the dividing diameter
      (odd ``n``) belong to both opposite halves and get half the weight of the others (the
      trapezoid rule), so two opposite halves add up to the ``"disk"`` source.

    Example:
        >>> import calcil as cc
        >>> f, w = cc.operators.source_points("annulus", 0.5, 0.5, 8)
        >>> f.shape, float(w.sum())
        ((8, 2), 1.0)
    """
    if kind not in _KINDS:
        raise ValueError(f"source_points kind must be one of {_KINDS}, got {kind!r}")
    radius = positive("na_illumination", na_illumination, "a numerical aperture") / positive(
        "wavelength", wavelength, "a length"
    )
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"source_points n must be a positive integer, got {n!r}")
    if kind == "annulus":
        phi = 2 * np.pi * np.arange(n) / n
        f = radius * np.stack([np.sin(phi), np.cos(phi)], axis=1)
    else:
        axis = np.linspace(-radius, radius, n) if n > 1 else np.zeros(1)
        fy, fx = (a.ravel() for a in np.meshgrid(axis, axis, indexing="ij"))
        keep = np.hypot(fy, fx) <= radius * (1 + 1e-9)
        weights = np.ones(len(fy))
        if kind == "half":
            along = fy * math.sin(angle) + fx * math.cos(angle)
            keep &= along >= -1e-9 * radius
            weights[np.abs(along) <= 1e-9 * radius] = 0.5
        f = np.stack([fy[keep], fx[keep]], axis=1)
        return f, weights[keep] / weights[keep].sum()
    return f, np.full(len(f), 1.0 / len(f))


class PartiallyCoherent(Operator):
    """Abbe imaging of a complex transmittance ``t`` under a set of mutually incoherent sources.

    ``I = sum_s w_s |P(t * exp(i 2 pi (fy_s y + fx_s x)))|^2`` with ``P`` the :class:`Pupil`
    (cutoff ``na / wavelength``, Zernike aberrations) and ``(fy_s, fx_s)`` the illumination
    frequency of source ``s`` (cycles per unit length; ``sin(angle) / wavelength``), weight
    ``w_s``. Sources on the frequency grid ``1 / (N dx)`` are exact under the periodic
    boundary; others tilt the field with a phase jump at the border. One source at ``f = 0``
    with weight 1 is coherent imaging, ``Intensity() @ Pupil(...)``. With ``sources`` a list
    of patterns the images are stacked (one per pattern: DPC, annular scans). Linear in the
    weights, quadratic in ``t`` (Abbe, see Goodman, *Statistical Optics*, or Streibl, J. Opt.
    Soc. Am. A 2, 121, 1985, for DPC).

    Args:
        input_shape: ``(..., ny, nx)``.
        dx, wavelength, na, zernike: the objective, as for :class:`Pupil`.
        sources: ``(frequencies (n, 2) as (fy, fx), weights (n,))``, or a list of them
            (see :func:`source_points`).
        input_dtype: default complex64 (complex128 with x64).

    Example:
        >>> import jax.numpy as jnp, calcil as cc
        >>> O = cc.operators
        >>> # DPC: two half-disks; sources at multiples of 1 / (N dx) = 0.125 (on the grid)
        >>> patterns = [O.source_points("half", 0.25, 0.5, 5, angle=a) for a in (0, jnp.pi)]
        >>> A = O.PartiallyCoherent((32, 32), 0.25, 0.5, 0.5, patterns)
        >>> images = A(jnp.ones((32, 32), jnp.complex64))
        >>> images.shape, bool(jnp.allclose(images, 1.0, atol=1e-5))   # a clear sample
        ((2, 32, 32), True)
    """

    pupil: Pupil
    frequencies: jax.Array
    weights: jax.Array
    stacked: bool = static_field()

    def __init__(self, input_shape, dx, wavelength, na, sources, zernike=None, input_dtype=None):
        dtype = default_complex() if input_dtype is None else input_dtype
        self.pupil = Pupil(input_shape, dx, wavelength, na, zernike, dtype)
        self.stacked = isinstance(sources, list)
        patterns = sources if self.stacked else [sources]
        if not patterns:
            raise ValueError("PartiallyCoherent sources is an empty list of patterns")
        real = real_dtype_of(self.pupil.input_dtype)
        sizes = {np.shape(p[1])[0] if len(p) == 2 else None for p in patterns}
        if None in sizes or len(sizes) != 1:
            raise ValueError(
                "PartiallyCoherent sources must be (frequencies (n, 2), weights (n,)) or a "
                "list of such patterns with the same n (pad with zero weights)"
            )
        f = jnp.stack([jnp.asarray(p[0], real) for p in patterns])
        w = jnp.stack([jnp.asarray(p[1], real) for p in patterns])
        if f.shape[-1] != 2 or f.shape[:2] != w.shape:
            raise ValueError(
                f"PartiallyCoherent frequencies must have shape (n, 2) beside weights (n,), "
                f"got {f.shape[1:]} and {w.shape[1:]}"
            )
        self.frequencies, self.weights = f, w
        super().__init__(self.pupil.input_shape, self.pupil.input_dtype)

    def forward(self, t):
        ny, nx = t.shape[-2:]
        real = real_dtype_of(t.dtype)
        y = jnp.arange(ny, dtype=real) * self.pupil.dx
        x = jnp.arange(nx, dtype=real) * self.pupil.dx
        transfer = self.pupil.pupil_function.astype(t.dtype)

        def image(source):
            # the tilt exp(i 2 pi (fy y + fx x)) as the product of its two 1-d ramps: no
            # per-pixel sine or cosine
            column, row, w = source
            field = jnp.fft.ifft2(transfer * jnp.fft.fft2(t * column[:, None] * row[None, :]))
            return w * (field.real**2 + field.imag**2)

        def pattern(f, w):
            f = f.astype(real)
            columns = jnp.exp(2j * jnp.pi * f[:, :1] * y).astype(t.dtype)  # (n, ny)
            rows = jnp.exp(2j * jnp.pi * f[:, 1:] * x).astype(t.dtype)  # (n, nx)
            sources = (columns, rows, w.astype(real))
            first = image(jax.tree.map(lambda a: a[0], sources))
            rest = jax.tree.map(lambda a: a[1:], sources)
            return jax.lax.scan(lambda acc, s: (acc + image(s), None), first, rest)[0]

        images = [pattern(f, w) for f, w in zip(self.frequencies, self.weights, strict=True)]
        return jnp.stack(images) if self.stacked else images[0]

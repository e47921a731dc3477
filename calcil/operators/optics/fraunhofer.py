"""Far-field (Fraunhofer) propagation of scalar fields: a centred, unitary 2-D DFT.

Conventions (units, ``exp(-i w t)`` time dependence, ``u[..., y, x]`` fields) are those of
:mod:`calcil.operators.optics.propagation`.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np

from calcil._internal.dtypes import default_complex
from calcil._internal.struct import static_field
from calcil.operators._checks import field_shape, positive
from calcil.operators.base import Identity, LinearOperator, UnitaryFactorization
from calcil.operators.optics._transfer import _AXES, _as_leaf, _dtypes, _warn

__all__ = ["Fraunhofer"]


class Fraunhofer(LinearOperator):
    """Far-field (Fraunhofer) propagation: a centred, unitary 2-D DFT over the last two axes.

    ``U = fftshift(fft2(ifftshift(u), norm="ortho"))``, optionally times the Fraunhofer phase

        ``exp(+i 2 pi n z / wl) / i * exp(+i pi n (x^2 + y^2) / (wl z))``

    (``phase=True``). The output is centred (zero frequency at index ``N // 2``) and sampled at
    ``x = (m - N // 2) * dx_out`` with ``dx_out = wl z / (n N dx)`` along x (``dy_out`` along
    y, with ``ny``). The input quadratic phase ``exp(i pi n (xi^2 + eta^2) / (wl z))`` is
    dropped, which is the Fraunhofer approximation, valid for ``z >= 2 n D^2 / wl`` with ``D``
    the width of the input's support. The scale is unitary (``sum |U|^2 = sum |u|^2``); the
    physical field amplitude is ``U * dx / dx_out`` (for square pixels). ``phase=False``
    (default) drops the output phase factors, which leaves intensities unchanged.

    Args:
        input_shape: field shape ``(..., ny, nx)``; leading axes are a batch.
        dx: input pixel size (same unit as ``wavelength``).
        wavelength: vacuum wavelength.
        distance: propagation distance (same unit), positive.
        n_medium: refractive index of the medium.
        phase: multiply by the Fraunhofer phase factor (constant and quadratic output phase).
        input_dtype: default complex64 (complex128 with x64); a real dtype is embedded.

    Reference:
        J. W. Goodman, *Introduction to Fourier Optics*, 3rd ed., sec. 4.3;
        D. G. Voelz, *Computational Fourier Optics*, SPIE (2011), sec. 5.5.

    Example:
        >>> import jax.numpy as jnp, calcil as cc
        >>> F = cc.operators.Fraunhofer((64, 64), dx=1.0, wavelength=0.5, distance=1e5)
        >>> F.dx_out                                      # wl z / (N dx)
        781.25
        >>> U = F(jnp.ones((64, 64)))                     # a uniform aperture
        >>> float(jnp.abs(U[32, 32]))                     # all energy at the centre
        64.0
    """

    output_phase: jax.Array | None
    dx: float = static_field()
    wavelength: float = static_field()
    distance: float = static_field()
    n_medium: float = static_field()
    phase: bool = static_field()
    dx_out: float = static_field()
    dy_out: float = static_field()

    def __init__(
        self, input_shape, dx, wavelength, distance, n_medium=1.0, phase=False, input_dtype=None
    ):
        shape = field_shape(input_shape, "Fraunhofer")
        self.dx = positive("dx", dx)
        self.wavelength = positive("wavelength", wavelength, "same unit as dx")
        self.distance = positive("Fraunhofer distance", distance)
        self.n_medium = positive("n_medium", n_medium, "a refractive index")
        self.phase = bool(phase)
        scale = self.wavelength * self.distance / (self.n_medium * self.dx)
        self.dy_out, self.dx_out = (scale / n for n in shape[-2:])
        dtype, cdtype = _dtypes(input_dtype, default_complex())
        factor = None
        if self.phase:
            k = self.n_medium / self.wavelength
            y, x = (
                (np.arange(n) - n // 2) * d
                for n, d in zip(shape[-2:], (self.dy_out, self.dx_out), strict=True)
            )
            quadratic = np.pi * k * (y[:, None] ** 2 + x[None, :] ** 2) / self.distance
            constant = 2 * np.pi * math.remainder(k * self.distance, 1.0)
            factor = _as_leaf(-1j * np.exp(1j * (constant + quadratic)), cdtype)
        self.output_phase = factor
        super().__init__(shape, dtype)

    def forward(self, x):
        x = jnp.fft.ifftshift(x, axes=_AXES)
        y = jnp.fft.fftshift(jnp.fft.fft2(x, axes=_AXES, norm="ortho"), axes=_AXES)
        return y if self.output_phase is None else y * self.output_phase

    def adjoint(self, y):
        if self.output_phase is not None:
            y = y * jnp.conj(self.output_phase)
        y = jnp.fft.ifftshift(y, axes=_AXES)
        return jnp.fft.fftshift(jnp.fft.ifft2(y, axes=_AXES, norm="ortho"), axes=_AXES)

    def unitary_factorization(self, dtype=None):
        """Fraunhofer propagation is unitary (a centred unitary DFT times a unit-modulus
        phase): ``A = A @ I``, for complex inputs."""
        if not jnp.issubdtype(self.input_dtype, jnp.complexfloating):
            return None
        return UnitaryFactorization(self, Identity(self.input_shape, self.input_dtype))

    def adequate_sampling(self, support=None) -> bool:
        """Whether the Fraunhofer approximation holds (warns when it does not).

        The dropped input phase ``pi n r^2 / (wl z)`` stays below ``pi / 8`` on a support of
        width ``D`` when ``z >= 2 n D^2 / wl`` (the Fraunhofer distance).

        Args:
            support: width ``D`` of the input's support (same unit as ``dx``); default the
                whole field, ``max(ny, nx) * dx`` (conservative).
        """
        width = max(self.input_shape[-2:]) * self.dx if support is None else support
        width = positive("support", width, "same unit as dx")
        needed = 2 * self.n_medium * width**2 / self.wavelength
        if self.distance >= needed:
            return True
        return _warn(
            f"Fraunhofer: distance {self.distance:.4g} is shorter than the Fraunhofer distance "
            f"2 n D^2 / wl = {needed:.4g} for a support of width D = {width:.4g}: the dropped "
            "input phase is not negligible. Pass the actual support width, or use Fresnel or "
            "AngularSpectrum."
        )

    def _repr_fields(self):
        return {
            "dx": self.dx,
            "wavelength": self.wavelength,
            "distance": self.distance,
            "n_medium": self.n_medium,
            "dx_out": self.dx_out,
            "phase": self.phase,
        }

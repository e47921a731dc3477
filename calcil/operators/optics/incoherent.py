"""Incoherent (fluorescence) imaging: linear in the object's intensity.

Conventions as in :mod:`calcil.operators.optics.pupil`: intensities ``o[..., y, x]`` with
pixel size ``dx`` on the last two axes, frequencies ``numpy.fft.fftfreq(N, dx)``.
"""

import warnings

import jax
import jax.numpy as jnp

from calcil._internal.dtypes import default_real
from calcil._internal.struct import static_field
from calcil.operators.base import LinearOperator
from calcil.operators.convolution import Convolve
from calcil.operators.optics.pupil import Pupil

__all__ = ["IncoherentImaging"]

_AXES = (-2, -1)


class IncoherentImaging(LinearOperator):
    """Incoherent imaging: ``y = IFFT(OTF * FFT(o))`` over the last two axes.

    ``h = IFFT(P)`` is the coherent PSF of the :class:`Pupil` ``P`` (circular, cutoff
    ``na / wavelength``, Zernike phase ``exp(i sum_j c_j Z_j)``); the intensity PSF is
    ``|h|^2 / sum |h|^2`` and the OTF its DFT, the normalised autocorrelation of the pupil:
    ``OTF(0) = 1`` (a uniform object images to itself) and the cutoff is
    ``2 na / wavelength`` (Goodman, *Introduction to Fourier Optics*, sec. 6.3). The grid
    must hold that band: ``dx <= wavelength / (4 na)``, else the construction warns (the
    circular autocorrelation wraps around). Real intensities give real images.

    Computed as a circular :class:`Convolve` with the PSF centred, so it declares the same
    ``unitary_factorization`` (``F^H D F``) for the least-squares fast path. The Zernike
    coefficients are a leaf (through the pupil): aberrations can be estimated from images.

    Args:
        input_shape: ``(..., ny, nx)``; leading axes are a batch.
        dx: pixel size in object space (same unit as ``wavelength``).
        wavelength: emission wavelength.
        na: numerical aperture of the objective.
        zernike: optional Noll-indexed coefficients (radians), as for :class:`Pupil`.
        input_dtype: pins the input dtype; by default it follows the data.

    Example:
        >>> import jax.numpy as jnp, calcil as cc
        >>> A = cc.operators.IncoherentImaging((64, 64), dx=0.1, wavelength=0.5, na=0.8)
        >>> float(A(jnp.ones((64, 64))).mean())           # OTF(0) = 1
        1.0
        >>> bead = jnp.zeros((64, 64)).at[32, 32].set(1.0)
        >>> bool(abs(A(bead).sum() - 1) < 1e-5)           # energy is kept
        True
    """

    pupil: Pupil
    dx: float = static_field()

    def __init__(self, input_shape, dx, wavelength, na, zernike=None, input_dtype=None):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the coherent band is not the issue here
            self.pupil = Pupil(input_shape, dx, wavelength, na, zernike)
        self.dx = self.pupil.dx
        nyquist = 1 / (2 * self.dx)
        if 2 * self.pupil.cutoff > nyquist * (1 + 1e-9):
            warnings.warn(
                f"IncoherentImaging: the incoherent cutoff 2 na / wavelength = "
                f"{2 * self.pupil.cutoff:.4g} exceeds the grid's Nyquist frequency "
                f"{nyquist:.4g}: the OTF wraps around. Use dx <= wavelength / (4 na) = "
                f"{self.pupil.wavelength / (4 * self.pupil.na):.4g}.",
                stacklevel=2,
            )
        dtype = default_real() if input_dtype is None else input_dtype
        shape = self.pupil.input_shape
        super().__init__(shape, dtype, shape, dtype, follows_dtype=input_dtype is None)

    @property
    def psf(self) -> jax.Array:
        """The normalised intensity PSF ``|h|^2 / sum |h|^2``, centred at ``(ny // 2, nx // 2)``."""
        h = jnp.fft.ifft2(self.pupil.pupil_function)
        intensity = jnp.abs(h) ** 2
        return jnp.fft.fftshift(intensity / jnp.sum(intensity))

    @property
    def otf(self) -> jax.Array:
        """The optical transfer function on the fftfreq grid (``otf[0, 0] = 1``)."""
        return jnp.fft.fft2(jnp.fft.ifftshift(self.psf))

    def _convolution(self) -> Convolve:
        input_dtype = None if self.follows_dtype else self.input_dtype
        psf = self.psf.astype(jnp.finfo(self.input_dtype).dtype)
        return Convolve(psf, self.input_shape, axes=_AXES, input_dtype=input_dtype)

    def forward(self, x):
        return self._convolution().forward(x)

    def adjoint(self, y):
        return self._convolution().adjoint(y)

    def unitary_factorization(self, dtype=None):
        """That of the circular convolution with the PSF: ``U = F^H``, ``B = OTF F``."""
        return self._convolution().unitary_factorization(dtype)

"""Free-space propagation of scalar fields in the near field: AngularSpectrum and Fresnel.

Conventions shared by the propagators (these, :class:`~calcil.operators.Fraunhofer` for the far
field and :class:`~calcil.operators.MultiSlice`):

* Fields are complex arrays ``u[..., y, x]`` sampled with pixel size ``dx`` on the last two
  axes; leading axes are a batch. ``dx``, ``wavelength`` and ``distance`` share one unit (say
  micrometres); ``wavelength`` is the vacuum wavelength and the medium has refractive index
  ``n_medium``, so the wavelength in the medium is ``wavelength / n_medium``.
* Monochromatic waves ``u exp(-i w t)``: a plane wave travelling toward ``+z`` is
  ``exp(+i 2 pi n z / wavelength)``. Positive distances propagate forward, negative ones back.
* Spatial frequencies are ``numpy.fft.fftfreq(N, dx)`` (cycles per unit length), with ``N``
  the (padded) grid size.

Transfer functions are computed once, when the operator is built, in float64 with NumPy
(cast to the operator's precision), and stored as a pytree leaf. Build an operator inside a
differentiated function from a traced ``distance`` and the transfer function is computed with
``jax.numpy`` instead, so ``distance`` is differentiable (autofocus).
"""

import math

import jax
import jax.numpy as jnp
import numpy as np

from calcil._internal.struct import static_field
from calcil.operators.optics._transfer import (
    _angular_spectrum_transfer,
    _frequencies,
    _TransferPropagator,
    _warn,
)

__all__ = ["AngularSpectrum", "Fresnel"]


class AngularSpectrum(_TransferPropagator):
    """Exact scalar propagation over ``distance`` by the angular-spectrum method.

    ``u_z = IFFT(H * FFT(u_0))`` with the transfer function

        ``H(fx, fy) = exp(+i 2 pi z sqrt((n/wl)^2 - fx^2 - fy^2))``

    for propagating frequencies and ``H = 0`` for evanescent ones (``fx^2 + fy^2 >= (n/wl)^2``).
    With ``bandlimit=True`` (Matsushima & Shimobaba 2009) frequencies whose transfer-function
    phase would be undersampled are dropped as well: ``H = 0`` unless ``|fx| < u_x`` and
    ``|fy| < u_y`` with

        ``u = (n/wl) / sqrt((2 du |z|)^2 + 1)``,  ``du = 1 / (N dx)``

    per axis, ``N`` the padded grid size. Without padding the operator is a partial isometry
    (``|H|`` is 0 or 1: unitary on the kept frequencies) and ``AngularSpectrum(-z)`` is the
    adjoint of ``AngularSpectrum(z)``. With ``pad_factor > 1`` the field is zero-padded (centred) to
    about ``pad_factor`` times its size, propagated and cropped back, which suppresses
    wrap-around; the operator is then no longer unitary, and its adjoint is exact
    (``crop(IFFT(conj(H) FFT(pad(y))))``).

    The transfer function is computed once (a pytree leaf); see the module docstring for a
    differentiable ``distance``.

    Args:
        input_shape: field shape ``(..., ny, nx)``; leading axes are a batch.
        dx: pixel size (same unit as ``wavelength``).
        wavelength: vacuum wavelength.
        distance: propagation distance (same unit); negative propagates backward. A 1-d array
            of distances gives a z-stack: output shape ``(nz, *input_shape)``.
        n_medium: refractive index of the homogeneous medium.
        bandlimit: apply the Matsushima-Shimobaba band limit (recommended for long distances).
        pad_factor: zero-padding factor (>= 1) against wrap-around.
        input_dtype: default complex64 (complex128 with x64); a real dtype is embedded.

    Reference:
        J. W. Goodman, *Introduction to Fourier Optics*, 3rd ed., sec. 3.10;
        K. Matsushima and T. Shimobaba, "Band-limited angular spectrum method for numerical
        simulation of free-space propagation in far and near fields," Opt. Express 17,
        19662-19673 (2009).

    Example:
        >>> import jax.numpy as jnp, calcil as cc
        >>> P = cc.operators.AngularSpectrum((64, 64), dx=0.5, wavelength=0.5, distance=10.0)
        >>> u = jnp.ones((64, 64), jnp.complex64)             # a plane wave along z
        >>> phase = jnp.angle(P(u)[0, 0])                      # 2 pi z / wl = 40 pi
        >>> round(float(jnp.cos(phase)), 4)
        1.0
        >>> stack = cc.operators.AngularSpectrum((64, 64), 0.5, 0.5, jnp.array([-5.0, 0.0, 5.0]))
        >>> stack.output_shape
        (3, 64, 64)
    """

    bandlimit: bool = static_field()

    def __init__(
        self,
        input_shape,
        dx,
        wavelength,
        distance,
        n_medium=1.0,
        bandlimit=True,
        pad_factor=1.0,
        input_dtype=None,
    ):
        shape, z = self._setup(input_shape, dx, wavelength, distance, n_medium, pad_factor)
        self.bandlimit = bool(bandlimit)
        transfer = _angular_spectrum_transfer(
            z, self.padded_shape, self.dx, self.wavelength, self.n_medium, self.bandlimit
        )
        self._finish(transfer, z, shape, input_dtype)

    def _aliases(self):
        return not self.bandlimit  # the band limit removes exactly the undersampled band

    def _shift(self, f, z):
        k = self.n_medium / self.wavelength
        return math.inf if f >= k else z * f / math.sqrt(k**2 - f**2)

    def _band_edge(self, n):
        f = np.abs(np.fft.fftfreq(n, self.dx))
        return float(f[f < self.n_medium / self.wavelength].max())

    def adequate_sampling(self, na=None) -> bool:
        """Whether the transfer function is sampled finely enough (warns when it is not).

        Nyquist test of the phase of ``H`` along each axis (Matsushima & Shimobaba 2009): the
        plane-wave component of frequency ``f`` moves sideways by
        ``|z| f / sqrt((n/wl)^2 - f^2)``, and ``H`` is adequately sampled up to ``f`` when that
        is at most half the (padded) window, ``N dx / 2``. This is exactly the condition that
        the band limit ``u`` keeps ``f``.

        Args:
            na: numerical aperture of the field (its spatial frequencies reach ``na / wl``);
                default: the highest propagating frequency of the grid along each axis.

        Returns:
            ``True`` when adequate; otherwise ``False`` and a ``UserWarning`` that explains.
        """
        return _warn(self._sampling_message(na))

    def _sampling_message(self, na=None) -> str:
        ok, detail = self._sampling_report(na)
        if ok:
            return ""
        fix = (
            "the band limit removes these frequencies (resolution is lost)"
            if self.bandlimit
            else "expect wrap-around artefacts; set bandlimit=True"
        )
        return (
            f"AngularSpectrum: {detail}. Here {fix}. Use a larger field or pad_factor, a "
            "shorter distance, or pass the field's actual na to adequate_sampling()."
        )

    def _repr_fields(self):
        return {**super()._repr_fields(), "bandlimit": self.bandlimit}


class Fresnel(_TransferPropagator):
    """Paraxial (Fresnel) propagation over ``distance``, transfer-function form.

    ``u_z = IFFT(H * FFT(u_0))`` with

        ``H(fx, fy) = exp(+i 2 pi n z / wl) exp(-i pi (wl / n) z (fx^2 + fy^2))``,

    the paraxial expansion of :class:`AngularSpectrum`'s transfer function in a medium of index
    ``n`` (wavelength ``wl / n`` in the medium). ``|H| = 1``: without padding the operator is
    unitary and ``Fresnel(-z)`` is its inverse and adjoint. Accurate for paraxial fields; the
    transfer-function form is adequately sampled for ``dx >= wl |z| / (n N dx)`` (Voelz), i.e.
    short distances; use :class:`~calcil.operators.Fraunhofer` (or an impulse-response
    method) far away.

    Args:
        input_shape: field shape ``(..., ny, nx)``; leading axes are a batch.
        dx: pixel size (same unit as ``wavelength``).
        wavelength: vacuum wavelength.
        distance: propagation distance (same unit), negative backward; a 1-d array gives a
            z-stack on a new leading axis.
        n_medium: refractive index of the medium.
        pad_factor: zero-padding factor (>= 1) against wrap-around.
        input_dtype: default complex64 (complex128 with x64); a real dtype is embedded.

    Reference:
        D. G. Voelz, *Computational Fourier Optics: A MATLAB Tutorial*, SPIE (2011), ch. 5;
        J. W. Goodman, *Introduction to Fourier Optics*, 3rd ed., sec. 4.2.

    Example:
        >>> import jax.numpy as jnp, calcil as cc
        >>> P = cc.operators.Fresnel((64, 64), dx=1.0, wavelength=0.5, distance=100.0)
        >>> P.adequate_sampling()                 # dx >= wl z / (N dx) = 0.78
        True
        >>> u = jnp.zeros((64, 64), jnp.complex64).at[32, 32].set(1.0)
        >>> round(float(jnp.sum(jnp.abs(P(u)) ** 2)), 4)    # unitary: energy kept
        1.0
    """

    def __init__(
        self, input_shape, dx, wavelength, distance, n_medium=1.0, pad_factor=1.0, input_dtype=None
    ):
        shape, z = self._setup(input_shape, dx, wavelength, distance, n_medium, pad_factor)
        xp = jnp if isinstance(z, jax.core.Tracer) else np
        k = self.n_medium / self.wavelength
        fy2, fx2 = _frequencies(self.padded_shape, self.dx)
        zz = xp.reshape(z, (*xp.shape(z), 1, 1))
        phase = 2 * np.pi * xp.remainder(zz * k, 1.0) - np.pi * zz * (fy2 + fx2) / k
        self._finish(xp.exp(1j * phase), z, shape, input_dtype)

    def _shift(self, f, z):
        return self.wavelength * z * f / self.n_medium

    def adequate_sampling(self, na=None) -> bool:
        """Voelz's criterion for the transfer-function approach (warns when it fails).

        With ``L = N dx`` the (padded) window, the chirp ``H`` is adequately sampled over the
        whole grid band when ``dx >= wl |z| / (n L)`` (equivalently: a component of frequency
        ``f`` moves ``wl |z| f / n <= L / 2``). Longer distances alias the transfer function.

        Args:
            na: numerical aperture of the field; default: the grid's band ``1 / (2 dx)``.

        Returns:
            ``True`` when adequate; otherwise ``False`` and a ``UserWarning`` that explains.
        """
        return _warn(self._sampling_message(na))

    def _sampling_message(self, na=None) -> str:
        ok, detail = self._sampling_report(na)
        if ok:
            return ""
        z = float(np.max(np.abs(np.asarray(self.distance, np.float64))))
        critical = self.wavelength * z / (self.n_medium * min(self.padded_shape) * self.dx)
        return (
            f"Fresnel: {detail} (Voelz: dx = {self.dx:.4g} should be >= wl |z| / (n L) = "
            f"{critical:.4g}). Use a larger field or pad_factor, a shorter distance, or "
            "Fraunhofer for the far field."
        )

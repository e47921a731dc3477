"""Coherent imaging through a circular pupil with Zernike aberrations (Noll indices).

Conventions:

* Fields are complex arrays ``u[..., y, x]`` with pixel size ``dx`` on the last two axes;
  leading axes are a batch. ``dx`` and ``wavelength`` share one unit (say micrometres).
* Spatial frequencies are ``numpy.fft.fftfreq(N, dx)`` (cycles per unit length): ``fy`` along
  axis -2, ``fx`` along axis -1. The pupil cutoff is ``na / wavelength``.
* Pupil coordinates: ``rho = |f| / (na / wavelength)`` and ``theta = atan2(fy, fx)``, measured
  from the +x (last) axis toward +y (second to last).
* Zernike polynomials follow Noll (1976): RMS-normalised on the unit disk, even ``j`` carries
  ``cos(m theta)``, odd ``j`` carries ``sin(m theta)`` (see :func:`noll_to_nm`).
"""

import dataclasses
import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from calcil._internal.dtypes import default_complex, is_complex, real_dtype_of
from calcil._internal.struct import static_field
from calcil.operators._checks import field_shape, positive
from calcil.operators.base import LinearOperator
from calcil.operators.fourier import multiplier_factorization

__all__ = ["Pupil", "noll_to_nm", "zernike"]

_AXES = (-2, -1)
# Frequencies within this relative distance of the cutoff count as inside the pupil, so that
# |f| == na / wavelength is kept despite rounding in fftfreq (6 * 0.1 = 0.6000000000000001).
_EDGE_RTOL = 1e-9


# ---------------------------------------------------------------------- Zernike polynomials
def noll_to_nm(j: int) -> tuple[int, int]:
    """Radial order ``n`` and signed azimuthal frequency ``m`` of Noll index ``j``.

    Noll's ordering (J. Opt. Soc. Am. 66, 207, 1976): ``n`` increases with ``j``; within an
    order ``|m|`` increases; for ``m != 0`` the even ``j`` of a pair is the ``cos(|m| theta)``
    term (returned with ``m > 0``) and the odd ``j`` the ``sin(|m| theta)`` term (``m < 0``).

    Args:
        j: Noll index, an integer ``>= 1``.

    Returns:
        ``(n, m)`` with ``|m| <= n`` and ``n - |m|`` even.

    Example:
        >>> from calcil.operators import noll_to_nm
        >>> [noll_to_nm(j) for j in (1, 2, 3, 4, 5, 6, 11)]
        [(0, 0), (1, 1), (1, -1), (2, 0), (2, -2), (2, 2), (4, 0)]
    """
    if isinstance(j, bool) or not isinstance(j, int | np.integer) or j < 1:
        raise ValueError(f"Noll index j must be an integer >= 1, got {j!r}")
    j = int(j)
    n = (math.isqrt(8 * j - 7) - 1) // 2
    k = j - n * (n + 1) // 2 - 1  # position within order n, 0 ... n
    m = 2 * ((k + 1) // 2) if n % 2 == 0 else 2 * (k // 2) + 1
    return (n, m if m == 0 or j % 2 == 0 else -m)


def _radial(n, m, rho):
    """Radial polynomial ``R_n^|m|(rho)``: Horner in ``rho^2``, exact integer coefficients."""
    m = abs(m)
    half = (n - m) // 2
    coeffs = [
        (-1) ** k
        * math.factorial(n - k)
        // (math.factorial(k) * math.factorial((n + m) // 2 - k) * math.factorial(half - k))
        for k in range(half + 1)
    ]
    r2 = rho * rho
    acc = coeffs[0]
    for c in coeffs[1:]:
        acc = acc * r2 + c
    return acc * rho**m


def _zernike(j, rho, theta, xp):
    """Noll-normalised ``Z_j(rho, theta)`` with NumPy or ``jax.numpy`` (``xp``)."""
    n, m = noll_to_nm(j)
    radial = _radial(n, m, rho)
    if m == 0:
        return math.sqrt(n + 1) * radial
    angular = xp.cos(m * theta) if m > 0 else xp.sin(-m * theta)
    return math.sqrt(2 * (n + 1)) * radial * angular


def zernike(j: int, rho, theta) -> jax.Array:
    """The Zernike polynomial of Noll index ``j``, RMS-normalised on the unit disk (Noll 1976).

    With ``(n, m) = noll_to_nm(j)`` and the radial polynomial
    ``R_n^|m|(rho) = sum_k (-1)^k (n-k)! / (k! ((n+|m|)/2-k)! ((n-|m|)/2-k)!) rho^(n-2k)``:

    * ``m = 0``: ``Z_j = sqrt(n+1) R_n^0(rho)``;
    * ``m > 0`` (even ``j``): ``Z_j = sqrt(2(n+1)) R_n^m(rho) cos(m theta)``;
    * ``m < 0`` (odd ``j``): ``Z_j = sqrt(2(n+1)) R_n^|m|(rho) sin(|m| theta)``.

    so that ``(1/pi) int_disk Z_i Z_j rho drho dtheta = delta_ij``. For example
    ``Z_4 = sqrt(3) (2 rho^2 - 1)`` (defocus) and ``Z_11 = sqrt(5) (6 rho^4 - 6 rho^2 + 1)``
    (primary spherical). The polynomial is evaluated for every ``rho``, **not** set to zero
    outside the unit disk: multiply by ``rho <= 1`` for a masked map (:class:`Pupil` applies
    its circular aperture itself). Differentiable in ``rho`` and ``theta``.

    Args:
        j: Noll index, an integer ``>= 1``.
        rho: normalised radius (arrays broadcast with ``theta``).
        theta: azimuth in radians, from the +x axis toward +y.

    Returns:
        ``Z_j(rho, theta)`` as a JAX array of the broadcast shape.

    Example:
        >>> import calcil as cc
        >>> round(float(cc.operators.zernike(4, 1.0, 0.0)), 5)     # defocus at the edge: sqrt(3)
        1.73205
        >>> round(float(cc.operators.zernike(5, 1.0, 3.14159 / 4)), 5)   # sqrt(6) sin(2 theta)
        2.44949
    """
    rho, theta = jnp.asarray(rho), jnp.asarray(theta)
    dtype = jnp.result_type(rho, theta, float)
    rho, theta = jnp.broadcast_arrays(rho.astype(dtype), theta.astype(dtype))
    return _zernike(j, rho, theta, jnp)


# ---------------------------------------------------------------------- argument checks
def _coefficients(zernike, dtype):
    """The Zernike coefficients as a real 1-d array of ``dtype`` (empty for ``None``)."""
    if zernike is None:
        return jnp.zeros((0,), dtype)
    c = zernike if isinstance(zernike, jax.Array) else jnp.asarray(np.asarray(zernike))
    if c.ndim != 1:
        raise ValueError(
            "Pupil zernike must be a 1-d array of coefficients in radians (zernike[j - 1] "
            f"multiplies Noll index j), got an array of shape {c.shape}. For several pupils, "
            "build one Pupil per coefficient vector (or jax.vmap over a function that builds it)."
        )
    if is_complex(c.dtype) or not jnp.issubdtype(c.dtype, jnp.number):
        raise TypeError(
            f"Pupil zernike coefficients must be real (phases in radians), got dtype {c.dtype}"
        )
    if not isinstance(c, jax.core.Tracer) and not bool(jnp.all(jnp.isfinite(c))):
        raise ValueError(f"Pupil zernike coefficients must be finite, got {np.asarray(c)}")
    return c.astype(dtype)


# ---------------------------------------------------------------------- the operator
class Pupil(LinearOperator):
    """Coherent imaging through a circular pupil with Zernike aberrations.

    ``y = IFFT( circ(|f| <= na / wl) * exp(i sum_j c_j Z_j(rho, theta)) * FFT(x) )``

    over the last two axes, with ``f = (fy, fx)`` the ``numpy.fft.fftfreq(N, dx)`` grid,
    ``rho = |f| / (na / wl)`` and ``theta = atan2(fy, fx)`` (from the +x, last, axis toward +y,
    the second to last). ``c_j = zernike[j - 1]`` is the coefficient, in radians of phase, of
    the Noll-indexed, RMS-normalised Zernike polynomial ``Z_j`` (:func:`zernike`): ``c_4`` is
    defocus, ``c_11`` primary spherical aberration. A positive tilt ``c_2`` moves the image
    toward -x by ``c_2 / (pi na / wl)``. Frequencies with ``|f| = na / wl`` are inside the pupil.

    The operator is the amplitude transfer function of a coherent imaging system with unit
    magnification (Goodman, sec. 6.2): linear in ``x`` for fixed coefficients, with the
    adjoint ``IFFT(conj(P) FFT(y))``. Without aberrations it is an orthogonal projection onto
    band-limited fields (``P.H = P = P @ P``); in general ``P.gram`` is the unaberrated pupil.

    The coefficients are a pytree leaf and the pupil function is evaluated from them on each
    application (``J`` multiply-adds per frequency from a stored ``(J, ny, nx)`` basis), so
    gradients flow to them whether the operator is built from traced coefficients inside a
    forward model, ``jax.grad(lambda c: loss(Pupil(..., zernike=c)(x)))(c)``, or differentiated
    as a pytree (``jax.grad(lambda P: loss(P(x)))(P).zernike``). The construction warns, like
    :meth:`adequate_sampling`, when the grid clips or barely resolves the pupil.

    Args:
        input_shape: field shape ``(..., ny, nx)``; leading axes are a batch.
        dx: pixel size in object space (same unit as ``wavelength``).
        wavelength: wavelength (in the medium if ``na`` is measured there; ``na / wavelength``
            is all that matters).
        na: numerical aperture (> 0): the cutoff frequency is ``na / wavelength``.
        zernike: optional 1-d array of real coefficients in radians, ``zernike[j - 1]`` for
            Noll index ``j``; ``None`` (default) is an aberration-free pupil.
        input_dtype: default complex64 (complex128 with x64); a real dtype is embedded, and
            the output is complex of the same precision.

    Reference:
        R. J. Noll, "Zernike polynomials and atmospheric turbulence," J. Opt. Soc. Am. 66,
        207-211 (1976); J. W. Goodman, *Introduction to Fourier Optics*, 3rd ed., ch. 6.

    Example:
        >>> import jax, jax.numpy as jnp, calcil as cc
        >>> P = cc.operators.Pupil((64, 64), dx=0.1, wavelength=0.5, na=0.8)   # micrometres
        >>> P  # doctest: +NORMALIZE_WHITESPACE
        Pupil(na=0.8, wavelength=0.5, dx=0.1, zernike_terms=0,
              (64, 64) complex64 -> (64, 64) complex64)
        >>> u = jnp.ones((64, 64), jnp.complex64)          # a flat field: only frequency 0
        >>> D = cc.operators.Pupil((64, 64), 0.1, 0.5, 0.8, zernike=jnp.array([0, 0, 0, 1.0]))
        >>> round(float(jnp.angle(D(u)[0, 0])), 4)         # c_4 Z_4(rho = 0) = -sqrt(3)
        -1.7321
        >>> loss = lambda c: jnp.sum(jnp.abs(cc.operators.Pupil((64, 64), 0.1, 0.5, 0.8, c)(u)))
        >>> jax.grad(loss)(jnp.zeros(11)).shape            # gradients w.r.t. the coefficients
        (11,)
    """

    zernike: jax.Array
    mask: jax.Array
    basis: jax.Array
    dx: float = static_field()
    wavelength: float = static_field()
    na: float = static_field()

    def __init__(self, input_shape, dx, wavelength, na, zernike=None, input_dtype=None):
        shape = field_shape(input_shape, "Pupil")
        self.dx = positive("dx", dx, "same unit as wavelength", owner="Pupil")
        self.wavelength = positive("wavelength", wavelength, "same unit as dx", owner="Pupil")
        self.na = positive("na", na, "a numerical aperture", owner="Pupil")
        dtype = jax.dtypes.canonicalize_dtype(
            default_complex() if input_dtype is None else input_dtype
        )
        real = real_dtype_of(dtype)
        self.zernike = _coefficients(zernike, real)
        rho, theta = self._coordinates(shape[-2:])
        inside = rho <= 1 + _EDGE_RTOL
        self.mask = jnp.asarray(inside.astype(real))
        terms = self.zernike.shape[0]
        basis = np.zeros((terms, *shape[-2:]), real)
        for j in range(1, terms + 1):
            basis[j - 1] = np.where(inside, _zernike(j, rho, theta, np), 0.0)
        self.basis = jnp.asarray(basis)
        super().__init__(shape, dtype)
        message = self._sampling_problem(2.0)
        if message:
            warnings.warn(message, stacklevel=2)

    # ---------------------------------------------------------------- geometry
    @property
    def cutoff(self) -> float:
        """The pupil's cutoff frequency ``na / wavelength`` (cycles per unit length)."""
        return self.na / self.wavelength

    def _coordinates(self, shape):
        """``rho`` and ``theta`` of the ``(ny, nx)`` fftfreq grid, float64 NumPy."""
        fy, fx = np.meshgrid(*(np.fft.fftfreq(n, self.dx) for n in shape), indexing="ij")
        return np.hypot(fy, fx) / self.cutoff, np.arctan2(fy, fx)

    @property
    def pupil_function(self) -> jax.Array:
        """``circ(rho) exp(i sum_j c_j Z_j)`` on the fftfreq grid (frequency 0 at ``[0, 0]``;
        ``jnp.fft.fftshift`` centres it)."""
        if self.zernike.shape[0] == 0:
            return self.mask.astype(jnp.promote_types(self.mask.dtype, jnp.complex64))
        phase = jnp.tensordot(self.zernike, self.basis, axes=1, precision=jax.lax.Precision.HIGHEST)
        return self.mask * jnp.exp(1j * phase)

    # ---------------------------------------------------------------- application
    def forward(self, x):
        spectrum = jnp.fft.fft2(x, axes=_AXES)
        transfer = self.mask if self.zernike.shape[0] == 0 else self.pupil_function
        return jnp.fft.ifft2(transfer * spectrum, axes=_AXES)

    def adjoint(self, y):
        transfer = self.mask if self.zernike.shape[0] == 0 else jnp.conj(self.pupil_function)
        return jnp.fft.ifft2(transfer * jnp.fft.fft2(y, axes=_AXES), axes=_AXES)

    @property
    def gram(self) -> LinearOperator:
        """``P^H P``: the aberration-free pupil (``|exp(i phase)| = 1``), for complex inputs."""
        if not is_complex(self.input_dtype):
            return super().gram
        ny, nx = self.input_shape[-2:]
        changes = {
            "zernike": jnp.zeros((0,), self.zernike.dtype),
            "basis": jnp.zeros((0, ny, nx), self.basis.dtype),
        }
        clear = object.__new__(type(self))
        for field in dataclasses.fields(self):
            value = changes.get(field.name, getattr(self, field.name))
            object.__setattr__(clear, field.name, value)
        return clear

    def unitary_factorization(self, dtype=None):
        """``A = F^H P F`` (``F`` the unitary 2D DFT): ``U = F^H``, ``B = P F``, one FFT per
        application of ``B`` instead of two."""
        transfer = self.mask if self.zernike.shape[0] == 0 else self.pupil_function
        return multiplier_factorization(transfer, self.input_shape, _AXES, self.input_dtype)

    # ---------------------------------------------------------------- checks and display
    def adequate_sampling(self, min_radius: float = 2.0) -> bool:
        """Whether the grid holds the whole pupil and resolves it (warns when it does not).

        Two conditions: the cutoff ``na / wl`` must not exceed the Nyquist frequency
        ``1 / (2 dx)`` (otherwise the grid clips the disk into a square and the image is
        undersampled: ``dx <= wl / (2 na)``), and the pupil radius must span at least
        ``min_radius`` frequency pixels ``1 / (N dx)`` along each axis (``N dx >= min_radius
        wl / na``), otherwise the disk and its Zernike phases are sampled by a handful of points.

        Args:
            min_radius: smallest acceptable pupil radius in frequency pixels.

        Returns:
            ``True`` when adequate; otherwise ``False`` and a ``UserWarning`` that explains.
        """
        message = self._sampling_problem(min_radius)
        if message:
            warnings.warn(message, stacklevel=2)
        return not message

    def _sampling_problem(self, min_radius) -> str:
        """The :meth:`adequate_sampling` warning, or ``""`` when the sampling is adequate."""
        nyquist = 1 / (2 * self.dx)
        if self.cutoff > nyquist * (1 + _EDGE_RTOL):
            return (
                f"Pupil: the cutoff na / wavelength = {self.cutoff:.4g} exceeds the grid's "
                f"Nyquist frequency 1 / (2 dx) = {nyquist:.4g}, so the grid clips the pupil "
                f"(a square, not a disk) and the image is undersampled. Use dx <= wavelength "
                f"/ (2 na) = {self.wavelength / (2 * self.na):.4g}, and check that dx (object "
                "space, not camera pixels) and wavelength share one unit."
            )
        for axis, n in zip("yx", self.input_shape[-2:], strict=True):
            radius = self.cutoff * n * self.dx
            if radius < min_radius:
                return (
                    f"Pupil: the pupil radius na / wavelength spans only {radius:.3g} frequency "
                    f"pixels 1 / (N dx) along {axis} (N = {n}), fewer than {min_radius:g}: the "
                    "disk and its aberrations are barely sampled. Use a larger field, N dx >= "
                    f"{min_radius * self.wavelength / self.na:.4g}."
                )
        return ""

    def _repr_fields(self):
        return {
            "na": self.na,
            "wavelength": self.wavelength,
            "dx": self.dx,
            "zernike_terms": int(self.zernike.shape[0]),
        }

"""Free-space propagation of scalar fields: AngularSpectrum, Fresnel and Fraunhofer.

Conventions shared by the propagators (and :class:`~calcil.operators.MultiSlice`):

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
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from calcil._internal.dtypes import complex_dtype_of, default_complex
from calcil._internal.struct import static_field
from calcil.operators._checks import field_shape, positive
from calcil.operators.base import Identity, LinearOperator, UnitaryFactorization
from calcil.operators.convolution import next_fast_len
from calcil.operators.fourier import multiplier_factorization

__all__ = ["AngularSpectrum", "Fraunhofer", "Fresnel"]

_AXES = (-2, -1)


# ---------------------------------------------------------------------- argument checks
def _distance(distance, owner):
    """A concrete distance as float64 NumPy (checked), a traced one unchanged."""
    if isinstance(distance, jax.core.Tracer):
        z = distance
    else:
        z = np.asarray(distance, dtype=np.float64)
        if not np.all(np.isfinite(z)):
            raise ValueError(f"{owner} distance must be finite, got {distance!r}")
    if jnp.ndim(z) > 1:
        raise ValueError(
            f"{owner} distance must be a scalar or a 1-d array of distances (a z-stack), got "
            f"shape {jnp.shape(z)}"
        )
    return z


def _frequencies(shape, dx):
    """``fy**2`` (column) and ``fx**2`` (row) of a ``(ny, nx)`` grid, in float64."""
    fy, fx = (np.fft.fftfreq(n, dx) for n in shape)
    return fy[:, None] ** 2, fx[None, :] ** 2


def _angular_spectrum_transfer(z, shape, dx, wavelength, n_medium, bandlimit, background=True):
    """The angular-spectrum transfer function on a ``shape`` grid, for distance(s) ``z``.

    ``H = exp(i 2 pi z kz)`` with ``kz = sqrt((n/wl)^2 - fx^2 - fy^2)``, zero for evanescent
    frequencies and, with ``bandlimit``, outside Matsushima's band ``|f| < u_limit`` (per axis).
    ``background=False`` drops the plane-wave phase ``exp(i 2 pi n z / wl)`` (a constant).
    NumPy float64 for a concrete ``z``, ``jax.numpy`` for a traced one; ``z`` of shape
    ``(nz,)`` gives ``(nz, ny, nx)``.
    """
    xp = jnp if isinstance(z, jax.core.Tracer) else np
    k = n_medium / wavelength
    fy2, fx2 = _frequencies(shape, dx)
    kz2 = k**2 - fy2 - fx2
    propagating = kz2 > 0
    kz = np.sqrt(np.where(propagating, kz2, 0.0))
    delta = -(fy2 + fx2) / (k + kz)  # kz - k without cancellation
    z = xp.reshape(z, (*xp.shape(z), 1, 1))
    phase = 2 * np.pi * z * delta
    if background:
        phase = phase + 2 * np.pi * xp.remainder(z * k, 1.0)
    keep = propagating
    if bandlimit:
        for f2, n in ((fy2, shape[0]), (fx2, shape[1])):
            du = 1.0 / (n * dx)  # frequency spacing of the (padded) grid
            keep = keep & (f2 * ((2 * du * z) ** 2 + 1) < k**2)  # |f| < u_limit
    return xp.where(keep, xp.exp(1j * phase), 0)


def _as_leaf(array, dtype):
    """A NumPy or traced array as a JAX array of ``dtype``."""
    if isinstance(array, np.ndarray):
        return jnp.asarray(array.astype(dtype))
    return array.astype(dtype)


def _dtypes(input_dtype, default):
    """The operator's input dtype (``default`` when ``None``) and its complex counterpart."""
    dtype = jax.dtypes.canonicalize_dtype(default if input_dtype is None else input_dtype)
    return dtype, jax.dtypes.canonicalize_dtype(complex_dtype_of(dtype))


def _warn(message, stacklevel=3):
    """Warn with ``message`` unless it is empty; ``True`` when it is (adequate sampling)."""
    if message:
        warnings.warn(message, stacklevel=stacklevel)
    return not message


# ---------------------------------------------------------------------- shared machinery
class _TransferPropagator(LinearOperator):
    """``y = crop(ifft2(H * fft2(pad(x))))`` over the last two axes (one ``H`` per distance)."""

    transfer: jax.Array
    distance: jax.Array
    dx: float = static_field()
    wavelength: float = static_field()
    n_medium: float = static_field()
    pad_factor: float = static_field()
    padded_shape: tuple[int, int] = static_field()

    def _setup(self, input_shape, dx, wavelength, distance, n_medium, pad_factor):
        name = type(self).__name__
        shape = field_shape(input_shape, name)
        self.dx = positive("dx", dx)
        self.wavelength = positive("wavelength", wavelength, "same unit as dx")
        self.n_medium = positive("n_medium", n_medium, "a refractive index")
        self.pad_factor = float(pad_factor)
        if not self.pad_factor >= 1:
            raise ValueError(f"{name} pad_factor must be >= 1 (1: no padding), got {pad_factor}")
        self.padded_shape = tuple(
            n if self.pad_factor == 1 else next_fast_len(math.ceil(n * self.pad_factor))
            for n in shape[-2:]
        )
        return shape, _distance(distance, name)

    def _finish(self, transfer, z, input_shape, input_dtype):
        dtype, cdtype = _dtypes(input_dtype, default_complex())
        self.transfer = _as_leaf(transfer, cdtype)
        self.distance = _as_leaf(z, jnp.finfo(cdtype).dtype)
        super().__init__(input_shape, dtype)
        if not isinstance(z, jax.core.Tracer) and self._aliases():
            _warn(self._sampling_message(), stacklevel=4)  # at the user's constructor call

    @property
    def stacked(self) -> bool:
        """True when ``distance`` is a 1-d array: the output has a leading z axis."""
        return self.transfer.ndim == 3

    def _pad(self, x):
        widths = [(0, 0)] * (x.ndim - 2)
        for n, p in zip(x.shape[-2:], self.padded_shape, strict=True):
            widths.append(((p - n) // 2, p - n - (p - n) // 2))
        return x if all(w == (0, 0) for w in widths) else jnp.pad(x, widths)

    def _crop(self, x):
        ny, nx = self.input_shape[-2:]
        (py, px) = self.padded_shape
        y0, x0 = (py - ny) // 2, (px - nx) // 2
        return x[..., y0 : y0 + ny, x0 : x0 + nx]

    def _transfer_for(self, ndim):
        """The transfer function shaped to broadcast against an ``ndim``-d input field."""
        if not self.stacked:
            return self.transfer
        return self.transfer.reshape((-1,) + (1,) * (ndim - 2) + self.padded_shape)

    def forward(self, x):
        spectrum = jnp.fft.fft2(self._pad(x), axes=_AXES)
        return self._crop(jnp.fft.ifft2(self._transfer_for(x.ndim) * spectrum, axes=_AXES))

    def adjoint(self, y):
        transfer = jnp.conj(self._transfer_for(y.ndim - self.stacked))
        spectrum = transfer * jnp.fft.fft2(self._pad(y), axes=_AXES)
        if self.stacked:
            spectrum = spectrum.sum(0)
        return self._crop(jnp.fft.ifft2(spectrum, axes=_AXES))

    def unitary_factorization(self, dtype=None):
        """Without padding ``A = F^H H F`` (``F`` the unitary 2D DFT): ``U = F^H`` and
        ``B = H F``, one FFT per application of ``B``. Padding crops the result, which is not
        unitary: ``None`` then."""
        if self.padded_shape != tuple(self.input_shape[-2:]):
            return None
        transfer = self._transfer_for(len(self.input_shape))
        return multiplier_factorization(transfer, self.input_shape, _AXES, self.input_dtype)

    # ---------------------------------------------------------------- sampling check
    def _aliases(self) -> bool:
        """Whether the undersampled part of the transfer function reaches the output (wraps
        around or aliases) rather than being removed: such an operator warns when built."""
        return True

    def _shift(self, f, z) -> float:
        """Lateral displacement of the plane-wave component of frequency ``f`` over ``z``."""
        raise NotImplementedError

    def _band_edge(self, n) -> float:
        """Default highest frequency to check on an ``n``-point (padded) axis."""
        return float(np.abs(np.fft.fftfreq(n, self.dx)).max())

    def _sampling_report(self, na):
        """``(ok, detail)``: Nyquist test of the transfer-function phase on each axis."""
        z = float(np.max(np.abs(np.asarray(self.distance, np.float64))))
        if na is not None:
            positive("na", na, "a numerical aperture")
        for axis, n in zip("yx", self.padded_shape, strict=True):
            f = self._band_edge(n) if na is None else na / self.wavelength
            window = n * self.dx
            shift = self._shift(f, z)
            if shift > window / 2:
                return False, (
                    f"along {axis}, the plane-wave component of spatial frequency {f:.4g} "
                    f"(NA {f * self.wavelength:.3g}) moves {shift:.4g} sideways over "
                    f"|distance| = {z:.4g}, more than half the computational window "
                    f"({window / 2:.4g}): the transfer function is undersampled and the field "
                    "wraps around"
                )
        return True, ""

    def _repr_fields(self):
        fields = {
            "dx": self.dx,
            "wavelength": self.wavelength,
            "distance": self.distance,
            "n_medium": self.n_medium,
        }
        if self.pad_factor != 1:
            fields["pad_factor"] = self.pad_factor
        return fields


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
    short distances; use :class:`Fraunhofer` (or an impulse-response method) far away.

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

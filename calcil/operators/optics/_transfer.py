"""Shared machinery of the transfer-function propagators (AngularSpectrum, Fresnel, MultiSlice).

Private to the optics package: argument checks, the angular-spectrum transfer function and
``_TransferPropagator``, the base of ``y = crop(ifft2(H * fft2(pad(x))))`` operators. The
conventions are those of :mod:`calcil.operators.optics.propagation`.
"""

import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from calcil._internal.dtypes import complex_dtype_of, default_complex
from calcil._internal.struct import static_field
from calcil.operators._checks import field_shape, positive
from calcil.operators.base import LinearOperator
from calcil.operators.convolution import next_fast_len
from calcil.operators.fourier import multiplier_factorization

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

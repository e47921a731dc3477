"""Fourier ptychography: an LED-array microscope's low-resolution intensity images.

Conventions as in :mod:`calcil.operators.optics.pupil`: complex transmittances
``t[..., y, x]`` with pixel size ``dx``, frequencies ``numpy.fft.fftfreq(N, dx)`` (cycles per
unit length) as ``(fy, fx)``; illumination NAs ``(sy, sx) = (sin theta_y, sin theta_x)`` are
given the same ``(y, x)`` order.
"""

import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from calcil._internal.dtypes import default_complex, real_dtype_of
from calcil._internal.integers import as_count
from calcil._internal.struct import static_field
from calcil.operators._checks import field_shape, finite_leaf, positive
from calcil.operators.base import Operator
from calcil.operators.optics.pupil import Pupil

__all__ = ["FourierPtychography", "led_array"]

_RTOL = 1e-9


def led_array(shape, pitch, distance, center=(0.0, 0.0)):
    """Illumination NAs ``(n_leds, 2)`` as ``(sy, sx)`` of a planar LED grid below the sample.

    LED ``(i, j)`` sits at ``(y, x) = ((i - (ny - 1) / 2) pitch + cy, (j - (nx - 1) / 2) pitch
    + cx)`` at height ``distance`` under the sample; its illumination NA is the direction
    sine ``(y, x) / sqrt(x^2 + y^2 + distance^2)``. Row-major order, the centre LED of an odd
    grid in the middle (index ``n_leds // 2``).

    Args:
        shape: ``(ny, nx)`` LEDs.
        pitch: LED spacing (same unit as ``distance``, say mm).
        distance: LED plane to sample.
        center: offset ``(cy, cx)`` of the array's centre from the optical axis.

    Example:
        >>> import calcil as cc
        >>> s = cc.operators.led_array((3, 3), pitch=4.0, distance=80.0)
        >>> s.shape, s[4].tolist(), round(float(s[5, 1]), 4)   # centre LED; its right neighbour
        ((9, 2), [0.0, 0.0], 0.0499)
    """
    ny, nx = (as_count("led_array shape", n, 1, "a positive integer") for n in shape)
    pitch = positive("pitch", pitch, "same unit as distance", owner="led_array")
    distance = positive("distance", distance, "same unit as pitch", owner="led_array")
    y = (np.arange(ny) - (ny - 1) / 2) * pitch + float(center[0])
    x = (np.arange(nx) - (nx - 1) / 2) * pitch + float(center[1])
    yy, xx = (a.ravel() for a in np.meshgrid(y, x, indexing="ij"))
    r = np.sqrt(yy**2 + xx**2 + distance**2)
    return np.stack([yy / r, xx / r], axis=1)


def _led_na(led_na):
    """``led_na`` as a float leaf of shape ``(n_leds, 2)`` (concrete values finite)."""
    leaf = finite_leaf(led_na, "led_na", "FourierPtychography", "illumination NAs")
    if leaf.ndim != 2 or leaf.shape[1] != 2 or leaf.shape[0] == 0:
        raise ValueError(
            "FourierPtychography led_na must have shape (n_leds, 2): the illumination NA "
            f"(sin theta_y, sin theta_x) of each LED, got shape {leaf.shape}. "
            "cc.operators.led_array builds it for a planar LED grid."
        )
    return leaf


def _disk_overlap(distance, radius):
    """Overlap area of two disks of ``radius`` at centre ``distance``, over one disk's area."""
    d = np.minimum(np.asarray(distance, float) / (2 * radius), 1.0)
    return (2 / np.pi) * (np.arccos(d) - d * np.sqrt(1 - d**2))


class FourierPtychography(Operator):
    """LED-array (Fourier ptychographic) microscope: a complex object to low-resolution images.

    LED ``l`` with illumination NA ``s_l = (sy, sx)`` lights the object with the plane wave
    ``exp(i 2 pi (sy y + sx x) / wavelength)``; the camera records the intensity of the
    pupil-filtered exit wave sampled every ``d = downsample`` pixels::

        I_l = |IFFT_m(P * crop_l(FFT_n(t)))|^2 / d^4

    with ``FFT_n`` the DFT of the ``(ny, nx)`` object, ``crop_l`` the ``(ny/d, nx/d)`` window
    of its spectrum centred at ``-s_l / wavelength`` (rounded to the spectrum grid
    ``1 / (N dx)``: :attr:`effective_led_na`), and ``P`` the :class:`Pupil` (cutoff
    ``na / wavelength``, Zernike phase) on the low-resolution grid of pixel ``d dx``. A
    uniform object of transmittance 1 under an on-axis LED images to 1; LEDs with
    ``|s_l| < na`` give brightfield images, the others darkfield ones. The synthetic aperture
    reaches ``na + max |s_l|``.

    Sampling, checked at construction (``ValueError``): the pupil must fit the
    low-resolution grid, ``na / wavelength <= 1 / (2 d dx)`` (else the camera undersamples),
    and each LED's shifted pupil must stay inside the object's spectrum,
    ``|s_l| / wavelength + na / wavelength <= 1 / (2 dx)`` along each axis (else the window
    wraps around). :meth:`overlap` reports the spectral overlap of neighbouring LEDs and
    :meth:`adequate_sampling` warns when it is below the recommended 35-60%.

    The Zernike coefficients are a leaf (``A.pupil.zernike``): build the operator from the
    unknown coefficients inside the forward model to recover the pupil with the object.
    ``led_na`` is a leaf too, so a forward model can build the operator for a mini-batch of
    LEDs drawn by the solver (``batch["led_na"]``; traced values skip the construction
    checks); it is rounded to the spectrum grid, so it has no gradient.

    Args:
        object_shape: ``(..., ny, nx)``, ``ny`` and ``nx`` multiples of ``downsample``;
            leading axes are a batch.
        dx: object pixel size (same unit as ``wavelength``).
        wavelength: illumination wavelength.
        na: objective numerical aperture.
        led_na: ``(n_leds, 2)`` illumination NAs ``(sy, sx)`` (see :func:`led_array`).
        downsample: camera pixel over object pixel, a positive integer.
        zernike: optional Noll-indexed pupil coefficients in radians (see :class:`Pupil`).
        input_dtype: default complex64 (complex128 with x64).

    Returns:
        ``(..., n_leds, ny/d, nx/d)`` real intensities.

    Reference:
        G. Zheng, R. Horstmeyer and C. Yang, "Wide-field, high-resolution Fourier ptychographic
        microscopy," Nat. Photonics 7, 739 (2013); J. Sun, Q. Chen, Y. Zhang and C. Zuo,
        "Sampling criteria for Fourier ptychographic microscopy in object space and frequency
        space," Opt. Express 24, 15765 (2016).

    Example:
        >>> import jax.numpy as jnp, calcil as cc
        >>> O = cc.operators
        >>> leds = O.led_array((3, 3), pitch=4.0, distance=60.0)        # mm
        >>> A = O.FourierPtychography((64, 64), 0.25, 0.5, 0.1, leds, downsample=4)
        >>> images = A(jnp.ones((64, 64), jnp.complex64))
        >>> images.shape, round(float(images[4].mean()), 4)           # on axis: uniform 1
        ((9, 16, 16), 1.0)
    """

    pupil: Pupil
    dx: float = static_field()
    downsample: int = static_field()
    led_na: jax.Array

    def __init__(
        self, object_shape, dx, wavelength, na, led_na, downsample, zernike=None, input_dtype=None
    ):
        owner = "FourierPtychography"
        shape = field_shape(object_shape, owner)
        self.dx = positive("dx", dx, "same unit as wavelength", owner)
        wavelength = positive("wavelength", wavelength, "same unit as dx", owner)
        na = positive("na", na, "a numerical aperture", owner)
        d = as_count(f"{owner} downsample", downsample, 1, "a positive integer")
        self.downsample = d
        ny, nx = shape[-2:]
        if ny % d or nx % d:
            raise ValueError(
                f"{owner}: the object grid ({ny}, {nx}) must be a multiple of downsample = {d} "
                "along each axis; crop or pad the object"
            )
        leds = _led_na(led_na)
        cutoff, nyquist = na / wavelength, 1 / (2 * d * self.dx)
        if cutoff > nyquist * (1 + _RTOL):
            largest = math.floor(wavelength / (2 * na * self.dx) * (1 + _RTOL))
            fix = f"downsample <= {largest}" if largest >= 1 else "a smaller dx"
            raise ValueError(
                f"{owner}: the pupil cutoff na / wavelength = {cutoff:.4g} exceeds the camera "
                f"grid's Nyquist frequency 1 / (2 downsample dx) = {nyquist:.4g}, so the pupil "
                f"does not fit the low-resolution grid (undersampled images). Use {fix}."
            )
        dtype = default_complex() if input_dtype is None else input_dtype
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the camera grid was checked above
            self.pupil = Pupil((ny // d, nx // d), d * self.dx, wavelength, na, zernike, dtype)
        real = real_dtype_of(self.pupil.input_dtype)
        self.led_na = leds.astype(real)
        out = (*shape[:-2], leds.shape[0], ny // d, nx // d)
        super().__init__(shape, self.pupil.input_dtype, out, real)
        if not isinstance(led_na, jax.core.Tracer):  # concrete (jnp.asarray traces in jit)
            self._check_spectrum(np.asarray(led_na, dtype=real))

    def _check_spectrum(self, leds):
        """Every LED's shifted pupil inside the object's spectrum, else a ``ValueError``."""
        wavelength, cutoff = self.pupil.wavelength, self.pupil.cutoff
        rounded = self._offsets(leds, np) * self._spacing() * wavelength
        reach = np.abs(rounded) / wavelength + cutoff
        outside = np.flatnonzero(np.any(reach > 1 / (2 * self.dx) * (1 + _RTOL), axis=1))
        if outside.size:
            l = int(outside[0])
            raise ValueError(
                f"FourierPtychography: {outside.size} LED(s) (first: index {l}, illumination NA "
                f"{tuple(np.round(leds[l], 4))}) shift the pupil beyond the object's spectrum: "
                f"(|s| + na) / wavelength = {float(reach[l].max()):.4g} exceeds the object "
                f"grid's Nyquist frequency 1 / (2 dx) = {1 / (2 * self.dx):.4g}. Use dx <= "
                f"{wavelength / (2 * (self.pupil.na + np.abs(leds).max())):.4g} or drop "
                "those LEDs."
            )

    # ---------------------------------------------------------------- geometry
    def _spacing(self):
        """The object spectrum's frequency step ``1 / (N dx)`` along y and x."""
        ny, nx = self.input_shape[-2:]
        return np.array([1 / (ny * self.dx), 1 / (nx * self.dx)])

    def _offsets(self, led_na, xp=jnp):
        """Each LED's tilt in spectrum pixels ``(n_leds, 2)``, rounded (NumPy or JAX)."""
        steps = led_na / self.pupil.wavelength / self._spacing().astype(led_na.dtype)
        return xp.round(steps).astype(xp.int32)

    @property
    def effective_led_na(self) -> np.ndarray:
        """The illumination NAs actually used: ``led_na`` rounded to the spectrum grid."""
        offsets = self._offsets(np.asarray(self.led_na), np)
        return offsets * self._spacing() * self.pupil.wavelength

    @property
    def brightfield(self) -> np.ndarray:
        """Boolean ``(n_leds,)``: the LEDs whose illumination lies inside the pupil."""
        return np.hypot(*self.effective_led_na.T) <= self.pupil.na * (1 + _RTOL)

    def overlap(self) -> np.ndarray:
        """Per LED, the area fraction of its pupil disk (in the object spectrum) shared with
        the nearest other LED's: ``(2 / pi) (acos(u) - u sqrt(1 - u^2))``, ``u = d / (2 r)``,
        ``d`` the distance between the disk centres and ``r = na / wavelength``."""
        s = self.effective_led_na / self.pupil.wavelength
        if len(s) == 1:
            return np.zeros(1)
        distance = np.hypot(*(s[:, None, :] - s[None, :, :]).transpose(2, 0, 1))
        np.fill_diagonal(distance, np.inf)
        return _disk_overlap(distance.min(axis=1), self.pupil.cutoff)

    def adequate_sampling(self, min_overlap: float = 0.35) -> bool:
        """Whether every LED's pupil overlaps its nearest neighbour's by at least
        ``min_overlap`` of its area (warns when not). Sun et al. (2016) recommend 35% or
        more for a stable recovery, 60% with pupil recovery or noisy data."""
        worst = self.overlap()
        bad = np.flatnonzero(worst < min_overlap)
        if bad.size:
            warnings.warn(
                f"FourierPtychography: {bad.size} LED(s) overlap their nearest neighbour in "
                f"the spectrum by less than {min_overlap:.0%} (smallest {worst.min():.1%}, LED "
                f"{int(bad[0])}); the recovery may leave gaps. Bring the LEDs closer (smaller "
                "pitch or larger distance) or use a larger na.",
                stacklevel=2,
            )
        return not bad.size

    # ---------------------------------------------------------------- application
    def _window_indices(self):
        """Row and column indices ``(n_leds, m)`` of each LED's spectrum window, FFT order."""
        ny, nx = self.input_shape[-2:]
        offsets = self._offsets(self.led_na)
        index = []
        for a, n in enumerate((ny, nx)):
            m = n // self.downsample
            k = np.rint(np.fft.fftfreq(m) * m).astype(np.int32)
            index.append((k[None, :] - offsets[:, a, None]) % n)
        return index

    def forward(self, t):
        rows, cols = self._window_indices()
        spectrum = jnp.fft.fft2(t)
        windows = spectrum[..., rows[:, :, None], cols[:, None, :]]
        transfer = self.pupil.pupil_function.astype(t.dtype) / self.downsample**2
        field = jnp.fft.ifft2(transfer * windows)
        return field.real**2 + field.imag**2

    def _repr_fields(self):
        return {
            "na": self.pupil.na,
            "wavelength": self.pupil.wavelength,
            "dx": self.dx,
            "downsample": self.downsample,
            "n_leds": self.led_na.shape[0],
        }

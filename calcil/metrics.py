"""Image quality metrics in JAX: PSNR, SSIM and NRMSE of an estimate ``x`` against ``ref``.

Pure JAX (no NumPy or SciPy at run time): each works inside ``jax.jit``, ``jax.vmap`` (one
value per image of a batch) and solver callbacks, with no transfer to the host, and returns a
real scalar in the precision of the inputs (float32 for float32 and complex64, float64 for
float64).

* ``psnr = 10 log10(R^2 / mean |x - ref|^2)`` in dB, with the data range ``R`` defaulting to
  ``max(ref) - min(ref)`` (``max |ref| - min |ref|`` for complex ``ref``);
* ``ssim``: the mean structural similarity of Wang et al. (IEEE TIP 13(4), 2004) with an
  isotropic Gaussian window (sigma 1.5), equal to scikit-image's ``structural_similarity(x,
  ref, data_range=R, gaussian_weights=True, use_sample_covariance=False)``;
* ``nrmse = ||x - ref||_2 / ||ref||_2`` (Euclidean norms over all elements).

PSNR and NRMSE take complex arrays (through ``|x - ref|``); SSIM needs real ones. scikit-image
defaults ``data_range`` for float images to the dtype's range (1, or 2 for negative values)
rather than the data's: pass it explicitly when comparing the two.
"""

import math

import jax
import jax.numpy as jnp

from calcil._internal.dtypes import inexact_or_default, real_dtype_of

__all__ = ["nrmse", "psnr", "ssim"]

# SSIM constants of Wang et al. (2004), as in scikit-image: stabilisers C1 = (K1 R)^2 and
# C2 = (K2 R)^2, and a Gaussian window of sigma 1.5 truncated at 3.5 sigma (11 taps).
_K1, _K2 = 0.01, 0.03
_SIGMA, _TRUNCATE = 1.5, 3.5
_RADIUS = int(_TRUNCATE * _SIGMA + 0.5)  # scipy.ndimage's rounding: 5
_WIN = 2 * _RADIUS + 1


# ------------------------------------------------------------------------------- checks
def _pair(x, ref, func):
    """``x`` and ``ref`` as JAX arrays of one inexact dtype, or ``ValueError``."""
    x, ref = jnp.asarray(x), jnp.asarray(ref)
    if x.shape != ref.shape:
        raise ValueError(
            f"{func} expects x and ref of the same shape, got x {x.shape} and ref {ref.shape}: "
            "compare an estimate with the reference it approximates (crop or resize first)"
        )
    dtype = inexact_or_default(jnp.promote_types(x.dtype, ref.dtype))
    return x.astype(dtype), ref.astype(dtype)


def _range_of(ref):
    """``max(ref) - min(ref)``, or ``max |ref| - min |ref|`` for complex ``ref``."""
    values = jnp.abs(ref) if jnp.issubdtype(ref.dtype, jnp.complexfloating) else ref
    return jnp.max(values) - jnp.min(values)


def _data_range(data_range, ref, func):
    """``R`` as a real scalar of ``ref``'s precision, or ``None`` for :func:`_range_of`; a
    number is checked (a JAX array is not: no device sync)."""
    if data_range is None:
        return None
    try:
        r = jnp.asarray(data_range)
    except TypeError:
        r = None
    if r is None or r.ndim != 0 or not jnp.issubdtype(r.dtype, jnp.number) or r.dtype.kind == "c":
        raise ValueError(f"{func} expects data_range as a real scalar > 0, got {data_range!r}")
    if not isinstance(data_range, jax.Array) and not float(data_range) > 0:
        raise ValueError(
            f"{func} expects data_range > 0 (the span max - min of the values the image can "
            f"take, e.g. 1.0 for images in [0, 1] or 255 for 8-bit ones), got {data_range!r}"
        )
    return r.astype(real_dtype_of(ref.dtype))


# --------------------------------------------------------------------------------- PSNR
def psnr(x, ref, data_range=None) -> jax.Array:
    """Peak signal-to-noise ratio of ``x`` against ``ref`` in decibels.

    ``psnr = 10 log10(R^2 / mean |x - ref|^2)`` over all elements, with ``R = data_range``, by
    default ``max(ref) - min(ref)`` (for complex ``ref``, ``max |ref| - min |ref|``). Higher is
    better; ``x == ref`` gives ``inf``. scikit-image's ``peak_signal_noise_ratio`` defaults
    ``R`` to the dtype's range for float images (1 when ``ref >= 0``), so the two agree only
    with an explicit ``data_range``. A constant ``ref`` needs an explicit ``data_range``.

    Args:
        x: the estimate, real or complex, any shape.
        ref: the reference (ground truth), same shape.
        data_range: ``R``, a scalar > 0 (a JAX array may be traced), or ``None`` for the
            range of ``ref``.

    Returns:
        A real scalar (float32, or float64 for float64 inputs).

    Example:
        >>> import jax.numpy as jnp
        >>> from calcil import metrics
        >>> ref = jnp.linspace(0.0, 1.0, 100)
        >>> round(float(metrics.psnr(ref + 0.01, ref)), 3)       # mse 1e-4, R = 1
        40.0
        >>> round(float(metrics.psnr(ref + 0.01, ref, data_range=2.0)), 3)
        46.021
    """
    x, ref = _pair(x, ref, "psnr")
    return _psnr(x, ref, _data_range(data_range, ref, "psnr"))


@jax.jit
def _psnr(x, ref, r):
    r = _range_of(ref) if r is None else r
    return 10.0 * jnp.log10(r**2 / jnp.mean(jnp.abs(x - ref) ** 2))


# -------------------------------------------------------------------------------- NRMSE
def nrmse(x, ref) -> jax.Array:
    """Normalised root-mean-square error ``||x - ref||_2 / ||ref||_2``.

    Euclidean norms over all elements (``|.|`` of complex values), so the value is the
    relative error: 0 for ``x == ref``, 1 for ``x = 0``. It equals scikit-image's
    ``normalized_root_mse(ref, x, normalization="euclidean")`` (note its argument order).

    Args:
        x: the estimate, real or complex, any shape.
        ref: the reference, same shape, not all zero.

    Returns:
        A real scalar (float32, or float64 for float64 inputs).

    Example:
        >>> import jax.numpy as jnp
        >>> from calcil import metrics
        >>> ref = jnp.array([3.0, 4.0])
        >>> float(metrics.nrmse(ref * 1.1, ref))
        0.1...
        >>> float(metrics.nrmse(jnp.zeros(2), ref))
        1.0
    """
    return _nrmse(*_pair(x, ref, "nrmse"))


@jax.jit
def _nrmse(x, ref):
    return jnp.sqrt(jnp.sum(jnp.abs(x - ref) ** 2) / jnp.sum(jnp.abs(ref) ** 2))


# --------------------------------------------------------------------------------- SSIM
def _gaussian_filter(a, ndim):
    """Gaussian filter (sigma 1.5, 11 taps) along the last ``ndim`` axes of ``a`` (a stack),
    with scipy.ndimage's ``mode="reflect"`` boundary (``d c b a | a b c d | d c b a``, NumPy's
    ``"symmetric"`` padding): one 1D convolution per axis, as ``gaussian_filter`` does."""
    w = [math.exp(-0.5 * (k / _SIGMA) ** 2) for k in range(-_RADIUS, _RADIUS + 1)]
    taps = jnp.asarray([v / math.fsum(w) for v in w], a.dtype)
    out = a.reshape(-1, 1, *a.shape[-ndim:])  # (batch, channel, *spatial)
    for axis in range(2, ndim + 2):
        width = [(0, 0)] * out.ndim
        width[axis] = (_RADIUS, _RADIUS)
        kernel = taps.reshape([1, 1] + [_WIN if d == axis else 1 for d in range(2, ndim + 2)])
        out = jax.lax.conv_general_dilated(
            jnp.pad(out, width, mode="symmetric"),
            kernel,
            (1,) * ndim,
            "VALID",
            precision=jax.lax.Precision.HIGHEST,
        )
    return out.reshape(a.shape)


def ssim(x, ref, data_range=None) -> jax.Array:
    """Mean structural similarity (SSIM) of ``x`` against ``ref``, for 2D images and 3D
    volumes.

    With Gaussian-weighted local means ``mu``, variances ``s^2`` and covariance ``s_xr``
    (window sigma 1.5 truncated at 3.5 sigma: 11 taps, applied separably along every axis
    with reflecting boundaries; population statistics ``E[xr] - mu_x mu_r``)::

        S = (2 mu_x mu_r + C1) (2 s_xr + C2) / ((mu_x^2 + mu_r^2 + C1) (s_x^2 + s_r^2 + C2))

    with ``C1 = (0.01 R)^2``, ``C2 = (0.03 R)^2``, ``R = data_range`` (default ``max(ref) -
    min(ref)``). The result is the mean of ``S`` after dropping 5 pixels (the window's
    half-width) at each border of each axis, as in scikit-image's ``structural_similarity(x,
    ref, data_range=R, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)``. It is
    1 for ``x == ref`` and at most 1. Every axis is filtered: for a batch of images use
    ``jax.vmap(ssim)``.

    Args:
        x: the estimate, real, with at least 11 pixels along every axis.
        ref: the reference, same shape.
        data_range: ``R``, a scalar > 0 (a JAX array may be traced), or ``None`` for the
            range of ``ref`` (a constant ``ref`` needs an explicit one).

    Returns:
        A real scalar (float32, or float64 for float64 inputs).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from calcil import metrics, phantoms
        >>> ref = phantoms.shepp_logan((64, 64))
        >>> float(metrics.ssim(ref, ref))
        1.0
        >>> noisy = ref + 0.1 * jax.random.normal(jax.random.key(0), ref.shape)
        >>> 0.1 < float(metrics.ssim(noisy, ref, data_range=1.0)) < 0.5
        True
    """
    x, ref = _pair(x, ref, "ssim")
    if jnp.issubdtype(x.dtype, jnp.complexfloating):
        raise ValueError(
            f"ssim expects real images, got {x.dtype}: compare jnp.abs(x) with jnp.abs(ref), or "
            "the real and imaginary parts (or phases) separately"
        )
    if x.ndim == 0 or min(x.shape) < _WIN:
        raise ValueError(
            f"ssim expects images with at least {_WIN} pixels along every axis (its Gaussian "
            f"window), got shape {x.shape}: every axis is filtered, so use jax.vmap(ssim) for "
            "a batch of images"
        )
    return _ssim(x, ref, _data_range(data_range, ref, "ssim")).astype(real_dtype_of(x.dtype))


@jax.jit
def _ssim(x, ref, r):
    """The mean SSIM map (one compiled program per shape and dtype, also when called eagerly).

    The local statistics are taken of ``x - mean(x)`` and ``ref - mean(ref)``: the
    (co)variances do not change, and ``E[a^2] - E[a]^2`` cancels fewer digits in float32."""
    r = _range_of(ref) if r is None else r
    c1, c2 = (_K1 * r) ** 2, (_K2 * r) ** 2
    cx, cr = jnp.mean(x), jnp.mean(ref)
    xc, rc = x - cx, ref - cr
    stack = jnp.stack([xc, rc, xc * xc, rc * rc, xc * rc])
    mx, mr, exx, err, exr = _gaussian_filter(stack, x.ndim)
    vx, vr, cxr = exx - mx * mx, err - mr * mr, exr - mx * mr
    mx, mr = mx + cx, mr + cr
    s = (2 * mx * mr + c1) * (2 * cxr + c2) / ((mx * mx + mr * mr + c1) * (vx + vr + c2))
    inner = tuple(slice(_RADIUS, n - _RADIUS) for n in x.shape)
    return jnp.mean(s[inner])

"""The orthonormal discrete wavelet transform (Daubechies filters, periodic boundaries).

The transform is written here with two-channel filter banks rather than taken from a package:
the one JAX wavelet package on PyPI (``jaxwt`` 0.1.1, 2024) pads the signal (zero, reflect or
symmetric: no periodization, so its transform is not orthonormal and its adjoint is not its
inverse), works on the trailing 1, 2 or 3 axes only, and needs PyWavelets at run time.

Per transformed axis of even length ``n``, one level splits ``x`` into the approximation
``a[k] = sum_j h[j] x[(2k + F/2 - j) mod n]`` and the detail ``d[k]`` (the same sum with
``g``), ``k < n/2``, ``F`` the filter length: PyWavelets' ``dwt(x, mode="periodization")``.
``h`` is the analysis low-pass filter ``dec_lo`` and ``g[j] = (-1)^(j+1) h[F-1-j]`` the
high-pass (``dec_hi``). In polyphase form, ``x[2k + m]`` is the even or odd samples (``m``
even or odd) at ``k + m // 2``, so one level maps the two phases (channels) of the
periodically padded half-length signals to ``a`` and ``d`` with a ``(2, 2, F/2)`` kernel: the
``F/2`` shifted windows contracted with it in one ``einsum`` at full precision, per axis and
level, on free reshapes of the array (no transposes of the data). The filters are
orthonormal, so the transform is too, and its adjoint (the transposed filter bank, written
the same way) is its inverse. The whole transform is one compiled function. Measured on a
CPU (256 x 256, db4, 3 levels): 1.8 ms per application and 0.8 s to compile; a
``lax.conv_general_dilated`` formulation compiled in 0.2 s but ran in 7 ms, and shifted
elementwise products ran in 0.4 ms but compiled in 2 s (10 s for 64^3 and db8).

Packing (the "Mallat" layout of ``pywt.coeffs_to_array``): one level replaces the current
block by ``[a, d]`` along each transformed axis in turn, so the block's leading corner holds
the approximation along every axis; the next level transforms that corner. With ``levels=L``
and input ``(ny, nx)``, ``y[:ny/2^L, :nx/2^L]`` is the coarsest approximation and
``y[:ny/2, nx/2:]`` the finest details along ``x``; equal to
``pywt.coeffs_to_array(pywt.wavedecn(x, w, mode="periodization", level=L, axes=axes),
padding=0, axes=axes)[0]``.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from calcil._internal.dtypes import default_real, real_dtype_of
from calcil._internal.integers import as_count, as_ints
from calcil._internal.shapes import normalize_axes
from calcil._internal.struct import static_field
from calcil.operators.base import Identity, LinearOperator, UnitaryFactorization

__all__ = ["Wavelet"]

# Analysis low-pass filters ``dec_lo`` of the Daubechies wavelets dbN (N vanishing moments,
# 2N taps), as PyWavelets lists them (``pywt.Wavelet("dbN").dec_lo``): the time reverse of
# the h_n of I. Daubechies, "Ten Lectures on Wavelets" (SIAM, 1992), Table 6.1, normalised to
# sum(h) = sqrt(2), sum(h^2) = 1. haar is db1.
_DEC_LO = {
    "db1": (0.7071067811865476, 0.7071067811865476),
    "db2": (-0.12940952255126037, 0.2241438680420134, 0.8365163037378079, 0.48296291314453416),
    "db3": (
        0.03522629188570953,
        -0.08544127388202666,
        -0.13501102001025458,
        0.45987750211849154,
        0.8068915093110925,
        0.33267055295008263,
    ),
    "db4": (
        -0.010597401785069032,
        0.0328830116668852,
        0.030841381835560764,
        -0.18703481171909309,
        -0.027983769416859854,
        0.6308807679298589,
        0.7148465705529157,
        0.2303778133088965,
    ),
    "db5": (
        0.0033357252854737712,
        -0.012580751999081999,
        -0.006241490212798274,
        0.07757149384004572,
        -0.032244869584638375,
        -0.24229488706638203,
        0.13842814590132074,
        0.7243085284377729,
        0.6038292697971896,
        0.16010239797419293,
    ),
    "db6": (
        -0.0010773010853084796,
        0.004777257510945511,
        0.0005538422011614961,
        -0.03158203931748603,
        0.027522865530305727,
        0.09750160558732304,
        -0.12976686756726194,
        -0.22626469396543983,
        0.31525035170919763,
        0.7511339080210954,
        0.49462389039845306,
        0.11154074335010947,
    ),
    "db7": (
        0.00035371379997452024,
        -0.0018016407040474908,
        0.0004295779729213665,
        0.01255099855609984,
        -0.01657454163066688,
        -0.03802993693501441,
        0.08061260915108308,
        0.07130921926683026,
        -0.22403618499387498,
        -0.14390600392856498,
        0.4697822874051931,
        0.7291320908462351,
        0.3965393194819173,
        0.07785205408500918,
    ),
    "db8": (
        -0.00011747678412476953,
        0.0006754494064505693,
        -0.00039174037337694705,
        -0.004870352993451574,
        0.008746094047405777,
        0.013981027917398282,
        -0.044088253930794755,
        -0.017369301001807547,
        0.12874742662047847,
        0.0004724845739132828,
        -0.2840155429615469,
        -0.015829105256349306,
        0.5853546836542067,
        0.6756307362972898,
        0.31287159091429995,
        0.05441584224310401,
    ),
}
_DEC_LO["haar"] = _DEC_LO["db1"]
FAMILIES = ("haar", *(f"db{n}" for n in range(1, 9)))


def filters(wavelet: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The analysis filters ``(dec_lo, dec_hi)`` of ``wavelet`` (PyWavelets' values)."""
    h = _DEC_LO[wavelet]
    f = len(h)
    return h, tuple((-1) ** (j + 1) * h[f - 1 - j] for j in range(f))


@functools.cache
def _polyphase_kernels(wavelet: str):
    """The analysis and synthesis filter banks as polyphase convolution kernels.

    The coefficient ``k`` of tap ``j`` weighs ``x[2k + m]``, ``m = F/2 - j``: the phase
    ``m % 2`` (even or odd samples) at ``k + m // 2``. Analysis maps the two phases (input
    channels) to ``[a, d]`` (output channels); synthesis, its transpose, maps ``[a, d]`` back
    to the phases. Returns ``(analysis, analysis_pads, synthesis, synthesis_pads)``: kernels
    ``(2, 2, K)`` (out, in, taps) for a cross-correlation, and the periodic padding
    ``(before, after)`` of the half-length signals each needs.
    """
    h, g = filters(wavelet)
    f = len(h)
    shifts = [(f // 2 - j) // 2 for j in range(f)]
    first, last = min(shifts), max(shifts)
    analysis = np.zeros((2, 2, last - first + 1))
    synthesis = np.zeros_like(analysis)
    for j, s in enumerate(shifts):
        phase = (f // 2 - j) % 2
        analysis[:, phase, s - first] = h[j], g[j]
        synthesis[phase, :, last - s] = h[j], g[j]
    return analysis, (-first, last), synthesis, (last, -first)


def _filter_bank(x, axis, kernel, pads, analysis):
    """One level along ``axis``: ``[a, d]`` (each half the length) in place of ``x``
    (``analysis``), or the inverse: ``x`` from ``[a, d]``.

    ``x`` is viewed (a free reshape) as ``(before, n/2, 2, after)``, the even and odd samples
    as channels, or as ``(before, 2, n/2, after)``, the halves ``[a, d]`` as channels; the
    ``K`` shifted windows of the periodically padded half-length signals are contracted with
    the ``(2, 2, K)`` kernel, which reads one layout and writes the other.
    """
    shape, n = x.shape, x.shape[axis]
    before, after, half = math.prod(shape[:axis]), math.prod(shape[axis + 1 :]), n // 2
    v = x.reshape((before, half, 2, after) if analysis else (before, 2, half, after))
    h = 1 if analysis else 2  # the axis of the half-length signals
    v = jnp.pad(v, [pads if d == h else (0, 0) for d in range(4)], mode="wrap")
    taps = kernel.shape[-1]
    windows = jnp.stack([lax.slice_in_dim(v, q, q + half, axis=h) for q in range(taps)], -1)
    spec = "bmcaq,ocq->boma" if analysis else "bcmaq,ocq->bmoa"
    k = jnp.asarray(kernel, real_dtype_of(v.dtype))
    return jnp.einsum(spec, windows, k, precision=lax.Precision.HIGHEST).reshape(shape)


@functools.partial(jax.jit, static_argnames=("wavelet", "levels", "axes", "inverse"))
def _transform(x, wavelet, levels, axes, inverse):
    """``levels`` levels of the packed transform over ``axes``, or its inverse.

    Level ``l`` transforms the leading corner of the input shape halved ``l`` times along
    ``axes``; the inverse undoes the levels from the coarsest. Compiled as one function, so
    applying an operator outside ``jit`` compiles once rather than primitive by primitive.
    """
    analysis, analysis_pads, synthesis, synthesis_pads = _polyphase_kernels(wavelet)
    origin = (0,) * x.ndim
    corners = [
        tuple(n >> level if a in axes else n for a, n in enumerate(x.shape))
        for level in range(levels)
    ]
    for corner in reversed(corners) if inverse else corners:
        block = lax.slice(x, origin, corner)
        for axis in reversed(axes) if inverse else axes:
            if inverse:
                block = _filter_bank(block, axis, synthesis, synthesis_pads, analysis=False)
            else:
                block = _filter_bank(block, axis, analysis, analysis_pads, analysis=True)
        x = lax.dynamic_update_slice(x, block, origin)
    return x


class Wavelet(LinearOperator):
    """Orthonormal discrete wavelet transform with periodic boundaries, over ``axes``.

    The coefficients are PyWavelets' ``wavedecn(x, wavelet, mode="periodization",
    level=levels, axes=axes)``, packed into one array of the input's shape as
    ``pywt.coeffs_to_array(..., padding=0, axes=axes)`` does: each level writes
    ``[approximation, detail]`` along every transformed axis into the current block, and the
    next level transforms the block's leading corner (the approximation). So with
    ``levels=L`` the corner ``y[:n0 / 2^L, :n1 / 2^L, ...]`` is the coarse approximation and
    the rest are the details. ``W.H`` is the inverse: ``W.H(W(x)) = x`` and
    ``||W x|| = ||x||``. ``L1() @ Wavelet(shape)`` is wavelet sparsity.

    Args:
        input_shape: shape of ``x``; each transformed axis a multiple of ``2**levels``.
        wavelet: ``"haar"`` or ``"db1"`` ... ``"db8"`` (Daubechies, ``dbN`` with ``2N`` taps;
            haar is db1).
        levels: decomposition levels (at least 1).
        axes: transformed axes; ``None`` means all axes.
        input_dtype: pins the dtype of ``x``; by default it follows the data (real or
            complex of the working precision, the coefficients of the same dtype).

    Example:
        >>> import jax.numpy as jnp, calcil as cc
        >>> W = cc.operators.Wavelet((4,), "haar", levels=2)
        >>> W(jnp.array([1.0, 1.0, 2.0, 4.0])).round(4).tolist()   # [cA2, cD2, cD1]
        [4.0, -2.0, 0.0, -1.414...]
        >>> W.H(W(jnp.array([1.0, 1.0, 2.0, 4.0]))).round(4).tolist()
        [1.0, 1.0, 2.0, 4.0]
    """

    wavelet: str = static_field()
    levels: int = static_field()
    axes: tuple[int, ...] = static_field()

    def __init__(self, input_shape, wavelet="db2", levels=3, axes=None, input_dtype=None):
        shape = as_ints(input_shape, "Wavelet input_shape")
        if not isinstance(wavelet, str) or wavelet not in _DEC_LO:
            raise ValueError(
                f"Wavelet wavelet={wavelet!r} is not known: choose one of {', '.join(FAMILIES)}"
            )
        self.wavelet = wavelet
        self.levels = as_count("Wavelet levels", levels, 1, "an integer >= 1")
        self.axes = normalize_axes(axes, len(shape))
        _check_divisible(shape, self.axes, self.levels)
        dtype = default_real() if input_dtype is None else input_dtype
        super().__init__(shape, dtype, shape, dtype, follows_dtype=input_dtype is None)

    def forward(self, x):
        return _transform(x, self.wavelet, self.levels, self.axes, inverse=False)

    def adjoint(self, y):
        return _transform(y, self.wavelet, self.levels, self.axes, inverse=True)

    @property
    def gram(self):
        """``W^H W = I`` (orthonormal)."""
        return Identity(self.input_shape, None if self.follows_dtype else self.input_dtype)

    def unitary_factorization(self, dtype=None):
        """``U = W``, ``B = I``: the transform is unitary."""
        dtype = self.input_dtype if dtype is None else self._accepted_dtype(dtype)
        if dtype is None:
            return None
        return UnitaryFactorization(self, Identity(self.input_shape, dtype))


def _check_divisible(shape, axes, levels):
    """Each transformed axis must halve ``levels`` times: a positive multiple of 2**levels."""
    step = 2**levels
    sizes = [shape[a] for a in axes]
    if all(n > 0 and n % step == 0 for n in sizes):
        return
    # The largest number of levels every transformed axis allows (2-adic valuation).
    most = min(((n & -n).bit_length() - 1 if n > 0 else 0) for n in sizes)
    needed = tuple(
        max(step, math.ceil(n / step) * step) if a in axes else n for a, n in enumerate(shape)
    )
    advice = f"use levels <= {most}, or" if most >= 1 else "no level fits (an odd length):"
    raise ValueError(
        f"Wavelet with levels={levels} needs every transformed axis length to be a positive "
        f"multiple of 2**{levels} = {step}; input_shape {shape} has lengths {tuple(sizes)} on "
        f"axes {axes}: {advice} pad the input to a shape such as {needed} (cc.operators.Pad)."
    )

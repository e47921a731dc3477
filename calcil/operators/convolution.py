"""FFT-based convolution with a fixed (or traced) kernel."""

import math

import jax
import jax.numpy as jnp
import numpy as np

from calcil._internal.dtypes import inexact_or_default, is_complex
from calcil._internal.integers import as_ints
from calcil._internal.shapes import normalize_axes, sum_to_shape
from calcil._internal.struct import static_field
from calcil.operators.base import LinearOperator, UnitaryFactorization

__all__ = ["Convolve"]

MODES = ("circular", "full", "same", "valid")


def next_fast_len(n: int) -> int:
    """The smallest ``2^a 3^b 5^c >= n``: a size the FFT handles fast."""
    best = 1 << max(n - 1, 0).bit_length()
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            p = p35
            while p < n:
                p *= 2
            best = min(best, p)
            p35 *= 3
        p5 *= 5
    return best


def _check_kernel(kernel):
    """An empty PSF is an error: a zero-size axis always, all zeros when the values are known.

    A traced kernel (blind deconvolution builds the operator from the unknown PSF) is not
    inspected.
    """
    shape = np.shape(kernel)
    if 0 in shape:
        raise ValueError(
            f"Convolve kernel of shape {shape} is empty (a zero-size axis): give a PSF with at "
            "least one sample along every axis."
        )
    if isinstance(kernel, jax.core.Tracer):
        return
    values = kernel if isinstance(kernel, jax.Array) else np.asarray(kernel)
    with jax.ensure_compile_time_eval():  # a concrete kernel inside a jit trace stays concrete
        nonzero = bool((values != 0).any())
    if not nonzero:
        raise ValueError(
            f"Convolve kernel of shape {shape} is all zeros, so every output would be zero: "
            "check how the PSF was computed (a crop that missed the peak, a normalisation by "
            "a zero sum); a delta at kernel.shape // 2 is the identity."
        )


def _kernel_on_input_axes(kernel, ndim, axes):
    """Reshape ``kernel`` so its dimensions sit on ``axes`` of an ``ndim``-d input."""
    if kernel.ndim == ndim:
        return kernel
    if kernel.ndim != len(axes):
        raise ValueError(
            f"Convolve kernel has {kernel.ndim} dimensions but convolves over {len(axes)} "
            f"axes {axes} of a {ndim}-d input: give a kernel with {len(axes)} or {ndim} "
            "dimensions, or set axes."
        )
    full = kernel.reshape(kernel.shape + (1,) * (ndim - kernel.ndim))
    return jnp.moveaxis(full, tuple(range(kernel.ndim)), axes)


class Convolve(LinearOperator):
    """Convolution ``y = k * x`` over ``axes``, computed with FFTs.

    ``mode="circular"``: periodic convolution ``y[n] = sum_m k[m] x[n - m + c]`` with the PSF
    centre ``c = kernel.shape // 2``; a kernel smaller than the input is zero-padded around
    that centre, so a delta at the centre is the identity. ``"full"``, ``"same"`` and
    ``"valid"`` are exactly ``scipy.signal.fftconvolve(x, kernel, mode)`` along ``axes``.

    The kernel spectrum is computed once, at construction, and is a pytree leaf: build the
    operator inside a forward model to differentiate through the kernel (blind deconvolution).
    Real kernels on real inputs use ``rfftn``; the adjoint is the correlation with the kernel,
    ``ifft(conj(K) fft(y))``. An empty kernel (a zero-size axis, or all zeros when its values
    are concrete) is a ``ValueError``.

    Dtypes: a real kernel without ``input_dtype`` follows the data: real input gives real
    output, complex input (of the kernel's precision) complex output, convolving the real and
    imaginary parts separately. A complex kernel takes complex input (a real one is promoted).

    Args:
        kernel: the PSF; ``len(axes)`` dimensions (broadcast over the other axes) or as many
            dimensions as the input (its other axes broadcast against the input's).
        input_shape: shape of ``x``, including leading batch axes.
        axes: convolved axes; default the last ``kernel.ndim`` axes.
        mode: ``"circular"``, ``"full"``, ``"same"`` or ``"valid"``.
        input_dtype: pins the dtype of ``x``; by default the kernel's precision, following
            the data for a real kernel.

    Example:
        >>> import jax.numpy as jnp, calcil as cc
        >>> psf = jnp.zeros((3, 3)).at[1, 1].set(1.0)       # a centred delta
        >>> A = cc.operators.Convolve(psf, (8, 8))
        >>> x = jnp.arange(64.0).reshape(8, 8)
        >>> bool(jnp.allclose(A(x), x))
        True
    """

    spectrum: jax.Array
    axes: tuple[int, ...] = static_field()
    mode: str = static_field()
    kernel_shape: tuple[int, ...] = static_field()
    fft_shape: tuple[int, ...] = static_field()
    out_start: tuple[int, ...] = static_field()
    out_sizes: tuple[int, ...] = static_field()
    real: bool = static_field()

    def __init__(self, kernel, input_shape, axes=None, mode="circular", input_dtype=None):
        if mode not in MODES:
            raise ValueError(f"Convolve mode must be one of {MODES}, got {mode!r}")
        _check_kernel(kernel)
        kernel = jnp.asarray(kernel)
        input_shape = as_ints(input_shape, "Convolve input_shape")
        ndim = len(input_shape)
        if axes is None:
            if kernel.ndim > ndim:
                raise ValueError(
                    f"Convolve kernel of shape {kernel.shape} has more dimensions than the "
                    f"input shape {input_shape}"
                )
            axes = tuple(range(ndim - kernel.ndim, ndim))
        axes = normalize_axes(axes, ndim)
        kernel = _kernel_on_input_axes(kernel, ndim, axes)
        for a in range(ndim):
            if (
                a not in axes
                and 1 not in (kernel.shape[a], input_shape[a])
                and kernel.shape[a] != input_shape[a]
            ):
                raise ValueError(
                    f"Convolve kernel of shape {kernel.shape} does not broadcast with input "
                    f"shape {input_shape} along the non-convolved axis {a}"
                )
        sizes = tuple(input_shape[a] for a in axes)
        ksizes = tuple(kernel.shape[a] for a in axes)
        if mode == "circular" and any(k > n for k, n in zip(ksizes, sizes, strict=True)):
            raise ValueError(
                f"circular Convolve needs a kernel no larger than the input along {axes}: "
                f"kernel {ksizes}, input {sizes}. Crop the PSF or use mode='full'/'same'."
            )
        if mode == "valid" and any(k > n for k, n in zip(ksizes, sizes, strict=True)):
            raise ValueError(
                f"valid Convolve needs the input at least as large as the kernel along {axes}:"
                f" kernel {ksizes}, input {sizes}"
            )
        follows = input_dtype is None and not is_complex(kernel.dtype)
        if input_dtype is None:
            input_dtype = inexact_or_default(kernel.dtype)
        input_dtype = jnp.dtype(input_dtype)

        self.axes, self.mode, self.kernel_shape = axes, mode, ksizes
        self.real = not (is_complex(kernel.dtype) or is_complex(input_dtype))
        if mode == "circular":
            self.fft_shape = sizes
            self.out_start, self.out_sizes = (0,) * len(axes), sizes
            widths = [(0, 0)] * ndim
            for a, k, n in zip(axes, ksizes, sizes, strict=True):
                widths[a] = (0, n - k)
            kernel = jnp.roll(jnp.pad(kernel, widths), [-(k // 2) for k in ksizes], axes)
        else:
            full = tuple(n + k - 1 for n, k in zip(sizes, ksizes, strict=True))
            self.fft_shape = tuple(next_fast_len(n) for n in full)
            self.out_start, self.out_sizes = {
                "full": ((0,) * len(axes), full),
                "same": (tuple((k - 1) // 2 for k in ksizes), sizes),
                "valid": (
                    tuple(k - 1 for k in ksizes),
                    tuple(n - k + 1 for n, k in zip(sizes, ksizes, strict=True)),
                ),
            }[mode]
        if not self.real:
            kernel = kernel.astype(jnp.promote_types(kernel.dtype, jnp.complex64))
        self.spectrum = self._fft(kernel)
        super().__init__(input_shape, input_dtype, follows_dtype=follows)

    # ------------------------------------------------------------------ helpers
    def _fft(self, x):
        fn = jnp.fft.rfftn if self.real else jnp.fft.fftn
        return fn(x, s=self.fft_shape, axes=self.axes)

    def _ifft(self, x):
        fn = jnp.fft.irfftn if self.real else jnp.fft.ifftn
        return fn(x, s=self.fft_shape, axes=self.axes)

    def _by_parts(self, fn, x):
        """``fn`` on complex ``x`` with a real kernel: real and imaginary parts separately."""
        if not (self.real and is_complex(x.dtype)):
            return fn(x)
        parts = jax.vmap(fn)(jnp.stack([x.real, x.imag]))
        return jax.lax.complex(parts[0], parts[1])

    def forward(self, x):
        return self._by_parts(self._forward, x)

    def adjoint(self, y):
        return self._by_parts(self._adjoint, y)

    def _forward(self, x):
        y = self._ifft(self.spectrum * self._fft(x))
        for a, s, n in zip(self.axes, self.out_start, self.out_sizes, strict=True):
            if n != y.shape[a]:
                y = jax.lax.slice_in_dim(y, s, s + n, axis=a)
        return y

    def _adjoint(self, y):
        if self.mode != "circular":
            widths = [(0, 0)] * y.ndim
            for a, s, L in zip(self.axes, self.out_start, self.fft_shape, strict=True):
                widths[a] = (s, L - s - y.shape[a])
            y = jnp.pad(y, widths)
        x = self._ifft(jnp.conj(self.spectrum) * self._fft(y))
        for a in self.axes:
            if x.shape[a] != self.input_shape[a]:
                x = jax.lax.slice_in_dim(x, 0, self.input_shape[a], axis=a)
        return sum_to_shape(x, self.input_shape)

    @property
    def gram(self):
        """``A^H A``; for circular mode a circular Convolve with spectrum ``|K|^2``."""
        square = self.output_shape == self.input_shape and self.output_dtype == self.input_dtype
        if self.mode != "circular" or not square:
            return super().gram
        spectrum = jnp.abs(self.spectrum) ** 2
        treedef = jax.tree_util.tree_structure(self)
        return jax.tree_util.tree_unflatten(treedef, [spectrum.astype(self.spectrum.dtype)])

    def unitary_factorization(self, dtype=None):
        """Circular mode: ``A = F^{-1} K F = U @ (K_w F_w)`` (Parseval), else ``None``.

        ``F_w`` is the DFT over ``axes`` scaled to be unitary and ``U`` the adjoint of that
        analysis transform. For real data (``dtype`` real) the half spectrum of ``rfftn`` is
        weighted so that its norm is the full spectrum's; complex data of a real kernel goes
        through the full DFT, with the kernel's full spectrum.
        """
        if self.mode != "circular" or self.output_shape != self.input_shape:
            return None
        dtype = self.input_dtype if dtype is None else self._accepted_dtype(dtype)
        if dtype is None:
            return None
        half = self.real and not is_complex(dtype)
        spectrum = self.spectrum
        if self.real and not half:
            spectrum = _hermitian_full(spectrum, self.fft_shape, self.axes)
        weights = _parseval_weights(self.fft_shape, half, self.spectrum.ndim, self.axes)
        weights = weights.astype(jnp.finfo(spectrum.dtype).dtype)
        follows = self.follows_dtype and half
        b = _WeightedSpectrum(weights * spectrum, self, half, None if follows else dtype)
        out = None if follows else self.result_dtype(dtype)
        analysis = _WeightedSpectrum(weights, self, half, out)
        return UnitaryFactorization(analysis.H, b)

    def _repr_fields(self):
        return {"kernel_shape": self.kernel_shape, "mode": self.mode, "axes": self.axes}


def _parseval_weights(fft_shape, real, ndim, axes):
    """``s`` with ``sum |x|^2 = sum |s X|^2`` for ``X`` the (r)fftn of ``x`` over ``axes``.

    Full spectrum: ``s = 1/sqrt(N)``. Half spectrum (``rfftn``): the bins whose mirror image
    is not stored (all but 0 and ``L/2`` on the last axis) count twice.
    """
    n = math.prod(fft_shape)
    if not real:
        return jnp.full((), 1 / math.sqrt(n))
    length = fft_shape[-1]
    twice = np.full(length // 2 + 1, 2.0)
    twice[0] = 1.0
    if length % 2 == 0:
        twice[-1] = 1.0
    shape = [1] * ndim
    shape[axes[-1]] = twice.size
    return jnp.asarray(np.sqrt(twice / n).reshape(shape))


def _hermitian_full(half, fft_shape, axes):
    """The full spectrum over ``axes`` of a real array from its ``rfftn`` half ``half``.

    The bins ``k >= n // 2 + 1`` of the last axis are ``conj(X[-k])``, every other transformed
    index negated too (``X[-j] = conj(X[j])`` for real data).
    """
    last, n = axes[-1], fft_shape[-1]
    kept = half.shape[last]
    if kept == n:  # n <= 2: the half spectrum is the whole one
        return half
    upper = jnp.flip(jax.lax.slice_in_dim(half, 1, n - kept + 1, axis=last), last)
    for a in axes[:-1]:
        if upper.shape[a] > 1:
            upper = jnp.roll(jnp.flip(upper, a), 1, a)  # index j -> -j mod N
    return jnp.concatenate([half, jnp.conj(upper)], axis=last)


class _WeightedSpectrum(LinearOperator):
    """``x -> w * F x`` with ``F`` the DFT over a :class:`Convolve`'s axes and size: ``rfftn``
    (``half``, real data) or ``fftn``.

    The factor ``B`` (``w`` is the Parseval weight times the kernel spectrum) and the
    analysis transform ``U^H`` (``w`` the Parseval weight alone) of
    :meth:`Convolve.unitary_factorization`; its adjoint comes from autodiff.
    """

    weights: jax.Array
    axes: tuple[int, ...] = static_field()
    fft_shape: tuple[int, ...] = static_field()
    half: bool = static_field()

    def __init__(self, weights, conv: Convolve, half: bool, input_dtype=None):
        self.weights = weights
        self.axes, self.fft_shape, self.half = conv.axes, conv.fft_shape, half
        follows = input_dtype is None
        dtype = conv.input_dtype if follows else input_dtype
        super().__init__(conv.input_shape, dtype, follows_dtype=follows)

    def forward(self, x):
        fn = jnp.fft.rfftn if self.half else jnp.fft.fftn
        return self.weights * fn(x, s=self.fft_shape, axes=self.axes)

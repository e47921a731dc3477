"""The discrete Fourier transform as a linear operator."""

import math

import jax.numpy as jnp

from calcil._internal.dtypes import default_complex
from calcil._internal.shapes import normalize_axes
from calcil._internal.struct import static_field
from calcil.operators.base import Identity, LinearOperator, UnitaryFactorization
from calcil.operators.elementwise import Diagonal

__all__ = ["FFT", "multiplier_factorization"]

# The adjoint of fftn(norm=n) is ifftn with the norm that makes it the conjugate transpose.
_ADJOINT_NORM = {"ortho": "ortho", "backward": "forward", "forward": "backward"}


class FFT(LinearOperator):
    """N-d discrete Fourier transform ``y = fftn(x, axes=axes, norm=norm)``.

    ``X[k] = s * sum_n x[n] exp(-2 pi i k.n / N)`` with ``s = 1/sqrt(N)`` for ``norm="ortho"``
    (unitary: ``F^H = F^{-1}``), ``1`` for ``"backward"`` and ``1/N`` for ``"forward"``.
    ``centered=True`` puts the origin in the middle of both grids:
    ``fftshift(fftn(ifftshift(x)))`` over the same axes.

    Dtypes: the output is complex for any input, so an FFT built without ``input_dtype``
    works on the complex space: a real input is promoted, and ``F.H`` returns complex arrays.
    It does not follow the data (complex out would not tell the adjoint whether the input was
    real). Pin ``input_dtype=float32`` for the map on real inputs, whose adjoint returns the
    real part; composed with a dtype-following operator, an unpinned FFT makes the
    composition complex (``FFT(...) @ Crop(...)`` takes complex64).

    Args:
        input_shape: shape of ``x``.
        axes: axes to transform; ``None`` means all axes.
        norm: ``"ortho"`` (default), ``"backward"`` or ``"forward"``, as in ``numpy.fft``.
        centered: use the centred (fftshift) convention.
        input_dtype: dtype of ``x``; default complex64 (complex128 with x64).

    Example:
        >>> import jax.numpy as jnp, calcil as cc
        >>> F = cc.operators.FFT((4,))
        >>> F(jnp.ones(4)).round(3).tolist()
        [(2+0j), 0j, 0j, 0j]
    """

    axes: tuple[int, ...] = static_field()
    normalization: str = static_field()  # numpy's `norm`; `A.norm()` is the spectral norm
    centered: bool = static_field()

    def __init__(self, input_shape, axes=None, norm="ortho", centered=False, input_dtype=None):
        if norm not in _ADJOINT_NORM:
            raise ValueError(f"norm must be one of {sorted(_ADJOINT_NORM)}, got {norm!r}")
        self.axes = normalize_axes(axes, len(input_shape))
        self.normalization = norm
        self.centered = bool(centered)
        super().__init__(input_shape, default_complex() if input_dtype is None else input_dtype)

    def _transform(self, x, fn, norm):
        if self.centered:
            x = jnp.fft.ifftshift(x, axes=self.axes)
        x = fn(x, axes=self.axes, norm=norm)
        if self.centered:
            x = jnp.fft.fftshift(x, axes=self.axes)
        return x

    def forward(self, x):
        return self._transform(x, jnp.fft.fftn, self.normalization)

    def adjoint(self, y):
        return self._transform(y, jnp.fft.ifftn, _ADJOINT_NORM[self.normalization])

    @property
    def gram(self):
        """``F^H F = c^2 I``: the identity for ``norm="ortho"``, ``N I`` or ``I / N`` otherwise."""
        c = self._unitary_scale()
        eye = Identity(self.input_shape, self.input_dtype)
        return eye if c == 1 else c * c * eye

    def unitary_factorization(self, dtype=None):
        """``F = U @ (c I)`` with ``U`` the unitary DFT (``F`` itself for ``norm="ortho"``).

        On real inputs (``input_dtype`` pinned real) ``F`` is not onto its complex output
        space, so it has no such factorization.
        """
        if not jnp.issubdtype(self.input_dtype, jnp.complexfloating):
            return None
        c = self._unitary_scale()
        eye = Identity(self.input_shape, self.input_dtype)
        if c == 1:
            return UnitaryFactorization(self, eye)
        unitary = FFT(self.input_shape, self.axes, "ortho", self.centered, self.input_dtype)
        return UnitaryFactorization(unitary, c * eye)

    def _unitary_scale(self) -> float:
        """``c`` in ``F = c U`` with ``U`` unitary."""
        n = math.prod(self.input_shape[a] for a in self.axes)
        return {"ortho": 1.0, "backward": math.sqrt(n), "forward": 1 / math.sqrt(n)}[
            self.normalization
        ]


def multiplier_factorization(transfer, input_shape, axes, input_dtype) -> UnitaryFactorization:
    """The factorization ``U @ B`` of the Fourier multiplier ``x -> ifftn(H * fftn(x))``.

    ``U = F^H`` and ``B = Diagonal(H) @ F`` with ``F`` the unitary DFT over ``axes``: one FFT
    per application of ``B`` instead of two. ``H`` (``transfer``) may broadcast the input to
    a stack (one transfer function per distance), and ``U`` then acts on every member.

    Args:
        transfer: the multiplier ``H`` on the unshifted DFT grid (complex).
        input_shape: shape of ``x``.
        axes: the transformed axes, negative (counted from the end), so that they name the
            same axes of the input and of a stacked output.
        input_dtype: the dtype of ``x`` (a real one is mapped to complex spectra).
    """
    spectral = jnp.promote_types(transfer.dtype, jnp.complex64)
    analysis = FFT(input_shape, axes, input_dtype=input_dtype)
    weighted = Diagonal(transfer, analysis.output_shape, input_dtype=spectral)
    synthesis = FFT(weighted.output_shape, axes, input_dtype=spectral).H
    return UnitaryFactorization(synthesis, weighted @ analysis)

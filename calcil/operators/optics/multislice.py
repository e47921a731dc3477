"""Multi-slice (beam propagation) through a 3D refractive-index contrast volume."""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from calcil._internal.dtypes import complex_dtype_of, default_real
from calcil._internal.struct import static_field
from calcil.operators._checks import field_shape, positive
from calcil.operators.base import Operator
from calcil.operators.optics._transfer import _angular_spectrum_transfer, _as_leaf, _dtypes
from calcil.operators.optics.propagation import AngularSpectrum

__all__ = ["MultiSlice"]


def _remat(remat):
    if isinstance(remat, bool):
        return remat
    if isinstance(remat, int | np.integer) and remat >= 1:
        return int(remat)
    raise ValueError(
        f"MultiSlice remat must be True, False or a segment length (a positive integer, e.g. "
        f"int(sqrt(nz))), got {remat!r}"
    )


class MultiSlice(Operator):
    """Nonlinear beam propagation through a refractive-index contrast volume, slice by slice.

    Maps a contrast volume ``dn[z, y, x] = n(r) - n_medium`` to the exit field. Starting from
    the illumination ``u_0``, each slice ``k = 0 .. nz-1`` multiplies the field by its thin
    transmittance and then propagates it by ``dz`` with the angular spectrum:

        ``u_{k+1} = P_dz( u_k * exp(i 2 pi / wl * dz * dn_k) )``

    with ``P_dz`` :class:`AngularSpectrum`'s transfer function in the medium ``n_medium``
    (evanescent waves dropped; Matsushima band limit when ``bandlimit``). The output is
    ``u_nz``, the field at the back face of the volume (``z = nz dz`` after the entrance plane).
    Compose with an :class:`AngularSpectrum` to refocus it elsewhere (e.g. by ``-nz dz / 2`` to
    the volume centre).

    Convention: fields are envelopes relative to the background plane wave
    ``exp(i 2 pi n_medium z / wl)``, i.e. ``P_dz`` omits that constant phase. An empty volume
    returns the illumination (propagated by ``nz dz``), and a homogeneous slab of contrast
    ``dn`` and thickness ``L = nz dz`` adds the phase ``2 pi dn L / wl``. ``dn`` may be
    complex: ``Im dn > 0`` absorbs (amplitude ``exp(-2 pi Im(dn) dz / wl)`` per slice).

    Illumination: ``None`` is a unit plane wave along z. Any field of shape ``(ny, nx)`` may be
    given (a tilted plane wave ``exp(i 2 pi (fx x + fy y))`` for tomography, a probe for
    ptychography), or a batch ``(b, ny, nx)``: the output then has shape ``(b, ny, nx)``.
    Equivalently, ``jax.vmap`` over a function that builds the operator with one illumination.
    The illumination is a pytree leaf, so it can be estimated too.

    Memory of reverse-mode gradients (the slices run in a ``lax.scan``; ``F`` is one complex
    field, 2x a float32 slice):

    * ``remat=False``: two stacks of ``nz`` fields (each slice's input and its phase screen),
      ``2 nz F`` (4x the float32 volume).
    * ``remat=True`` (default): each slice under ``jax.checkpoint``; only the slice inputs are
      kept, ``nz F``, and the backward pass recomputes the phase screen (no extra FFTs). Half
      the memory and, measured at 128^3 and 256^3 on CPU, 4-20% faster than ``False``.
    * ``remat=s`` (an integer): segments of ``s`` slices under a second ``jax.checkpoint``;
      only the segment inputs are kept and a segment's slice inputs are recomputed during its
      backward pass: about ``(nz / s + 2 s) F``, which grows as ``sqrt(nz)`` for
      ``s ~ sqrt(nz / 2)`` (measured at ``nz = 256``, ``s = 8``: ``52 F`` against ``260 F``
      for ``True`` and ``515 F`` for ``False``), for one extra forward pass.

    Args:
        input_shape: ``(nz, ny, nx)``.
        dx: lateral pixel size (same unit as ``wavelength``).
        dz: slice thickness (same unit).
        wavelength: vacuum wavelength.
        n_medium: refractive index of the background medium.
        illumination: incident field ``(ny, nx)`` or ``(b, ny, nx)``; default a unit plane wave.
        bandlimit: Matsushima band limit of the slice propagator.
        remat: ``True`` (default), ``False`` or a segment length in slices (see Memory).
        input_dtype: float32 (default; float64 with x64) for a real contrast, complex64 or
            complex128 for an absorbing one.

    Reference:
        J. M. Cowley and A. F. Moodie, "The scattering of electrons by atoms and crystals,"
        Acta Cryst. 10, 609 (1957); L. Tian and L. Waller, "3D intensity and phase imaging
        from light field measurements in an LED array microscope," Optica 2, 104 (2015).

    Example:
        >>> import jax.numpy as jnp, calcil as cc
        >>> M = cc.operators.MultiSlice((10, 32, 32), dx=0.2, dz=0.5, wavelength=0.5)
        >>> u = M(jnp.full((10, 32, 32), 0.01))     # a slab: dn = 0.01, L = 5
        >>> round(float(jnp.angle(u[0, 0])), 4)      # 2 pi dn L / wl = 0.2 pi
        0.6283
    """

    transfer: jax.Array
    illumination: jax.Array
    dx: float = static_field()
    dz: float = static_field()
    wavelength: float = static_field()
    n_medium: float = static_field()
    bandlimit: bool = static_field()
    remat: bool | int = static_field()

    def __init__(
        self,
        input_shape,
        dx,
        dz,
        wavelength,
        n_medium=1.0,
        illumination=None,
        bandlimit=True,
        remat=True,
        input_dtype=None,
    ):
        shape = field_shape(input_shape, "MultiSlice", min_ndim=3)
        if len(shape) != 3:
            raise ValueError(
                f"MultiSlice needs input_shape (nz, ny, nx), got {shape}: batch volumes with "
                "jax.vmap."
            )
        self.dx = positive("dx", dx)
        self.dz = positive("dz", dz)
        self.wavelength = positive("wavelength", wavelength, "same unit as dx")
        self.n_medium = positive("n_medium", n_medium, "a refractive index")
        self.bandlimit, self.remat = bool(bandlimit), _remat(remat)
        dtype, cdtype = _dtypes(input_dtype, default_real())
        if illumination is None:
            illumination = jnp.ones(shape[1:], cdtype)
        illumination = jnp.asarray(illumination)
        if illumination.ndim not in (2, 3) or illumination.shape[-2:] != shape[1:]:
            raise ValueError(
                f"MultiSlice illumination must have shape {shape[1:]} or (b, *{shape[1:]}) to "
                f"match the volume {shape}, got {illumination.shape}"
            )
        self.illumination = illumination.astype(cdtype)
        transfer = _angular_spectrum_transfer(
            np.float64(self.dz),
            shape[1:],
            self.dx,
            self.wavelength,
            self.n_medium,
            self.bandlimit,
            background=False,
        )
        self.transfer = _as_leaf(transfer, cdtype)
        super().__init__(shape, dtype)

    def forward(self, dn):
        cdtype = complex_dtype_of(dn.dtype)
        k0dz = 2 * np.pi * self.dz / self.wavelength
        transfer = self.transfer.astype(cdtype)

        def slice_step(u, dn_k):
            u = u * jnp.exp(1j * k0dz * dn_k)
            return jnp.fft.ifft2(jnp.fft.fft2(u) * transfer), None

        u = self.illumination.astype(cdtype)
        if self.remat is False:
            return jax.lax.scan(slice_step, u, dn)[0]
        slice_step = jax.checkpoint(slice_step, prevent_cse=False)
        length = self.remat
        if length is True or length == 1 or length >= dn.shape[0]:
            return jax.lax.scan(slice_step, u, dn)[0]

        @functools.partial(jax.checkpoint, prevent_cse=False)
        def segment(u, dn_segment):
            return jax.lax.scan(slice_step, u, dn_segment)[0], None

        n_segments, rest = divmod(dn.shape[0], length)
        head = dn[: n_segments * length].reshape(n_segments, length, *dn.shape[1:])
        u = jax.lax.scan(segment, u, head)[0]
        return jax.lax.scan(slice_step, u, dn[n_segments * length :])[0] if rest else u

    def slice_propagator(self) -> AngularSpectrum:
        """The :class:`AngularSpectrum` operator over one slice (``dz``), with the background."""
        return AngularSpectrum(
            self.input_shape[1:], self.dx, self.wavelength, self.dz, self.n_medium, self.bandlimit
        )

    def adequate_sampling(self, na=None) -> bool:
        """Whether the slice propagator's transfer function is adequately sampled (warns if not).

        See :meth:`AngularSpectrum.adequate_sampling`, with ``distance = dz``.
        """
        return self.slice_propagator().adequate_sampling(na)

    def _repr_fields(self):
        return {
            "dx": self.dx,
            "dz": self.dz,
            "wavelength": self.wavelength,
            "n_medium": self.n_medium,
            "illumination": self.illumination,
            "remat": self.remat,
        }

"""Multi-slice (beam propagation) through a 3D refractive-index contrast volume."""

import jax
import jax.numpy as jnp
import numpy as np

from calcil._struct import static_field
from calcil.operators._dtypes import complex_dtype_of, default_real
from calcil.operators.base import Operator
from calcil.operators.propagation import (
    AngularSpectrum,
    _angular_spectrum_transfer,
    _as_leaf,
    _dtypes,
    _field_shape,
    _positive,
)

__all__ = ["MultiSlice"]


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

    Memory: the slices run in a ``lax.scan``; reverse-mode gradients store one field per slice
    plus each slice's intermediates. ``remat=True`` wraps each slice in ``jax.checkpoint``, so
    only the fields between slices are kept (about the size of the volume itself) and the
    slice's FFTs are recomputed in the backward pass.

    Args:
        input_shape: ``(nz, ny, nx)``.
        dx: lateral pixel size (same unit as ``wavelength``).
        dz: slice thickness (same unit).
        wavelength: vacuum wavelength.
        n_medium: refractive index of the background medium.
        illumination: incident field ``(ny, nx)`` or ``(b, ny, nx)``; default a unit plane wave.
        bandlimit: Matsushima band limit of the slice propagator.
        remat: rematerialise each slice in the backward pass (``jax.checkpoint``).
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
    remat: bool = static_field()

    def __init__(
        self,
        input_shape,
        dx,
        dz,
        wavelength,
        n_medium=1.0,
        illumination=None,
        bandlimit=True,
        remat=False,
        input_dtype=None,
    ):
        shape = _field_shape(input_shape, "MultiSlice", min_ndim=3)
        if len(shape) != 3:
            raise ValueError(
                f"MultiSlice needs input_shape (nz, ny, nx), got {shape}: batch volumes with "
                "jax.vmap."
            )
        self.dx = _positive("dx", dx)
        self.dz = _positive("dz", dz)
        self.wavelength = _positive("wavelength", wavelength, "same unit as dx")
        self.n_medium = _positive("n_medium", n_medium, "a refractive index")
        self.bandlimit, self.remat = bool(bandlimit), bool(remat)
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

        if self.remat:
            slice_step = jax.checkpoint(slice_step, prevent_cse=False)
        u, _ = jax.lax.scan(slice_step, self.illumination.astype(cdtype), dn)
        return u

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

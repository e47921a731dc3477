"""Cone-beam X-ray transform: circular source trajectory, flat detector.

Geometry (all lengths in the unit of ``dx``): voxel centres ``(x_j, y_i, z_k)`` with
``x_j = (j - (nx - 1) / 2) dx`` on the last axis, ``y_i``, ``z_k`` likewise; rotation about
``z``, with ``e_u``, ``e_r`` as in :mod:`calcil.operators.tomography.parallel` and
``e_z = (0, 0, 1)``.

* At angle ``theta`` the source is at ``-source_distance e_r(theta)`` (in the plane
  ``z = 0``) and the detector centre at ``+detector_distance e_r(theta)``.
* Detector pixel ``(r, k)`` is at that centre ``+ u_k e_u + v_r e_z`` with
  ``u_k = (k - (cols - 1) / 2) spacing_u`` and ``v_r = (r - (rows - 1) / 2) spacing_v``;
  ``detector_shape = (rows, cols)`` and ``detector_spacing = (spacing_v, spacing_u)``.
* ``proj[a, r, k]`` is the integral of the volume along the segment from the source to
  pixel ``(r, k)``'s centre.
"""

import jax
import numpy as np

from calcil._internal.dtypes import default_real
from calcil._internal.integers import as_ints
from calcil._internal.struct import static_field
from calcil.operators.base import LinearOperator
from calcil.operators.tomography import _geometry as geo
from calcil.operators.tomography._beams import ConeBeam
from calcil.operators.tomography._joseph import default_chunk
from calcil.operators.tomography._primitive import project

__all__ = ["ConeBeamProjection"]

_OWNER = "ConeBeamProjection"


class ConeBeamProjection(LinearOperator):
    """Circular cone-beam projection: ``(nz, ny, nx) -> (n_angles, rows, cols)``.

    ``proj[a, r, k] = integral_0^L f(s_a + t d_ark) dt`` with source ``s_a = -D_s e_r``,
    pixel ``p_ark = D_d e_r + u_k e_u + v_r e_z``, ``L = |p_ark - s_a|`` and
    ``d_ark = (p_ark - s_a) / L``; values are line integrals in the unit of ``dx``.
    Discretised by Joseph's method in 3D (P. M. Joseph, IEEE TMI 1(3), 1982): each ray is
    sampled on the planes of voxel centres across the in-plane axis it is most aligned with
    and interpolated bilinearly in the other two axes; the adjoint is the exact adjoint of
    that discretisation. Cone half-angles must stay below 45 degrees (they are a few degrees
    in practice). Circular trajectories sample the volume incompletely away from ``z = 0``
    (Tuy's condition); reconstruct with a solver and a prior.

    ``angles``, ``source_distance`` and ``detector_distance`` are leaves.

    Args:
        input_shape: ``(nz, ny, nx)``.
        angles: 1-D source angles in radians.
        source_distance: source to rotation axis; must exceed the volume's in-plane
            half-diagonal.
        detector_distance: rotation axis to detector (``>= 0``).
        detector_shape: ``(rows, cols)``.
        detector_spacing: ``(spacing_v, spacing_u)``, or one number for square pixels.
        dx: voxel size.
        angle_chunk: angles projected together (default: one on CPU; on accelerators
            about 100 MB of temporaries).
        input_dtype: pins the input dtype; by default it follows the data.

    Example:
        >>> import jax.numpy as jnp, numpy as np, calcil as cc
        >>> angles = np.linspace(0, 2 * np.pi, 16, endpoint=False)
        >>> P = cc.operators.ConeBeamProjection((16, 32, 32), angles, source_distance=60.0,
        ...     detector_distance=30.0, detector_shape=(24, 48), detector_spacing=1.5)
        >>> P(jnp.ones((16, 32, 32))).shape
        (16, 24, 48)
        >>> cube = jnp.zeros((16, 32, 32)).at[6:10, 14:18, 14:18].set(1.0)
        >>> total = P(cube)[0].sum() * 1.5**2 / (90 / 60) ** 2  # magnified 90 / 60
        >>> bool(abs(total - 64) < 1)         # the cube's volume, 64 voxels
        True
    """

    angles: jax.Array
    source_distance: jax.Array
    detector_distance: jax.Array
    detector_shape: tuple[int, int] = static_field()
    detector_spacing: tuple[float, float] = static_field()
    dx: float = static_field()
    angle_chunk: int = static_field()

    def __init__(
        self,
        input_shape,
        angles,
        source_distance,
        detector_distance,
        detector_shape,
        detector_spacing,
        dx=1.0,
        angle_chunk=None,
        input_dtype=None,
    ):
        shape = geo.grid_shape(input_shape, _OWNER, (3,))
        self.angles = geo.angles_leaf(angles, _OWNER)
        self.dx = geo.spacing(dx, "dx", _OWNER)
        self.source_distance, self.detector_distance = geo.source_and_detector(
            source_distance, detector_distance, shape, self.dx, _OWNER
        )
        rows, cols = self._detector_shape(detector_shape)
        self.detector_shape = (rows, cols)
        spacing = (detector_spacing,) * 2 if np.ndim(detector_spacing) == 0 else detector_spacing
        if len(spacing) != 2:
            raise ValueError(
                f"{_OWNER} detector_spacing must be a number or (spacing_v, spacing_u), got "
                f"{detector_spacing!r}"
            )
        self.detector_spacing = tuple(
            geo.spacing(v, name, _OWNER)
            for v, name in zip(spacing, ("spacing_v", "spacing_u"), strict=True)
        )
        self._check_cone_angle()
        n_angles = self.angles.shape[0]
        self.angle_chunk = (
            default_chunk(n_angles, rows * cols * max(shape[1:]))
            if angle_chunk is None
            else geo.detector_size(angle_chunk, "angle_chunk", _OWNER)
        )
        dtype = default_real() if input_dtype is None else input_dtype
        out = (n_angles, rows, cols)
        super().__init__(shape, dtype, out, dtype, follows_dtype=input_dtype is None)

    @staticmethod
    def _detector_shape(detector_shape):
        try:
            items = as_ints(detector_shape, f"{_OWNER} detector_shape")
        except TypeError:
            items = ()
        if len(items) != 2:
            raise ValueError(
                f"{_OWNER} detector_shape must be (rows, cols), got {detector_shape!r}"
            )
        return tuple(
            geo.detector_size(n, name, _OWNER)
            for n, name in zip(items, ("rows", "cols"), strict=True)
        )

    def _check_cone_angle(self):
        if isinstance(self.source_distance, jax.core.Tracer) or isinstance(
            self.detector_distance, jax.core.Tracer
        ):
            return
        half_height = 0.5 * (self.detector_shape[0] - 1) * self.detector_spacing[0]
        span = float(self.source_distance) + float(self.detector_distance)
        if half_height >= span:
            raise ValueError(
                f"{_OWNER}: the detector's half-height {half_height:g} is not smaller than the "
                f"source-detector distance {span:g}, a cone half-angle of 45 degrees or more; "
                "move the detector further or use fewer rows."
            )

    def forward(self, x):
        beam = ConeBeam(
            self.input_shape, self.dx, self.detector_shape, self.detector_spacing, self.angle_chunk
        )
        return project(x, self.angles, self.source_distance, self.detector_distance, spec=beam)

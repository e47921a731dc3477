"""Parallel-beam X-ray transform (Radon transform) with filtered back-projection.

Geometry (all lengths in the unit of ``dx``):

* Pixel centres ``x_j = (j - (nx - 1) / 2) dx`` (last axis), ``y_i = (i - (ny - 1) / 2) dx``
  (the axis before), ``z_k`` likewise on the first axis of a volume.
* Angle ``theta`` (radians) sets the detector direction ``e_u = (cos theta, sin theta)`` and
  the ray direction ``e_r = (-sin theta, cos theta)`` in ``(x, y)``; at ``theta = 0`` the
  rays run along ``+y`` and the detector coordinate is ``x``.
* Detector pixel ``k`` sits at ``u_k = (k - (n_detector - 1) / 2) detector_spacing`` and
  measures ``sino[a, k] = integral f(u_k e_u(theta_a) + t e_r(theta_a)) dt``: the image holds
  attenuation per unit length, the sinogram line integrals (dimensionless).
* ``y`` grows with the row index (row 0 at ``-y``), whereas pictures and phantom tables
  (``calcil.phantoms``, scikit-image) put row 0 at the top, ``+y``. So scikit-image's
  ``radon(image, theta_degrees, circle=False)`` equals this projection at the angles
  ``-numpy.deg2rad(theta_degrees)``, up to its centre (pixel ``n // 2``, not
  ``(n - 1) / 2``: the same for odd ``n``).
"""

import math

import jax
import jax.numpy as jnp

from calcil._internal.dtypes import default_real
from calcil._internal.struct import static_field
from calcil.operators.base import LinearOperator
from calcil.operators.tomography import _geometry as geo
from calcil.operators.tomography._beams import ParallelBeam
from calcil.operators.tomography._fbp import back_project, filter_rows
from calcil.operators.tomography._joseph import default_chunk
from calcil.operators.tomography._primitive import project

__all__ = ["ParallelProjection"]

_OWNER = "ParallelProjection"


class ParallelProjection(LinearOperator):
    """Parallel-beam projection: 2D ``(ny, nx) -> (n_angles, n_detector)``; a 3D volume
    ``(nz, ny, nx) -> (n_angles, nz, n_detector)`` is projected slice by slice about ``z``.

    ``sino[a, k] = integral f(u_k e_u(theta_a) + t e_r(theta_a)) dt`` with
    ``e_u = (cos theta, sin theta)``, ``e_r = (-sin theta, cos theta)`` in ``(x, y)`` and pixel
    centres ``x_j = (j - (nx - 1) / 2) dx``; values are line integrals in the unit of ``dx``
    (image in attenuation per unit length). Discretised by Joseph's method (IEEE TMI 1(3),
    1982): along each ray, the image is interpolated linearly on every line of pixel centres
    across the axis the ray is most aligned with, and the samples are summed with the ray
    length between lines, ``dx / max(|cos theta|, |sin theta|)``. The adjoint is the exact
    adjoint of this projector (a matched back-projector, pixel-driven: as fast as the
    projection), and gradients through the operator use it.

    ``angles`` is a leaf: gradients with respect to it are defined (geometry refinement), and
    an operator built inside a forward model from a batch of angles projects just those (how
    ``run(..., devices=...)`` splits the angles of a sinogram over devices).

    Args:
        input_shape: ``(ny, nx)``, or ``(nz, ny, nx)`` for slice-by-slice projection.
        angles: 1-D projection angles in radians (any range; ``[0, pi)`` is a full set).
        dx: pixel size.
        n_detector: detector pixels; default ``ceil(sqrt(nx^2 + ny^2) dx / detector_spacing)``,
            which covers the image diagonal.
        detector_spacing: detector pixel pitch (default ``dx``).
        angle_chunk: angles projected together (default: one on CPU, where that is fastest;
            on accelerators as many as keep a chunk's temporaries near 100 MB); memory is
            the image, the sinogram and one chunk.
        input_dtype: pins the input dtype; by default it follows the data (real or complex of
            the working precision; complex images project their real and imaginary parts).

    Example:
        >>> import jax.numpy as jnp, numpy as np, calcil as cc
        >>> P = cc.operators.ParallelProjection((64, 64), np.linspace(0, np.pi, 90, False))
        >>> P.output_shape
        (90, 91)
        >>> square = jnp.zeros((64, 64)).at[16:48, 16:48].set(1.0)
        >>> float(P(square)[0].max())        # 32 pixels crossed at theta = 0
        32.0
        >>> x0 = P.fbp(P(square))            # filtered back-projection
        >>> bool(abs(x0[32, 32] - 1.0) < 0.05)
        True
    """

    angles: jax.Array
    dx: float = static_field()
    n_detector: int = static_field()
    detector_spacing: float = static_field()
    angle_chunk: int = static_field()

    def __init__(
        self,
        input_shape,
        angles,
        dx=1.0,
        n_detector=None,
        detector_spacing=None,
        angle_chunk=None,
        input_dtype=None,
    ):
        shape = geo.grid_shape(input_shape, _OWNER, (2, 3))
        self.angles = geo.angles_leaf(angles, _OWNER)
        self.dx = geo.spacing(dx, "dx", _OWNER)
        spacing = self.dx if detector_spacing is None else detector_spacing
        self.detector_spacing = geo.spacing(spacing, "detector_spacing", _OWNER)
        if n_detector is None:
            n_detector = math.ceil(2 * geo.half_diagonal(shape, self.dx) / self.detector_spacing)
        self.n_detector = geo.detector_size(n_detector, "n_detector", _OWNER)
        n_angles = self.angles.shape[0]
        per_angle = self.n_detector * max(shape[-2:]) * (shape[0] if len(shape) == 3 else 1)
        self.angle_chunk = (
            default_chunk(n_angles, per_angle)
            if angle_chunk is None
            else geo.detector_size(angle_chunk, "angle_chunk", _OWNER)
        )
        out = (n_angles, *shape[:-2], self.n_detector)
        dtype = default_real() if input_dtype is None else input_dtype
        super().__init__(shape, dtype, out, dtype, follows_dtype=input_dtype is None)

    # ------------------------------------------------------------------ projection
    def _beam(self) -> ParallelBeam:
        ny, nx = self.input_shape[-2:]
        return ParallelBeam(
            (ny, nx), self.dx, self.n_detector, self.detector_spacing, self.angle_chunk
        )

    def forward(self, x):
        image = jnp.moveaxis(x, 0, -1) if x.ndim == 3 else x  # slices last: (ny, nx, nz)
        sino = project(image, self.angles, spec=self._beam())
        return jnp.moveaxis(sino, -1, 1) if x.ndim == 3 else sino

    # ------------------------------------------------------------------ reconstruction
    def fbp(self, sinogram, filter="ramp"):
        """Filtered back-projection: a fast, approximate inverse for a full set of angles.

        ``f(x) = (pi / n_angles) sum_a q_a(x . e_u(theta_a))``, with ``q_a`` the projection
        at ``theta_a`` convolved along the detector with the band-limited ramp (frequency
        response ``|f|``, optionally windowed) and interpolated linearly at the pixel's
        detector coordinate. Exact in the limit of fine sampling for angles spread evenly
        over ``[0, pi)``; for sparse or limited angles it is the usual streaky first guess.
        The back-projection here is pixel-driven interpolation, the standard FBP choice, not
        the adjoint ``self.H`` (whose weights differ by the Joseph footprint).

        Args:
            sinogram: ``output_shape`` array (real or complex).
            filter: ``"ramp"``, ``"shepp-logan"``, ``"cosine"`` or ``"hann"``.

        Returns:
            An image of ``input_shape`` in attenuation per unit length.
        """
        sinogram = jnp.asarray(sinogram)
        if sinogram.shape != self.output_shape:
            raise ValueError(
                f"{_OWNER}.fbp expects a sinogram of shape {self.output_shape} (angles, "
                f"{'slices, ' if len(self.input_shape) == 3 else ''}detector), got "
                f"{sinogram.shape}"
            )
        q = filter_rows(sinogram, self.detector_spacing, filter, _OWNER)
        q = jnp.moveaxis(q, 1, -1) if q.ndim == 3 else q  # (angles, detector, *slices)

        def detector_coordinate(theta, x, y):
            return x * jnp.cos(theta) + y * jnp.sin(theta), jnp.ones((), x.dtype)

        image = back_project(
            q,
            self.angles,
            self.input_shape[-2:],
            self.dx,
            self.detector_spacing,
            detector_coordinate,
        )
        image = image * (math.pi / self.angles.shape[0])
        return jnp.moveaxis(image, -1, 0) if image.ndim == 3 else image

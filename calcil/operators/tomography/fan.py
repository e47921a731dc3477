"""Fan-beam X-ray transform with a flat detector, and its filtered back-projection.

Geometry (all lengths in the unit of ``dx``; pixel centres and ``e_u``, ``e_r`` as in
:mod:`calcil.operators.tomography.parallel`):

* At angle ``theta`` the source is at ``-source_distance e_r(theta)`` and the detector centre
  at ``+detector_distance e_r(theta)``; detector pixel ``k`` is at that centre
  ``+ u_k e_u(theta)``, ``u_k = (k - (n_detector - 1) / 2) detector_spacing``.
* ``sino[a, k]`` is the integral of the image along the segment from the source to pixel
  ``k``'s centre. The source must lie outside the object (``source_distance`` larger than
  the image's half-diagonal); a detector inside it sees only the part of each ray before it.
* The magnification at the rotation axis is ``(source_distance + detector_distance) /
  source_distance``; detector pixels of pitch ``dx`` times that cover the object's pixels.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np

from calcil._internal.dtypes import default_real, real_dtype_of
from calcil._internal.struct import static_field
from calcil.operators.base import LinearOperator
from calcil.operators.tomography import _geometry as geo
from calcil.operators.tomography._beams import FanBeam
from calcil.operators.tomography._fbp import back_project, filter_rows
from calcil.operators.tomography._joseph import default_chunk
from calcil.operators.tomography._primitive import project

__all__ = ["FanBeamProjection"]

_OWNER = "FanBeamProjection"


class FanBeamProjection(LinearOperator):
    """Fan-beam projection onto a flat detector: ``(ny, nx) -> (n_angles, n_detector)``.

    ``sino[a, k] = integral_0^L f(s_a + t d_ak) dt`` with source ``s_a = -D_s e_r(theta_a)``,
    pixel ``p_ak = D_d e_r(theta_a) + u_k e_u(theta_a)``, ``L = |p_ak - s_a|`` and
    ``d_ak = (p_ak - s_a) / L`` (``D_s`` = ``source_distance``, ``D_d`` =
    ``detector_distance``); values are line integrals in the unit of ``dx``. Discretised by
    Joseph's method (P. M. Joseph, IEEE TMI 1(3), 1982; see
    :class:`~calcil.operators.ParallelProjection`), with the exact adjoint of that
    discretisation.

    ``angles``, ``source_distance`` and ``detector_distance`` are leaves: gradients with
    respect to the geometry are defined.

    Args:
        input_shape: ``(ny, nx)``.
        angles: 1-D source angles in radians (a full turn is ``[0, 2 pi)``).
        source_distance: source to rotation axis; must exceed the image's half-diagonal.
        detector_distance: rotation axis to detector (``>= 0``).
        n_detector: detector pixels.
        detector_spacing: detector pixel pitch.
        dx: pixel size.
        angle_chunk: angles projected together (default: one on CPU; on accelerators
            about 100 MB of temporaries).
        input_dtype: pins the input dtype; by default it follows the data.

    Example:
        >>> import jax.numpy as jnp, numpy as np, calcil as cc
        >>> angles = np.linspace(0, 2 * np.pi, 120, endpoint=False)
        >>> P = cc.operators.FanBeamProjection((64, 64), angles, source_distance=100.0,
        ...     detector_distance=50.0, n_detector=128, detector_spacing=1.5)
        >>> r = jnp.hypot(*jnp.meshgrid(jnp.arange(64) - 31.5, jnp.arange(64) - 31.5))
        >>> disk = (r < 20).astype(jnp.float32)
        >>> sino = P(disk)
        >>> sino.shape
        (120, 128)
        >>> x0 = P.fbp(sino)                 # full-turn fan-beam FBP
        >>> bool(jnp.abs(x0 - disk)[r < 18].mean() < 0.05)
        True
    """

    angles: jax.Array
    source_distance: jax.Array
    detector_distance: jax.Array
    n_detector: int = static_field()
    detector_spacing: float = static_field()
    dx: float = static_field()
    angle_chunk: int = static_field()

    def __init__(
        self,
        input_shape,
        angles,
        source_distance,
        detector_distance,
        n_detector,
        detector_spacing,
        dx=1.0,
        angle_chunk=None,
        input_dtype=None,
    ):
        shape = geo.grid_shape(input_shape, _OWNER, (2,))
        self.angles = geo.angles_leaf(angles, _OWNER)
        self.dx = geo.spacing(dx, "dx", _OWNER)
        self.source_distance, self.detector_distance = geo.source_and_detector(
            source_distance, detector_distance, shape, self.dx, _OWNER
        )
        self.n_detector = geo.detector_size(n_detector, "n_detector", _OWNER)
        self.detector_spacing = geo.spacing(detector_spacing, "detector_spacing", _OWNER)
        n_angles = self.angles.shape[0]
        self.angle_chunk = (
            default_chunk(n_angles, self.n_detector * max(shape))
            if angle_chunk is None
            else geo.detector_size(angle_chunk, "angle_chunk", _OWNER)
        )
        dtype = default_real() if input_dtype is None else input_dtype
        out = (n_angles, self.n_detector)
        super().__init__(shape, dtype, out, dtype, follows_dtype=input_dtype is None)

    def forward(self, x):
        beam = FanBeam(
            self.input_shape, self.dx, self.n_detector, self.detector_spacing, self.angle_chunk
        )
        return project(x, self.angles, self.source_distance, self.detector_distance, spec=beam)

    def fbp(self, sinogram, filter="ramp"):
        """Fan-beam filtered back-projection for a full turn of evenly spaced angles.

        The equispaced (flat-detector) fan-beam formula (Kak & Slaney, "Principles of
        Computerized Tomographic Imaging", 1988, sec. 3.4.2): with ``s = u D_s / (D_s + D_d)``
        the detector coordinate scaled to the rotation axis, each projection is weighted by
        ``D_s / sqrt(D_s^2 + s^2)``, ramp-filtered in ``s`` (halved: a full turn sees every
        ray twice) and back-projected with weight ``1 / U^2``, ``U = (D_s + r . e_r) / D_s``,
        at ``s' = D_s (r . e_u) / (D_s + r . e_r)``, summed with ``2 pi / n_angles``.

        Short scans need Parker's redundancy weights, which are not implemented: angles that
        do not cover a full turn raise ``ValueError``.

        Args:
            sinogram: ``(n_angles, n_detector)`` array.
            filter: ``"ramp"``, ``"shepp-logan"``, ``"cosine"`` or ``"hann"``.
        """
        sinogram = jnp.asarray(sinogram)
        if sinogram.shape != self.output_shape:
            raise ValueError(
                f"{_OWNER}.fbp expects a sinogram of shape {self.output_shape} (angles, "
                f"detector), got {sinogram.shape}"
            )
        self._check_full_turn()
        real = real_dtype_of(sinogram.dtype)
        d_s = self.source_distance.astype(real)
        scale = d_s / (d_s + self.detector_distance.astype(real))
        s = geo.centred(self.n_detector, self.detector_spacing, real) * scale
        weighted = sinogram * (d_s / jnp.sqrt(d_s**2 + s**2))
        q = 0.5 * filter_rows(weighted, self.detector_spacing * scale, filter, _OWNER)

        def detector_coordinate(theta, x, y):
            c, s_ = jnp.cos(theta), jnp.sin(theta)
            depth = d_s + (-x * s_ + y * c)  # D_s + r . e_r
            return d_s * (x * c + y * s_) / depth, (d_s / depth) ** 2

        spacing = self.detector_spacing * scale
        image = back_project(
            q, self.angles, self.input_shape, self.dx, spacing, detector_coordinate
        )
        return image * (2 * math.pi / self.angles.shape[0])

    def _check_full_turn(self):
        if isinstance(self.angles, jax.core.Tracer):
            return
        angles = np.asarray(self.angles, dtype=np.float64)
        n = angles.size
        span = (angles.max() - angles.min()) * n / max(n - 1, 1)
        if n < 2 or span < 2 * math.pi * (1 - 1e-3):
            raise ValueError(
                f"{_OWNER}.fbp needs angles evenly covering a full turn [0, 2 pi); these span "
                f"{math.degrees(span):.1f} degrees. Short-scan fan-beam FBP (Parker weights) "
                "is not implemented: reconstruct with a solver, or rebin to parallel beam."
            )

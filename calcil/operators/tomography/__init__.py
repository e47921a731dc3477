"""X-ray transforms for computed tomography: parallel, fan and cone beam.

Every projection is a :class:`~calcil.operators.LinearOperator` with ``angles`` (and source
and detector distances) as array leaves, Joseph's ray-driven discretisation, and the exact
adjoint of that discretisation. Geometry conventions are stated in each module.
"""

from calcil.operators.tomography.cone import ConeBeamProjection
from calcil.operators.tomography.fan import FanBeamProjection
from calcil.operators.tomography.parallel import ParallelProjection

__all__ = ["ConeBeamProjection", "FanBeamProjection", "ParallelProjection"]

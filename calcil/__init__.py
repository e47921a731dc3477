"""calcil: computational imaging on JAX.

Write the physics of an imaging system as operator blocks (``calcil.operators``), add priors
(``calcil.priors``) and data terms (``calcil.losses``) in an ``Objective``, and let gradient
descent recover the unknowns. ``calcil.phantoms`` has test objects, ``calcil.viz`` plotly
viewers for 2D, 3D, 4D and complex data, and ``calcil.benchmark`` times any operator or
function on the current device.
"""

import sys as _sys

# viz imports plotly lazily, logs tensorboardX
from calcil import (
    benchmarking,
    logs,
    losses,
    metrics,
    noise,
    operators,
    phantoms,
    priors,
    testing,
    viz,
)
from calcil.benchmarking import benchmark
from calcil.objective import Objective
from calcil.solvers import (
    ADMM,
    PDHG,
    ConjugateGradient,
    GradientSolver,
    Group,
    ProximalGradient,
    Result,
)

__version__ = "0.1.0.dev0"

# ``calcil.logging`` is an alias of ``calcil.logs`` (TensorBoard event logs) under its former
# name: ``calcil.logging.read_scalars`` and ``from calcil.logging import ...`` keep working.
logging = _sys.modules["calcil.logging"] = logs

__all__ = [
    "ADMM",
    "PDHG",
    "ConjugateGradient",
    "GradientSolver",
    "Group",
    "Objective",
    "ProximalGradient",
    "Result",
    "benchmark",
    "benchmarking",
    "losses",
    "metrics",
    "noise",
    "operators",
    "phantoms",
    "priors",
    "testing",
    "viz",
]

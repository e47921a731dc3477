"""calcil: computational imaging on JAX.

Write the physics of an imaging system as operator blocks, add priors, and let gradient
descent recover the unknowns. See ``calcil.operators`` for the operator algebra.
"""

from calcil import operators, testing

__version__ = "0.1.0.dev0"

__all__ = ["operators", "testing"]

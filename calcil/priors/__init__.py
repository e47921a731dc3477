"""Priors (regularisers) with proximal operators, and constraints with projections.

Old names kept as aliases: ``L2`` is :class:`Tikhonov`, ``Weighted`` is :class:`PriorSum`.
"""

from calcil.priors.base import Prior, PriorSum, Weighted
from calcil.priors.constraints import Box, Constraint, NonNegative, Simplex, Support
from calcil.priors.denoiser import Denoiser
from calcil.priors.norms import L1, L2, L21, Huber, Tikhonov
from calcil.priors.transformed import Transformed
from calcil.priors.tv import TV

__all__ = [
    "L1",
    "L2",
    "L21",
    "TV",
    "Box",
    "Constraint",
    "Denoiser",
    "Huber",
    "NonNegative",
    "Prior",
    "PriorSum",
    "Simplex",
    "Support",
    "Tikhonov",
    "Transformed",
    "Weighted",
]

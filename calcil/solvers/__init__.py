"""Solvers: GradientSolver (with its variable groups), ProximalGradient, ConjugateGradient, ADMM,
PDHG."""

from calcil.solvers.admm import ADMM
from calcil.solvers.cg import ConjugateGradient
from calcil.solvers.gradient import GradientSolver, Result
from calcil.solvers.groups import Group, match_groups
from calcil.solvers.pdhg import PDHG
from calcil.solvers.proximal import ProximalGradient

__all__ = [
    "ADMM",
    "PDHG",
    "ConjugateGradient",
    "GradientSolver",
    "Group",
    "ProximalGradient",
    "Result",
    "match_groups",
]

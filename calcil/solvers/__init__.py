"""Solvers: the GradientSolver and the configuration of its variable groups."""

from calcil.solvers.gradient import GradientSolver, Result
from calcil.solvers.groups import Group, match_groups

__all__ = ["GradientSolver", "Group", "Result", "match_groups"]

"""Solvers and their configuration. (The GradientSolver itself is the next milestone.)"""

from calcil.solvers.groups import Group, match_groups

__all__ = ["Group", "match_groups"]

"""Internals shared by calcil's packages (pytree structs, shapes, dtypes, counts).

Nothing here is public API: the operators, priors, losses and solvers import these helpers
instead of each other's private modules.
"""

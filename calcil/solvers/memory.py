"""The memory of a solver's compiled chunk, for benchmarks that time whole runs."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from calcil.benchmarking.timing import program_memory
from calcil.solvers._chunk import initial_state

__all__ = ["chunk_memory"]


def chunk_memory(solver, init, data, problems: int | None = None) -> dict[str, int]:
    """:func:`~calcil.benchmarking.timing.program_memory` of the one chunk ``solver``
    compiled for ``init`` and ``data`` (run the solver once first), called with the state a
    run starts from and the data its steps see (the fast path's precomputed data).

    With ``problems``, ``init`` and ``data`` carry a leading problem axis (``run_batch``):
    each problem is prepared alone and the parts stacked.
    """
    programs = list(solver._compiled.values())
    if len(programs) != 1:
        raise ValueError(
            f"chunk_memory needs a solver that compiled exactly one chunk (run it "
            f"once with these shapes first); it holds {len(programs)}"
        )
    if problems is None:
        _, inner, seen = solver._prepare(init, data, None, None)
        state = initial_state(init, inner, 0)
    else:

        def problem(tree, b):
            return jax.tree_util.tree_map(lambda a: a[b], tree)

        parts = [
            solver._prepare(problem(init, b), problem(data, b), None, None)[1:]
            for b in range(problems)
        ]
        inner, seen = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *parts)
        zeros = jnp.zeros((problems,), jnp.int32)
        state = initial_state(init, inner, zeros, zeros)
    return program_memory(programs[0].lower(state, seen).compile())

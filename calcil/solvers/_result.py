"""What a solver's run returns."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

__all__ = ["Result"]


@dataclasses.dataclass
class Result:
    """What a solver returns.

    Attributes:
        params: the final parameters (the last ones with a finite objective when diverged).
        history: per-step NumPy arrays: ``"step"`` (the number of updates applied to the
            parameters that were measured), ``"loss/total"``, every term by name, and solver
            figures such as ``"lr/<group>"``, ``"grad_norm/<group>"`` (at the last step
            before each log point, image or checkpoint; NaN at the others),
            ``"perf/steps_per_second"``.
        status: ``"converged"``, ``"max_iterations"``, ``"max_time"``, ``"diverged"`` (a
            non-finite objective, or non-finite parameters after the last step), or
            ``"stalled"`` (the solver can make no progress at this precision: see
            :class:`~calcil.ConjugateGradient`).
        steps: steps taken in total (including those before a resume).

        From ``run_batch``, ``params`` keep the problem axis, ``history`` values are
        ``(steps, problems)`` (NaN after a problem stopped), and ``status`` and ``steps`` are
        lists with one entry per problem.
        message: a sentence on why the run stopped.
        fast_path: whether the least-squares fast path evaluated the data term
            (``"used: ..."``, naming the factor ``B`` of ``A = U B``) or why not
            (``"not used: ..."``); see the solvers' ``fast_path`` argument.
    """

    params: Any
    history: dict[str, np.ndarray]
    status: str
    steps: int
    message: str = ""
    fast_path: str = ""

"""The per-step history of a run, as it grows chunk by chunk on the host.

Values are NumPy arrays: ``(steps,)`` for one problem, ``(steps, problems)`` for a batch of
independent problems (:meth:`calcil.solvers._loop.IterativeSolver.run_batch`), where a
problem's entries after it stopped are NaN.

Example:
    >>> import numpy as np
    >>> h = History()
    >>> h.append({"loss/total": np.array([3.0, 2.0])}, start=0, rate=100.0)
    >>> h.append({"loss/total": np.array([1.0])}, start=2, rate=50.0)
    >>> d = h.arrays()
    >>> d["step"].tolist(), d["loss/total"].tolist(), d["perf/steps_per_second"].tolist()
    ([0, 1, 2], [3.0, 2.0, 1.0], [100.0, 100.0, 50.0])
"""

from __future__ import annotations

import numpy as np

__all__ = ["History"]


class History:
    """Per-step arrays keyed by name: ``"step"``, every output, ``"perf/steps_per_second"``.

    Args:
        restored: the history a checkpoint held (the steps before the resumed parameters).
    """

    def __init__(self, restored: dict | None = None):
        self._parts: dict[str, list[np.ndarray]] = {
            k: [np.asarray(v)] for k, v in (restored or {}).items()
        }

    def __bool__(self) -> bool:
        return bool(self._parts)

    def append(self, outputs: dict, start: int, rate: float, last=None) -> None:
        """Add a chunk's steps from ``start``. ``last`` (batches): per problem, the index in
        this chunk of its last recorded step (the one at which it stopped; -1 when it had
        stopped before); its later float entries become NaN."""
        n = len(next(iter(outputs.values())))
        problems = np.shape(next(iter(outputs.values())))[1:]
        steps = np.arange(start, start + n).reshape((n,) + (1,) * len(problems))
        self._add("step", np.broadcast_to(steps, (n, *problems)).copy())
        for name, values in outputs.items():
            values = np.asarray(values)
            if last is not None and values.dtype.kind in "fc":
                values = values.copy()
                values[np.arange(n)[:, None] > np.asarray(last)[None, :]] = np.nan
            self._add(name, values)
        self._add("perf/steps_per_second", np.full((n, *problems), rate))

    def _add(self, name, values):
        self._parts.setdefault(name, []).append(values)

    def arrays(self) -> dict[str, np.ndarray]:
        """Every entry as one array (kept as such: later calls concatenate only what came
        after)."""
        out = {k: np.concatenate(v) for k, v in self._parts.items()}
        self._parts = {k: [v] for k, v in out.items()}
        return out

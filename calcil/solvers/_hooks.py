"""Host-side hooks of the run loop, each called after a chunk's scalars are read back.

- :class:`ScalarLogger`: TensorBoard scalars and images (a batch of problems logs each
  scalar's mean over the problems still running, and its maximum as ``<name>/max``).
- :class:`ProgressBar`: a tqdm bar with the loss, on a terminal or in a notebook.
- :class:`Callbacks`: the user's ``callback(step, params, terms)`` functions.
- :class:`StopRules`: ``tol`` (relative change of the objective between log points) and
  ``max_time``.

Example:
    >>> rules = StopRules(tol=1e-3, max_time=None)
    >>> rules.converged(10, 1.0), rules.converged(20, 0.9999)
    (None, 'relative change 1.00e-04 < tol 0.001 at step 20')
"""

from __future__ import annotations

import sys
import time

import numpy as np

__all__ = ["Callbacks", "ProgressBar", "ScalarLogger", "StopRules", "show_progress"]


def show_progress(progress: bool) -> bool:
    """Whether to draw a bar: asked for, and stderr is a terminal or this is a notebook."""
    if not progress:
        return False
    if "ipykernel" in sys.modules:  # a notebook: its stderr is not a terminal but shows bars
        return True
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


def _summary(values: dict) -> dict[str, float]:
    """Scalars as floats; per-problem vectors as their mean (NaN-skipping) and maximum."""
    out = {}
    for name, v in values.items():
        v = np.asarray(v, float)
        if v.ndim == 0:
            out[name] = float(v)
        elif np.isfinite(v).any():
            out[name] = float(np.nanmean(v))
            out[f"{name}/max"] = float(np.nanmax(v))
    return out


class ScalarLogger:
    """TensorBoard event files under ``log_dir`` (tensorboardX)."""

    def __init__(self, log_dir):
        from calcil.logs import TensorBoardLogger

        self._writer = TensorBoardLogger(log_dir)

    def scalars(self, step: int, values: dict) -> None:
        self._writer.scalars(step, _summary(values))

    def images(self, step: int, images: dict) -> None:
        self._writer.images(step, images)

    def close(self) -> None:
        self._writer.close()


class ProgressBar:
    """A tqdm bar over ``total`` steps showing the loss (the mean over a batch)."""

    def __init__(self, total: int, initial: int, desc: str):
        from tqdm import tqdm

        self._bar = tqdm(total=total, initial=min(initial, total), desc=desc, unit="step")

    def update(self, done: int, loss) -> None:
        loss = float(np.nanmean(np.asarray(loss, float))) if np.size(loss) else float("nan")
        self._bar.set_postfix(loss=f"{loss:.4g}", refresh=False)
        self._bar.update(done - self._bar.n)  # redraws with this chunk's loss

    def close(self) -> None:
        self._bar.close()


class Callbacks:
    """``callback(step, params, terms)`` for each function, at log points."""

    def __init__(self, functions):
        self.functions = tuple(functions)

    def __bool__(self) -> bool:
        return bool(self.functions)

    def __call__(self, step: int, params, terms: dict) -> None:
        for fn in self.functions:
            fn(step, params, terms)


class StopRules:
    """``tol``: the relative change of the objective between two log points; ``max_time``:
    seconds since the rules were made (the start of the run)."""

    def __init__(self, tol: float | None, max_time: float | None):
        self.tol, self.max_time = tol, max_time
        self._start = time.perf_counter()
        self._last = None

    def out_of_time(self) -> bool:
        return self.max_time is not None and time.perf_counter() - self._start > self.max_time

    def converged(self, step: int, loss, first=None) -> str | None:
        """A message when ``loss`` (at log point ``step``) changed by less than ``tol``
        since the previous log point (``first``: the run's first objective, before any)."""
        loss = np.asarray(loss, float)
        ref = self._last if self._last is not None else first
        self._last = loss
        if self.tol is None or ref is None or step <= 1:
            return None
        change = np.abs(loss - ref) / np.maximum(np.abs(ref), 1e-30)
        if not np.all(np.nan_to_num(change, nan=0.0) < self.tol):
            return None
        worst = float(np.nanmax(change)) if np.size(change) else 0.0
        return f"relative change {worst:.2e} < tol {self.tol} at step {step}"

"""Checkpoints of a run: restore on resume, save only states whose objective is finite.

A checkpoint due after a chunk is *pending* until the objective at its parameters is known
to be finite: at the next chunk's first step, or by a one-step probe at the end of the run.
The state is copied to the host before the next chunk is dispatched (which takes over the
device buffers). The newest state known to be good (the last one written, or the run's
start) is kept on the host as the *anchor* from which a diverged run replays to its last
finite state, so that this state can be saved with its matching optimizer state.
"""

from __future__ import annotations

from pathlib import Path

import jax

__all__ = ["Checkpointer", "core"]


def core(state: dict, batched: bool) -> dict:
    """The part of a loop state a checkpoint holds: parameters, solver state, step (and, for
    a batch of problems, which problems have stopped)."""
    keys = ("params", "inner", "step", "halt") if batched else ("params", "inner", "step")
    return {k: state[k] for k in keys}


class Checkpointer:
    """Checkpoints under ``log_dir/checkpoints`` for one run.

    Args:
        log_dir: the run's directory.
        every: steps between checkpoints (``None``: none are written).
        keep: how many to keep.
        solver: the solver's name, stored with each checkpoint.
        writer: whether this process writes files (one of several processes does).
    """

    def __init__(self, log_dir, every, keep, solver, writer=True):
        self.directory = Path(log_dir) / "checkpoints"
        self.every, self.keep, self.solver, self.writer = every, keep, solver, writer
        self.pending = None  # (host state, history arrays) waiting for its objective
        self.anchor = None  # the newest host state known to have a finite objective

    @property
    def active(self) -> bool:
        return bool(self.every)

    def restore(self, target, resume: bool):
        """``(state, history)`` from the newest checkpoint when resuming, else ``(None, {})``.

        Raises:
            ValueError: checkpoints exist, ``resume`` is false and this run would write new
                ones over them.
        """
        from calcil import checkpoint

        newest = checkpoint.latest(self.directory)
        if newest is None:
            return None, {}
        if not resume:
            if self.every:
                raise ValueError(
                    f"{self.directory} already holds checkpoints (newest {newest.name}) and "
                    "this run would overwrite them. Pass resume=True to continue that run, or "
                    "choose a new log_dir (or delete the old checkpoints)."
                )
            return None, {}
        state, extra = checkpoint.load(newest, target=target)
        return state, dict(extra.get("history", {}))

    def fetch(self, state: dict, batched: bool):
        """The state's checkpointed part, copied to the host."""
        return jax.device_get(core(state, batched))

    def save(self, step: int, host_state, history: dict) -> None:
        """Write ``host_state`` after ``step`` steps (its objective known to be finite) and
        make it the anchor."""
        from calcil import checkpoint

        self.anchor = (step, host_state)
        if not (self.active and self.writer):
            return
        hist = {k: v[:step] for k, v in history.items()}  # the steps before these parameters
        checkpoint.save(
            self.directory,
            step,
            host_state,
            extra={"history": hist, "solver": self.solver},
            keep=self.keep,
        )

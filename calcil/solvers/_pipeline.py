"""One run of a solver: chunks dispatched one ahead of the host, hooks between them.

:class:`RunLoop` drives a :class:`~calcil.solvers._chunk.ChunkProgram` through the chunks of
a :class:`~calcil.solvers._options.RunOptions` schedule. At most two chunks are in flight:
the loop dispatches chunk k+1, then reads chunk k's packed scalars (which waits for chunk k
only) and runs the hooks: history, TensorBoard, progress bar, callbacks, images, checkpoints
and stop rules. See :mod:`calcil.solvers._loop` for what this means for the stop rules.
"""

from __future__ import annotations

import collections
import dataclasses
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from calcil.solvers._checkpointer import Checkpointer, core
from calcil.solvers._chunk import DIVERGED, NON_FINITE, initial_state
from calcil.solvers._history import History
from calcil.solvers._hooks import Callbacks, ProgressBar, ScalarLogger, StopRules, show_progress
from calcil.solvers._options import Chunk, RunOptions
from calcil.solvers._result import Result

__all__ = ["RunLoop"]


def _problems(flags, batched):
    """The indices of the problems where ``flags`` is true (``()`` for one problem)."""
    if not batched:
        return [()] if bool(flags) else []
    return [(int(b),) for b in np.flatnonzero(flags)]


_copy_tree = jax.jit(lambda tree: jax.tree_util.tree_map(jnp.copy, tree))


@dataclasses.dataclass
class _Flight:
    """A dispatched chunk: its packed scalars (one array per dispatch), not yet read."""

    chunk: Chunk
    packed: list
    params: Any = None  # a copy of the parameters at its end, for callbacks and images
    host: Any = None  # the state copied to the host, when a checkpoint is due at its end


@dataclasses.dataclass
class _Read:
    """A chunk's scalars on the host."""

    outputs: dict  # name -> (steps,) or (steps, problems)
    steps: int  # steps the loop ran (a halted problem's included until all halted)
    halt: np.ndarray  # per problem (or a 0-d array): 0, DIVERGED, NON_FINITE or a stop code
    where: np.ndarray  # index in the chunk of the halting step, -1 where none


class RunLoop:
    """A run's host side (see the module docstring).

    Args:
        solver: the :class:`~calcil.solvers._loop.IterativeSolver`.
        program: its compiled chunk for this plan.
        data: what the steps see (the data, or the fast path's precomputed data).
        options: the validated run options.
        batched: a batch of independent problems (leading axis) instead of one.
        place: puts a state built on the host where the run's state lives.
    """

    def __init__(self, solver, program, data, options: RunOptions, batched: bool, place):
        self.solver, self.program, self.data = solver, program, data
        self.opts, self.batched, self.place = options, batched, place
        writer = jax.process_index() == 0  # several processes: one writes the files
        log_dir = options.log_dir
        self.ckpt = None
        if log_dir is not None:
            name = type(solver).__name__
            every = options.checkpoint_every
            self.ckpt = Checkpointer(log_dir, every, options.keep_checkpoints, name, writer)
        self.logger = ScalarLogger(log_dir) if log_dir is not None and writer else None
        self.callbacks = Callbacks(options.callbacks)
        self.rules = StopRules(options.tol, options.max_time)
        self.bar = None
        self.history = History()
        self.status, self.message = "max_iterations", ""
        self.first_loss = None

    # ------------------------------------------------------------------ device side
    def _dispatch(self, state, chunk: Chunk):
        """Run ``chunk`` from ``state``: one dispatch per ``capacity`` steps, the last one
        reported."""
        packed, left = [], chunk.length
        while left:
            n = min(left, self.program.capacity)
            left -= n
            state, out = self.program(state, self.data, n, left == 0)
            packed.append(out)
        return state, packed

    def _read(self, packed: list) -> _Read:
        parts, offset, halt, where = [], 0, None, None
        for host in jax.device_get(packed):  # the chunk's one transfer
            outputs, steps, h, w = self.program.unpack(host)
            parts.append(outputs)
            if where is None:
                halt, where = h, w
            else:
                halt = np.where(where >= 0, halt, h)
                where = np.where((where < 0) & (w >= 0), w + offset, where)
            offset += steps
        outputs = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        return _Read(outputs, offset, halt, where)

    def _state_at(self, host_state):
        """A device state from a checkpoint's host copy."""
        halt = host_state.get("halt", 0)
        return self.place(
            initial_state(host_state["params"], host_state["inner"], host_state["step"], halt)
        )

    def _replay(self, step: int):
        """The host state after ``step`` steps, replayed from the checkpointer's anchor."""
        anchor_step, host = self.ckpt.anchor
        if step <= anchor_step:
            return host if step == anchor_step else None
        chunk = Chunk(anchor_step, step, log=False, image=False, checkpoint=False)
        state, _ = self._dispatch(self._state_at(host), chunk)
        return self.ckpt.fetch(state, self.batched)

    # ------------------------------------------------------------------ the loop
    def run(self, state, fast_path: str) -> Result:
        opts, ckpt = self.opts, self.ckpt
        done = 0
        if ckpt is not None:
            restored, history = ckpt.restore(core(state, self.batched), opts.resume)
            if restored is not None:
                state = self._state_at(restored)
                self.history = History(history)
                done = int(np.max(restored["step"]))
        if done > opts.iterations:
            raise ValueError(
                f"resume=True continues from the checkpoint at step {done} in "
                f"{ckpt.directory}, but iterations={opts.iterations} asks for fewer steps in "
                "total (iterations counts from step 0, also when resuming). Pass iterations "
                f">= {done}, or start a fresh run in another log_dir."
            )
        self.start_step = done
        if ckpt is not None and ckpt.active:
            ckpt.anchor = (done, ckpt.fetch(state, self.batched))
        if show_progress(opts.progress):
            self.bar = ProgressBar(opts.iterations, done, type(self.solver).__name__)
        self.stopped = np.zeros(np.shape(state["halt"]), bool)  # per problem
        self.steps = np.full(np.shape(state["halt"]), done)
        self.statuses = np.full(np.shape(state["halt"]), "", object)
        self.notes = []
        if self.batched and done:
            self._stopped_before(state)
        try:
            state, done = self._loop(state, done)
            state = self._finish(state, done)
        finally:
            if self.bar is not None:
                self.bar.close()
            if self.logger is not None:
                self.logger.close()
        return self._result(state, done, fast_path)

    def _loop(self, state, done):
        opts, ckpt = self.opts, self.ckpt
        chunks = opts.chunks(done)
        flights: collections.deque[_Flight] = collections.deque()
        launching, last_read = True, time.perf_counter()
        while True:
            while launching and len(flights) < 2:
                chunk = next(chunks, None)
                if chunk is None:
                    launching = False
                elif chunk.start > self.start_step and self.rules.out_of_time():
                    launching = False  # checked before every dispatch but the first
                    self.status = "max_time"
                else:
                    if flights and flights[-1].chunk.checkpoint and ckpt is not None:
                        flights[-1].host = ckpt.fetch(state, self.batched)  # before donating
                    state, packed = self._dispatch(state, chunk)
                    needs = (chunk.log and self.callbacks) or (
                        chunk.image and opts.images and self.logger is not None
                    )
                    params = _copy_tree(state["params"]) if needs else None
                    flights.append(_Flight(chunk, packed, params))
            if not flights:
                return state, done
            flight = flights.popleft()
            if flight.chunk.checkpoint and flight.host is None and ckpt is not None:
                flight.host = ckpt.fetch(state, self.batched)  # the newest state
            read = self._read(flight.packed)
            now = time.perf_counter()
            rate = read.steps / max(now - last_read, 1e-9)
            last_read = now
            done, halted_all = self._record(flight, read, rate)
            if halted_all:
                return state, done
            if self.status == "converged":
                launching = False

    def _record(self, flight: _Flight, read: _Read, rate: float):
        """Hooks for one chunk read back; ``(steps done, every problem stopped)``."""
        chunk, ckpt = flight.chunk, self.ckpt
        outputs = read.outputs
        running = ~self.stopped
        new = running & (read.halt != 0)
        if self.first_loss is None and read.steps:
            self.first_loss = outputs["loss/total"][0]
        # a pending checkpoint is good when the objective at its parameters (this chunk's
        # first step) is finite for every problem still running
        first_bad = new & (read.where == 0) & (read.halt == DIVERGED)
        if ckpt is not None and ckpt.pending is not None:
            if not np.any(first_bad):
                ckpt.save(*ckpt.pending)
            ckpt.pending = None
        last = None
        if self.batched:
            last = np.where(self.stopped, -1, np.where(new, read.where, read.steps - 1))
        if read.steps:
            self.history.append(outputs, chunk.start, rate, last)
        for b in _problems(new, self.batched):
            self._halted(b, chunk, read)
        self.stopped = self.stopped | new
        if not self.batched and new:
            return self.steps.item(), True
        if self.batched and np.all(self.stopped):
            return chunk.start + read.steps, True
        done = chunk.stop
        terms = {k: v[-1] for k, v in outputs.items()}
        terms["perf/steps_per_second"] = rate
        if not self.batched:
            terms = {k: float(v) for k, v in terms.items()}
        if chunk.log and self.logger is not None:
            self.logger.scalars(done - 1, terms)
        if self.bar is not None:
            self.bar.update(done, terms["loss/total"])
        if chunk.log and self.callbacks:
            self.callbacks(done, flight.params, terms)
        if chunk.image and self.logger is not None and self.opts.images:
            self.logger.images(done, {n: fn(flight.params) for n, fn in self.opts.images.items()})
        if chunk.checkpoint and ckpt is not None and ckpt.active:
            ckpt.pending = (done, flight.host, self.history.arrays())
        if chunk.log:
            loss = terms["loss/total"]
            if self.batched:
                loss = np.where(self.stopped, np.nan, loss)
            message = self.rules.converged(done, loss, self.first_loss)
            if message is not None and self.status == "max_iterations":
                self.status, self.message = "converged", message
        return done, False

    def _stopped_before(self, state):
        """A resumed batch: the problems that had stopped before its checkpoint."""
        halt, steps = jax.device_get((state["halt"], state["step"]))
        history = self.history.arrays()
        for (b,) in _problems(halt != 0, True):
            code, step = int(halt[b]), int(steps[b])
            self.steps[b] = step
            if code < 0:
                self.statuses[b] = "diverged"
                self.notes.append(((b,), f"diverged at step {step}, before the resumed run"))
            else:
                at = {k: float(v[step, b]) for k, v in history.items() if len(v) > step}
                self.statuses[b], message = self.solver._stop_reason(code, step, at)
                self.notes.append(((b,), message))
        self.stopped = halt != 0

    def _halted(self, b, chunk: Chunk, read: _Read):
        """Problem ``b`` (``()`` for one problem) stopped in ``chunk``."""
        code, index = int(read.halt[b]), int(read.where[b])
        step = chunk.start + index
        outputs = {k: v[:, b[0]] if self.batched else v for k, v in read.outputs.items()}
        self.steps[b] = step
        if code in (DIVERGED, NON_FINITE):
            self.statuses[b] = "diverged"
            at_start = step == self.start_step
            message = self.solver._divergence_message(outputs, chunk.start, index, at_start)
        else:
            at = {k: float(np.asarray(v)[index]) for k, v in outputs.items()}
            self.statuses[b], message = self.solver._stop_reason(code, step, at)
            if self.logger is not None and not self.batched:
                self.logger.scalars(step, at)
            if self.bar is not None:
                self.bar.update(step, at["loss/total"])
        self.notes.append((b, message))

    def _finish(self, state, done):
        """The end of the run: a checkpoint of the final state, once its objective is known
        to be finite (a one-step probe), or of the last finite state after a divergence."""
        ckpt = self.ckpt
        if ckpt is None or not ckpt.active:
            return state
        if self.status in ("converged", "max_time") and ckpt.pending is None:
            ckpt.pending = (done, ckpt.fetch(state, self.batched), self.history.arrays())
        if not self.batched and self.stopped.item():
            if self.statuses.item() == "diverged":
                target = self._replay(self.steps.item() - 1)
                if target is not None:
                    ckpt.save(int(target["step"]), target, self.history.arrays())
            else:  # the solver stopped itself: its objective was evaluated, finite
                ckpt.save(done, ckpt.fetch(state, False), self.history.arrays())
            return state
        if ckpt.pending is None:
            return state
        step, host, history = ckpt.pending
        ckpt.pending = None
        chunk = Chunk(step, step + 1, log=False, image=False, checkpoint=False)
        _, packed = self._dispatch(self._state_at(host), chunk)
        probe = self._read(packed)
        bad = (probe.halt == DIVERGED) & ~self.stopped
        if not np.any(bad):
            ckpt.save(step, host, history)
            return state
        # the last update led to a non-finite objective at finite parameters
        for b in _problems(bad, self.batched):
            self.statuses[b] = "diverged"
            self.steps[b] = step
            message = self.solver._divergence_message({}, step - 1, 1, False)
            self.notes.append((b, message))
        self.stopped = self.stopped | bad
        flag = jnp.asarray(bad)
        params = jax.tree_util.tree_map(
            lambda p, q: jnp.where(flag.reshape(flag.shape + (1,) * (p.ndim - flag.ndim)), q, p),
            state["params"],
            state["prev"],
        )
        state = {**state, "params": params}
        if not self.batched:
            target = self._replay(step - 1)
            if target is not None:
                ckpt.save(step - 1, target, history)
        return state

    def _result(self, state, done, fast_path) -> Result:
        if self.history:
            history = self.history.arrays()
        else:
            history = self._empty_history(state)
        if self.status == "max_time" and not self.message:
            self.message = f"stopped after {self.opts.max_time} s at step {done}"
        if not self.batched:
            if self.stopped.item():
                status, steps = self.statuses.item(), int(self.steps.item())
                message = self.notes[-1][1]
            else:
                status, steps = self.status, done
                message = self.message or f"ran {done} iterations"
            return Result(state["params"], history, status, steps, message, fast_path)
        statuses = [s if s else self.status for s in self.statuses.tolist()]
        steps = [int(s) if stop else done for s, stop in zip(self.steps, self.stopped, strict=True)]
        lines = [self.message or f"ran {done} iterations"]
        lines += [f"problem {b[0]}: {m}" for b, m in self.notes]
        return Result(state["params"], history, statuses, steps, "; ".join(lines), fast_path)

    def _empty_history(self, state) -> dict:
        """The history of a run of no steps: every key a step would record, no values."""
        if self.program.layout is None:
            self.program.eval_shape(state, self.data)
        problems = np.shape(state["halt"])
        hist = {"step": np.zeros((0, *problems), np.int64)}
        for name, dtype in self.program.layout:
            hist[name] = np.zeros((0, *problems), dtype)
        hist["perf/steps_per_second"] = np.zeros((0, *problems))
        return hist

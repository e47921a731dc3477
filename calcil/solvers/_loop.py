"""The run loop shared by calcil's solvers: compiled chunks, history, logs, checkpoints, stops.

A solver supplies two pieces: ``_prepare`` (validate the problem, build the solver's own state
and a hashable *plan* of static choices) and ``_step`` (one iteration, traced). This module
runs the steps between two host events (log point, image, checkpoint, end) as one jitted
``lax.scan``, so the device never waits on Python inside a chunk. Between chunks it reads the
per-step scalars back once, writes TensorBoard, updates the progress bar, calls callbacks,
saves checkpoints and decides whether to stop.

Every step reports ``"loss/total"``, the objective at the parameters it starts from. When it is
not finite the run stops as ``"diverged"`` with the last parameters whose objective was finite.
The compiled chunk does not guard each step (a per-step select over parameters and optimizer
state costs about 10% of a step); instead the host finds the first non-finite value in the
chunk's scalars and replays the chunk from its input state up to the step before it. Chunks
are deterministic, so the replay reproduces the same parameters.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from calcil.solvers import _sharding

__all__ = ["IterativeSolver", "Result"]

RUN_ARGS_DOC = """
        Args:
            init: initial parameters (any pytree of arrays: a dict of images, flax params).
            data: pytree of measurements handed to the objective's ``forward`` as ``batch``.
            iterations: steps in total, counted from step 0 (also when resuming).
            batch_size: draw shuffled mini-batches of this many measurements (the leading axis
                of every ``data`` leaf) on the device; ``None`` uses all data at every step.
            key: ``jax.random`` key for the shuffling (default ``jax.random.key(0)``).
            log_dir: directory for TensorBoard event files and checkpoints (``None``: no files).
            log_every: steps between log points (one compiled chunk); history, TensorBoard
                scalars, the progress bar and callbacks are updated there.
            images: ``{name: fn(params) -> array}`` written to TensorBoard every
                ``image_every`` steps (needs ``log_dir``).
            image_every: steps between images (default ``log_every``).
            checkpoint_every: save a checkpoint under ``log_dir/checkpoints`` every so many
                steps and at the end.
            keep_checkpoints: how many checkpoints to keep.
            resume: continue from the newest checkpoint in ``log_dir`` (a fresh start when
                there is none); the run then reproduces the uninterrupted one.
            callbacks: functions ``callback(step, params, terms)`` called at log points with the
                number of steps taken, the current parameters and the last step's terms (floats).
            tol: stop as ``"converged"`` when the objective changes by less than ``tol``
                (relative) between two log points.
            max_time: stop as ``"max_time"`` after this many seconds (checked at log points).
            progress: show a tqdm progress bar when the output is a terminal or a notebook.
            devices: run on these devices (a list of ``jax.Device``): one device runs there;
                several split the leading (measurement) axis of every ``data`` leaf evenly
                over them (``jax.shard_map``; parameters replicated, data terms and
                gradients reduced over the devices), which equals the single-device run up
                to rounding. After ``jax.distributed.initialize()``, ``jax.devices()``
                spans all processes, each passing its own block of measurements.

        Returns:
            :class:`~calcil.Result`.
"""


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
        status: ``"converged"``, ``"max_iterations"``, ``"max_time"`` or ``"diverged"``.
        steps: steps taken in total (including those before a resume).
        message: a sentence on why the run stopped.
    """

    params: Any
    history: dict[str, np.ndarray]
    status: str
    steps: int
    message: str = ""


def _next_stop(done: int, iterations: int, *periods: int | None) -> int:
    stop = iterations
    for period in periods:
        if period:
            stop = min(stop, (done // period + 1) * period)
    return stop


def _positive_int(name, value, allow_none=False):
    if value is None and allow_none:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _show_progress(progress: bool) -> bool:
    if not progress:
        return False
    if "ipykernel" in sys.modules:  # a notebook: its stderr is not a terminal but shows bars
        return True
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


class IterativeSolver:
    """Base of the solvers; subclasses implement ``_prepare`` and ``_step``."""

    def __init__(self):
        self._compiled: dict = {}  # (plan, length) -> jitted chunk
        self.traces = 0  # how often a chunk was traced (compiled): for tests and benchmarks

    # ------------------------------------------------------------------ subclass hooks
    def _prepare(self, init, data, batch_size, key, axis) -> tuple[Any, Any, Any]:
        """Validate; return ``(plan, inner, data)``: hashable static choices, the initial
        state, and the data the steps see (``data`` itself, or what was precomputed from it).

        ``axis`` is ``None`` on one device; on several it names the mesh axis the data is
        split over, and ``_step`` sees this device's rows and must reduce its data terms
        over ``axis`` (:func:`calcil.solvers._sharding.reduce_loss_terms`).
        """
        raise NotImplementedError

    def _step(self, plan, params, inner, step, data, report) -> tuple[Any, Any, dict]:
        """One iteration: ``(params, inner, outputs)``; ``outputs["loss/total"]`` at the input.

        ``report`` (a traced bool) is true on the chunk's last step, whose scalars are logged:
        diagnostics that cost a pass over the parameters (gradient norms) may be computed on
        those steps only (``lax.cond``) and be NaN on the others.
        """
        raise NotImplementedError

    # ------------------------------------------------------------------ the compiled chunk
    def _chunk(self, plan, length: int, mesh=None) -> Callable:
        key = (plan, length, mesh)
        if key not in self._compiled:

            def chunk(state, data):
                self.traces += 1

                def body(state, report):
                    params, inner, outputs = self._step(
                        plan, state["params"], state["inner"], state["step"], data, report
                    )
                    return {"params": params, "inner": inner, "step": state["step"] + 1}, outputs

                reports = jnp.arange(length) == length - 1
                return jax.lax.scan(body, state, reports)

            if mesh is not None:
                chunk = _sharding.shard_chunk(chunk, mesh)
            self._compiled[key] = jax.jit(chunk)
        return self._compiled[key]

    # ------------------------------------------------------------------ run
    def run(
        self,
        init,
        data=None,
        iterations: int = 100,
        batch_size: int | None = None,
        key=None,
        log_dir=None,
        log_every: int = 50,
        images: Mapping[str, Callable] | None = None,
        image_every: int | None = None,
        checkpoint_every: int | None = None,
        keep_checkpoints: int = 3,
        resume: bool = False,
        callbacks=(),
        tol: float | None = None,
        max_time: float | None = None,
        progress: bool = True,
        devices=None,
    ) -> Result:
        if not isinstance(iterations, int) or isinstance(iterations, bool) or iterations < 0:
            raise ValueError(f"iterations must be a non-negative integer, got {iterations!r}")
        _positive_int("log_every", log_every)
        _positive_int("image_every", image_every, allow_none=True)
        _positive_int("checkpoint_every", checkpoint_every, allow_none=True)
        _positive_int("keep_checkpoints", keep_checkpoints)
        images = dict(images or {})
        for name, fn in images.items():
            if not callable(fn):
                raise TypeError(
                    f"images maps names to functions params -> array; {name!r} is {fn!r}"
                )
        callbacks = (callbacks,) if callable(callbacks) else tuple(callbacks)
        for cb in callbacks:
            if not callable(cb):
                raise TypeError(f"callbacks must be functions (step, params, terms), got {cb!r}")
        needs_dir = [
            n
            for n, v in (
                ("images", images),
                ("checkpoint_every", checkpoint_every),
                ("resume", resume),
            )
            if v
        ]
        if needs_dir and log_dir is None:
            raise ValueError(
                f"{', '.join(needs_dir)} need log_dir=...: the directory for the "
                "TensorBoard files and checkpoints"
            )
        if log_dir is not None:
            from calcil.logging import check_writable

            log_dir = check_writable(log_dir)  # before any compiling
        mesh, device = _sharding.make_mesh(devices)
        axis = None
        if mesh is not None:
            _sharding.check_data(data, mesh, batch_size)
            data, axis = _sharding.place_data(data, mesh), _sharding.AXIS
        writer = jax.process_index() == 0  # several processes: one writes the files

        plan, inner, data = self._prepare(init, data, batch_size, key, axis)
        params = jax.tree_util.tree_map(jnp.array, init)  # a copy: the caller's arrays stay
        state = {"params": params, "inner": inner, "step": jnp.zeros((), jnp.int32)}
        history: dict[str, list[np.ndarray]] = {}
        ckpt_dir = None if log_dir is None else Path(log_dir) / "checkpoints"
        if ckpt_dir is not None:
            state, history = self._restore(ckpt_dir, state, resume, checkpoint_every)
        if mesh is not None:
            state = _sharding.place_state(state, mesh)
        elif device is not None:
            state, data = jax.device_put((state, data), device)
        else:
            data = jax.device_put(data)

        logger = None
        if log_dir is not None and writer:
            from calcil.logging import TensorBoardLogger

            logger = TensorBoardLogger(log_dir)
        done = int(state["step"])
        bar = None
        if _show_progress(progress):
            from tqdm import tqdm

            bar = tqdm(
                total=iterations,
                initial=min(done, iterations),
                desc=type(self).__name__,
                unit="step",
                leave=True,
            )
        t0, status, message = time.perf_counter(), "max_iterations", ""
        last_logged = None
        previous = None  # (input state, length) of the chunk before: for replays
        try:
            while done < iterations:
                stop = _next_stop(
                    done,
                    iterations,
                    log_every,
                    checkpoint_every,
                    image_every or (log_every if images else None),
                )
                tic = time.perf_counter()
                chunk_input = state
                state, outputs = self._chunk(plan, stop - done, mesh)(state, data)
                outputs = jax.device_get(outputs)  # the one transfer per chunk
                rate = (stop - done) / max(time.perf_counter() - tic, 1e-9)
                values = np.asarray(outputs["loss/total"])
                bad = np.flatnonzero(~np.isfinite(values))
                n_ok = bad[0] + 1 if bad.size else len(values)
                _append(history, outputs, done, n_ok, rate)
                if bad.size:
                    culprits = [
                        k
                        for k, v in outputs.items()
                        if k.startswith(("loss/", "prior/"))
                        and k != "loss/total"
                        and not np.isfinite(v[bad[0]])
                    ]
                    status = "diverged"
                    message = (
                        f"the objective became non-finite at step {done + int(bad[0])} (terms "
                        f"{culprits or ['loss/total']}); the parameters are the last ones with "
                        "a finite objective. Lower the learning rate, or check the forward "
                        "model for log, sqrt or division at zero."
                    )
                    state = self._last_finite(plan, mesh, data, chunk_input, int(bad[0]), previous)
                    done += int(bad[0])
                    break
                previous = (chunk_input, stop - done)
                done = stop
                last = {k: float(np.asarray(v)[-1]) for k, v in outputs.items()}
                last["perf/steps_per_second"] = rate
                at_log = done % log_every == 0 or done == iterations
                if logger is not None and at_log:
                    logger.scalars(done - 1, last)
                if bar is not None:
                    bar.set_postfix(loss=f"{last['loss/total']:.4g}", refresh=False)
                    bar.update(stop - bar.n)  # redraws with this chunk's loss
                if at_log and callbacks:
                    current = state["params"]
                    for cb in callbacks:
                        cb(done, current, last)
                if (
                    logger is not None
                    and images
                    and (done % (image_every or log_every) == 0 or done == iterations)
                ):
                    current = state["params"]
                    logger.images(done, {n: fn(current) for n, fn in images.items()})
                if (
                    checkpoint_every
                    and writer
                    and (done % checkpoint_every == 0 or done == iterations)
                ):
                    self._save(ckpt_dir, done, state, history, keep_checkpoints)
                if at_log and tol is not None:
                    ref = last_logged if last_logged is not None else values[0]
                    change = abs(last["loss/total"] - ref) / max(abs(ref), 1e-30)
                    if change < tol and done > 1:
                        status = "converged"
                        message = f"relative change {change:.2e} < tol {tol} at step {done}"
                        break
                if at_log:
                    last_logged = last["loss/total"]
                if max_time is not None and time.perf_counter() - t0 > max_time:
                    status, message = "max_time", f"stopped after {max_time} s at step {done}"
                    break
            if checkpoint_every and writer and status in ("converged", "max_time"):
                self._save(ckpt_dir, done, state, history, keep_checkpoints)
        finally:
            if bar is not None:
                bar.close()
            if logger is not None:
                logger.close()
        if not message:
            message = f"ran {done} iterations"
        final = state["params"]
        hist = {k: np.concatenate(v) if v else np.zeros(0) for k, v in history.items()}
        return Result(final, hist, status, done, message)

    def _last_finite(self, plan, mesh, data, chunk_input, bad, previous):
        """The state whose parameters are the last with a finite objective, by replay.

        ``bad`` is the index in the chunk of the first non-finite objective: the parameters
        before it come from ``bad - 1`` steps from the chunk's input, or, when the chunk's very
        first objective is non-finite, from the previous chunk's input (``previous``).
        """
        if bad >= 1:
            start, steps = chunk_input, bad - 1
        elif previous is not None:
            start, steps = previous[0], previous[1] - 1
        else:  # the initial (or resumed) parameters: nothing earlier to return
            start, steps = chunk_input, 0
        state = self._chunk(plan, steps, mesh)(start, data)[0] if steps else start
        return {**state, "step": chunk_input["step"] + bad}

    # ------------------------------------------------------------------ checkpoints
    def _save(self, ckpt_dir, step, state, history, keep):
        from calcil import checkpoint

        hist = {k: np.concatenate(v) for k, v in history.items()}
        checkpoint.save(
            ckpt_dir, step, state, extra={"history": hist, "solver": type(self).__name__}, keep=keep
        )

    def _restore(self, ckpt_dir, state, resume, checkpoint_every):
        from calcil import checkpoint

        newest = checkpoint.latest(ckpt_dir)
        if newest is None:
            return state, {}
        if not resume:
            if checkpoint_every:
                raise ValueError(
                    f"{ckpt_dir} already holds checkpoints (newest {newest.name}) and this run "
                    "would overwrite them. Pass resume=True to continue that run, or choose a "
                    "new log_dir (or delete the old checkpoints)."
                )
            return state, {}
        state, extra = checkpoint.load(newest, target=state)
        history = {k: [np.asarray(v)] for k, v in extra.get("history", {}).items()}
        return state, history


IterativeSolver.run.__doc__ = "Run ``iterations`` steps from ``init``.\n" + RUN_ARGS_DOC


def _append(history, outputs, done, n, rate):
    """Add the first ``n`` steps of a chunk to the history."""
    history.setdefault("step", []).append(np.arange(done, done + n))
    for name, v in outputs.items():
        history.setdefault(name, []).append(np.asarray(v)[:n])
    history.setdefault("perf/steps_per_second", []).append(np.full(n, rate))

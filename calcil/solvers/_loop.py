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

from calcil._internal.integers import as_count
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
        status: ``"converged"``, ``"max_iterations"``, ``"max_time"``, ``"diverged"`` (a
            non-finite objective, or non-finite parameters after the last step), or
            ``"stalled"`` (the solver can make no progress at this precision: see
            :class:`~calcil.ConjugateGradient`).
        steps: steps taken in total (including those before a resume).
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


def _next_stop(done: int, iterations: int, *periods: int | None) -> int:
    stop = iterations
    for period in periods:
        if period:
            stop = min(stop, (done // period + 1) * period)
    return stop


def _count(name, value, minimum=1, allow_none=False):
    """``value`` as a Python int >= ``minimum`` (NumPy integers accepted), or a ``ValueError``."""
    if value is None and allow_none:
        return None
    kind = {0: "a non-negative integer", 1: "a positive integer"}[minimum]
    return as_count(name, value, minimum, f"{kind} (a Python or NumPy integer)")


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
        """``chunk(state, data) -> (state, outputs)`` running ``length`` steps (jitted, cached).

        ``outputs`` holds each step's scalars and ``"_finite"``: whether every parameter is
        finite after the last step (one reduction per chunk; the objective at those
        parameters is only known from the next step).
        """
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
                state, outputs = jax.lax.scan(body, state, reports)
                leaves = jax.tree_util.tree_leaves(state["params"])
                finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))
                return state, {**outputs, "_finite": finite}

            if mesh is not None:
                chunk = _sharding.shard_chunk(chunk, mesh)
            self._compiled[key] = jax.jit(chunk)
        return self._compiled[key]

    def _stop_reason(self, code: int, step: int, terms: dict) -> tuple[str, str]:
        """``(status, message)`` for a non-zero ``"_stop"`` code at ``step`` (``terms``: that
        step's scalars).

        A solver whose steps can tell that it must stop (CG's residual below its tolerance)
        reports a per-step int32 ``"_stop"`` (0: go on) and leaves the parameters unchanged
        from that step on; the run then ends there with the status this method gives.
        """
        raise NotImplementedError

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
        iterations = _count("iterations", iterations, minimum=0)
        log_every = _count("log_every", log_every)
        image_every = _count("image_every", image_every, allow_none=True)
        checkpoint_every = _count("checkpoint_every", checkpoint_every, allow_none=True)
        keep_checkpoints = _count("keep_checkpoints", keep_checkpoints)
        batch_size = _count("batch_size", batch_size, allow_none=True)
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
        options = dict(
            iterations=iterations,
            batch_size=batch_size,
            key=key,
            log_dir=log_dir,
            log_every=log_every,
            images=images,
            image_every=image_every,
            checkpoint_every=checkpoint_every,
            keep_checkpoints=keep_checkpoints,
            resume=resume,
            callbacks=callbacks,
            tol=tol,
            max_time=max_time,
            progress=progress,
            devices=devices,
        )
        if log_dir is None or jax.process_index() != 0:  # several processes: one writes
            return self._run(init, data, **options)
        from calcil.logs import check_writable
        from calcil.solvers._lock import DirectoryLock

        options["log_dir"] = check_writable(log_dir)  # before any compiling
        with DirectoryLock(options["log_dir"], type(self).__name__):
            return self._run(init, data, **options)

    def _run(
        self,
        init,
        data,
        *,
        iterations,
        batch_size,
        key,
        log_dir,
        log_every,
        images,
        image_every,
        checkpoint_every,
        keep_checkpoints,
        resume,
        callbacks,
        tol,
        max_time,
        progress,
        devices,
    ) -> Result:
        mesh, device = _sharding.make_mesh(devices)
        axis = None
        if mesh is not None:
            _sharding.check_data(data, mesh, batch_size)
            data, axis = _sharding.place_data(data, mesh), _sharding.AXIS
        writer = jax.process_index() == 0  # several processes: one writes the files
        # every process takes part in the probes and replays (collectives); one writes
        checkpointing = bool(checkpoint_every)

        plan, inner, data = self._prepare(init, data, batch_size, key, axis)
        params = jax.tree_util.tree_map(jnp.array, init)  # a copy: the caller's arrays stay
        state = {"params": params, "inner": inner, "step": jnp.zeros((), jnp.int32)}
        history: dict[str, list[np.ndarray]] = {}
        ckpt_dir = None if log_dir is None else Path(log_dir) / "checkpoints"
        if ckpt_dir is not None:
            state, history = self._restore(ckpt_dir, state, resume, checkpoint_every)
        done = int(state["step"])
        if done > iterations:
            raise ValueError(
                f"resume=True continues from the checkpoint at step {done} in {ckpt_dir}, but "
                f"iterations={iterations} asks for fewer steps in total (iterations counts "
                f"from step 0, also when resuming). Pass iterations >= {done}, or start a "
                "fresh run in another log_dir."
            )
        if mesh is not None:
            state = _sharding.place_state(state, mesh)
        elif device is not None:
            state, data = jax.device_put((state, data), device)
        else:
            data = jax.device_put(data)

        def save(state, history):
            if checkpointing and writer:
                self._save(ckpt_dir, int(state["step"]), state, history, keep_checkpoints)

        logger = None
        if log_dir is not None and writer:
            from calcil.logs import TensorBoardLogger

            logger = TensorBoardLogger(log_dir)
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
        # A checkpoint is written once the objective at its parameters is known to be
        # finite: at the next chunk's first step, or by a one-step probe at the end.
        pending = None
        try:
            while done < iterations:
                stop = _next_stop(
                    done,
                    iterations,
                    log_every,
                    checkpoint_every,
                    image_every or (log_every if images else None),
                )
                length = stop - done
                tic = time.perf_counter()
                chunk_input = state
                state, outputs = self._chunk(plan, length, mesh)(state, data)
                outputs = jax.device_get(outputs)  # the one transfer per chunk
                rate = length / max(time.perf_counter() - tic, 1e-9)
                finite_end = bool(outputs.pop("_finite"))
                codes = outputs.pop("_stop", None)
                values = np.asarray(outputs["loss/total"])
                bad = np.flatnonzero(~np.isfinite(values))
                if pending is not None and not (bad.size and bad[0] == 0):
                    save(*pending)
                pending = None
                if bad.size or not finite_end:
                    # the first step whose objective is (or, past the chunk, would be) not finite
                    first = int(bad[0]) if bad.size else length
                    _append(history, outputs, done, min(first + 1, length), rate)
                    status = "diverged"
                    message = self._divergence_message(outputs, done, first, length, previous)
                    state = self._last_finite(plan, mesh, data, chunk_input, first, previous)
                    done += first
                    save(state, history)
                    break
                codes = np.zeros(length, int) if codes is None else np.asarray(codes)
                stopped = np.flatnonzero(codes)
                if len(stopped):  # the solver ended itself; parameters frozen from there on
                    first = int(stopped[0])
                    _append(history, outputs, done, first + 1, rate)
                    at = {k: float(np.asarray(v)[first]) for k, v in outputs.items()}
                    status, message = self._stop_reason(int(codes[first]), done + first, at)
                    state = {**state, "step": chunk_input["step"] + first}
                    done += first
                    if logger is not None:
                        logger.scalars(done, at)
                    if bar is not None:
                        bar.set_postfix(loss=f"{at['loss/total']:.4g}", refresh=False)
                        bar.update(done - bar.n)
                    save(state, history)  # its objective was evaluated: finite
                    break
                _append(history, outputs, done, length, rate)
                previous = (chunk_input, length)
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
                if checkpointing and (done % checkpoint_every == 0 or done == iterations):
                    pending = (state, _snapshot(history))
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
            if checkpointing and status in ("converged", "max_time") and pending is None:
                pending = (state, _snapshot(history))
            if pending is not None:  # the objective at the final parameters is not known yet
                probe = self._chunk(plan, 1, mesh)(state, data)[1]["loss/total"]
                if np.all(np.isfinite(np.asarray(jax.device_get(probe)))):
                    save(*pending)
                else:  # the last update led to a non-finite objective at finite parameters
                    status = "diverged"
                    message = self._divergence_message({}, done - length, length, length, None)
                    state = self._last_finite(plan, mesh, data, chunk_input, length, None)
                    save(state, pending[1])
        finally:
            if bar is not None:
                bar.close()
            if logger is not None:
                logger.close()
        if not message:
            message = f"ran {done} iterations"
        final = state["params"]
        if history:
            hist = {k: np.concatenate(v) for k, v in history.items()}
        else:
            hist = self._empty_history(plan, mesh, state, data)
        return Result(final, hist, status, done, message, plan.fast_path)

    def _empty_history(self, plan, mesh, state, data) -> dict[str, np.ndarray]:
        """The history of a run of no steps: every key a step would record, no values."""
        shapes = jax.eval_shape(self._chunk(plan, 1, mesh), state, data)[1]
        hist = {"step": np.zeros(0, np.int64)}
        for name, shape in shapes.items():
            if not name.startswith("_"):
                hist[name] = np.zeros(0, shape.dtype)
        hist["perf/steps_per_second"] = np.zeros(0)
        return hist

    def _divergence_message(self, outputs, done, first, length, previous) -> str:
        if first < length:
            culprits = [
                k
                for k, v in outputs.items()
                if k.startswith(("loss/", "prior/"))
                and k != "loss/total"
                and not np.isfinite(np.asarray(v)[first])
            ]
            what = f"the objective became non-finite at step {done + first} (terms "
            what += f"{culprits or ['loss/total']})"
            if first == 0 and previous is None:
                return (
                    f"{what}, at the parameters the run started from: they are returned "
                    "unchanged. Check init and the data for NaN or inf, and the forward "
                    "model for log, sqrt or division at zero at these parameters."
                )
        else:
            what = (
                f"the update of step {done + length - 1} made the parameters (or their "
                "objective) non-finite"
            )
        return (
            f"{what}; the parameters are the last ones with a finite objective. Lower the "
            "learning rate, or check the forward model for log, sqrt or division at zero."
        )

    def _last_finite(self, plan, mesh, data, chunk_input, bad, previous):
        """The state whose parameters are the last with a finite objective, by replay.

        ``bad`` is the index in the chunk of the first non-finite objective (the chunk's
        length when the parameters after its last step are not finite): the parameters
        before it come from ``bad - 1`` steps from the chunk's input, or, when the chunk's very
        first objective is non-finite, from the previous chunk's input (``previous``). The
        state's ``step`` counts the updates applied to those parameters.
        """
        if bad >= 1:
            start, steps = chunk_input, bad - 1
        elif previous is not None:
            start, steps = previous[0], previous[1] - 1
        else:  # the initial (or resumed) parameters: nothing earlier to return
            start, steps = chunk_input, 0
        return self._chunk(plan, steps, mesh)(start, data)[0] if steps else start

    # ------------------------------------------------------------------ checkpoints
    def _save(self, ckpt_dir, step, state, history, keep):
        from calcil import checkpoint

        # the history of the steps before the saved parameters (a resume recomputes the rest)
        hist = {k: np.concatenate(v)[:step] for k, v in history.items()}
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


def _snapshot(history):
    """A copy of the history lists as they are now (for a checkpoint written later)."""
    return {k: [np.concatenate(v)] for k, v in history.items()}


def _append(history, outputs, done, n, rate):
    """Add the first ``n`` steps of a chunk to the history."""
    history.setdefault("step", []).append(np.arange(done, done + n))
    for name, v in outputs.items():
        history.setdefault(name, []).append(np.asarray(v)[:n])
    history.setdefault("perf/steps_per_second", []).append(np.full(n, rate))

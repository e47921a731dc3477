"""The run loop shared by calcil's solvers: pipelined compiled chunks and host-side hooks.

A solver supplies ``_analyse`` (validate the problem's structure once per shape: a hashable
*plan* of static choices and the constants that depend only on it), ``_initial`` (its state
at the start, traced), ``_step`` (one iteration, traced) and optionally ``_run_constants``
(per-run values such as FISTA's step size). Everything that depends only on the shapes is
cached: a repeated ``run`` reuses the plan and the compiled programs, also when only
``iterations``, ``log_every`` or ``checkpoint_every`` change
(:class:`~calcil.solvers._chunk.ChunkProgram` takes the chunk length as an argument).

The loop: the steps between two host events (log point, image, checkpoint, end) run as one
compiled chunk (:mod:`calcil.solvers._chunk`) that takes over the state's buffers. The next
chunk is dispatched *before* the host reads the previous one's scalars (one packed transfer),
so history, TensorBoard, the progress bar and callbacks (which get a copy of the parameters
at their log point) overlap device work. Stop rules therefore act one chunk late: after
``tol`` is met, the chunk already in flight still runs and is recorded (``max_time`` is
checked before each dispatch and has no lag). A divergence stops the run inside the chunk
where it happens, with the last parameters whose objective was finite; a chunk dispatched
after it does nothing. A checkpoint waits for the state's copy to reach the host before the
next chunk is dispatched: checkpoints are the one place the loop stalls.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from calcil.solvers import _sharding
from calcil.solvers._chunk import ChunkProgram, fresh_state
from calcil.solvers._options import RunOptions, run_options
from calcil.solvers._pipeline import RunLoop
from calcil.solvers._result import Result

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
                number of steps taken, the parameters after that step (a copy: the next chunk
                is already running) and the last step's terms (floats).
            tol: stop as ``"converged"`` when the objective changes by less than ``tol``
                (relative) between two log points; the chunk already dispatched then is
                completed and recorded (one chunk of lag).
            max_time: stop as ``"max_time"`` after this many seconds (checked before each
                chunk is dispatched).
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


RUN_BATCH_DOC = """
        Independent problems in one compiled run: every leaf of ``init`` and ``data`` has a
        leading axis of ``n`` problems (frames of a time series, tiles, a parameter sweep).
        Each problem is solved as if run alone, with its own optimizer state, step sizes and
        mini-batch key (``jax.random.split(key, n)``); the steps are ``jax.vmap``-ed, so small
        problems share each kernel launch. A problem that diverges is frozen at its last
        parameters with a finite objective while the others go on; the run ends when every
        problem has stopped or ``iterations`` are done.

        Takes ``run``'s arguments except ``devices`` (one device). TensorBoard receives each
        scalar's mean over the problems still running as ``<name>`` and its maximum as
        ``<name>/max``; callbacks receive the parameters with their problem axis and the
        terms as ``(n,)`` arrays; ``tol`` stops the run when every running problem changed
        by less than ``tol``.

        Returns:
            :class:`~calcil.Result` whose ``params`` keep the problem axis, whose ``history``
            values are ``(steps, n)`` (NaN after a problem stopped), and whose ``status``
            and ``steps`` are lists with one entry per problem.
"""


def _signature(tree):
    """Structure, shapes and dtypes: what a compiled program depends on (read from the
    arrays' metadata: nothing is transferred)."""
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    return treedef, tuple((np.shape(x), str(_dtype(x))) for x in leaves)


def _dtype(x):
    dtype = getattr(x, "dtype", None)
    return np.result_type(x) if dtype is None else dtype


def _problem_count(init, data) -> int:
    """The common length of the leading axis of every leaf (``run_batch``)."""
    from calcil.objective import leaf_paths

    sizes = {}
    for name, tree in (("init", init), ("data", data)):
        for path, leaf in zip(leaf_paths(tree), jax.tree_util.tree_leaves(tree), strict=True):
            shape = np.shape(leaf)
            sizes[f"{name}[{path!r}]" if path else name] = shape[0] if shape else None
    counts = set(sizes.values())
    if len(counts) != 1 or None in counts:
        listed = ", ".join(f"{k}: {v}" for k, v in sizes.items())
        raise ValueError(
            "run_batch solves independent problems stacked along the leading axis of every "
            f"leaf of init and data, so all leading axes must have the same length (one entry "
            f"per problem); got leading lengths {listed}. Stack each problem's arrays with "
            "jnp.stack, or use run for a single problem."
        )
    return counts.pop()


@functools.cache
def _default_key():
    """``jax.random.key(0)``, made once (a run copies it into its state)."""
    return jax.random.key(0)


@dataclasses.dataclass
class _Setup:
    """What a run of these shapes reuses: the plan, its constants, the compiled programs."""

    plan: Any
    fixed: Any
    program: ChunkProgram
    initial: Callable
    watched: list | None = None  # the data the constants were computed from, when they depend

    def valid_for(self, data) -> bool:
        """Whether the constants hold for ``data``: always, or for the same (immutable)
        arrays they were computed from."""
        if self.watched is None:
            return True
        leaves = jax.tree_util.tree_leaves(data)
        return len(leaves) == len(self.watched) and all(
            isinstance(a, jax.Array) and a is b for a, b in zip(leaves, self.watched, strict=True)
        )


class IterativeSolver:
    """Base of the solvers; subclasses implement ``_analyse``, ``_initial`` and ``_step``."""

    def __init__(self):
        self._setups: dict = {}  # signature -> _Setup
        self._compiled: dict = {}  # (plan, mesh, batched) -> ChunkProgram
        self._starts: dict = {}  # (plan, mesh, batched) -> compiled initial state
        self.traces = 0  # how often a chunk was traced (compiled): for tests and benchmarks

    # ------------------------------------------------------------------ subclass hooks
    def _analyse(self, init, data, batch_size, axis, batched=False) -> tuple[Any, Any]:
        """Validate the problem's structure; return ``(plan, fixed)``: hashable static choices
        and a pytree of constants that depend only on them (both reused by every run of these
        shapes). ``axis`` is ``None`` on one device; on several it names the mesh axis the
        data is split over (``_step`` must reduce its data terms over it). With ``batched``,
        ``init`` and ``data`` are one problem of a ``run_batch``, standing for all."""
        raise NotImplementedError

    def _run_constants(self, plan, fixed, init, data, batched: bool):
        """Per-run values ``_initial`` needs that cannot be traced (checked on the host);
        with ``batched``, one per problem along a leading axis. Default: none."""
        return None

    def _initial(self, plan, fixed, run, init, data, key) -> tuple[Any, Any]:
        """``(inner, fast_data)`` at the start (traced): the solver's own state, and what the
        steps see instead of ``data`` (``None``: the data itself)."""
        raise NotImplementedError

    def _step(self, plan, params, inner, step, data, report) -> tuple[Any, Any, dict]:
        """One iteration: ``(params, inner, outputs)``; ``outputs["loss/total"]`` at the input.

        ``report`` (a traced bool) is true on the chunk's last step, whose scalars are logged:
        diagnostics that cost a pass over the parameters (gradient norms) may be computed on
        those steps only (``lax.cond``) and be NaN on the others. A step that can tell that
        the run must stop reports a positive int32 ``outputs["_stop"]`` (0: go on) and leaves
        the parameters unchanged from then on (:meth:`_stop_reason` names it).
        """
        raise NotImplementedError

    def _stop_reason(self, code: int, step: int, terms: dict) -> tuple[str, str]:
        """``(status, message)`` for a positive ``"_stop"`` code at ``step``."""
        raise NotImplementedError

    def _prepare(self, init, data, batch_size, key, axis=None):
        """``(plan, inner, step data)`` for one problem, computed eagerly (for inspection)."""
        plan, fixed = self._analyse(init, data, batch_size, axis)
        run = self._run_constants(plan, fixed, init, data, False)
        key = jax.random.key(0) if key is None else key
        inner, fast_data = self._initial(plan, fixed, run, init, data, key)
        return plan, inner, data if fast_data is None else fast_data

    # ------------------------------------------------------------------ setup (cached)
    def _setup(self, init, data, batch_size, axis, mesh, problems) -> _Setup:
        """The plan, constants and programs for these shapes: analysed once, reused by
        later runs. When the forward model builds its operator from the data (the fast
        path's factors then hold for these data only), the analysis is reused for the same
        data arrays only."""
        batched = problems is not None
        key = (_signature(init), _signature(data), batch_size, axis, mesh, problems)
        setup = self._setups.get(key)
        if setup is not None and not setup.valid_for(data):
            setup = None
        if setup is not None:
            return setup
        one = (lambda t: jax.tree_util.tree_map(lambda x: x[0], t)) if batched else (lambda t: t)
        plan, fixed = self._analyse(one(init), one(data), batch_size, axis, batched)
        program_key = (plan, mesh, batched)
        if program_key not in self._compiled:
            self._compiled[program_key] = ChunkProgram(self, plan, mesh, batched)
            self._starts[program_key] = self._start_program(plan, batched)
        fast = getattr(plan, "fast", None)
        watched = jax.tree_util.tree_leaves(data) if fast is not None and fast.from_data else None
        setup = _Setup(plan, fixed, self._compiled[program_key], self._starts[program_key], watched)
        self._setups[key] = setup
        return setup

    def _start_program(self, plan, batched):
        """``(fixed, run, init, data, key) -> (state, fast data)`` compiled: the initial state
        (every buffer the run's own, so the chunk may take it over) and the steps' data."""

        def start(fixed, run, init, data, key):
            inner, fast_data = self._initial(plan, fixed, run, init, data, key)
            zero = jnp.zeros((), jnp.int32)
            return fresh_state(init, inner, zero, zero), fast_data

        if batched:
            start = jax.vmap(start, in_axes=(None, 0, 0, 0, 0))
        return jax.jit(start)

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
        options = run_options(**{k: v for k, v in locals().items() if k not in _POSITIONAL})
        return self._locked(init, data, options, batched=False)

    def run_batch(
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
    ) -> Result:
        options = run_options(**{k: v for k, v in locals().items() if k not in _POSITIONAL})
        return self._locked(init, data, options, batched=True)

    def _locked(self, init, data, options: RunOptions, batched: bool) -> Result:
        """The run, holding the lock on its ``log_dir`` (one writer per directory)."""
        if options.log_dir is None or jax.process_index() != 0:  # several processes: one writes
            return self._execute(init, data, options, batched)
        from calcil.logs import check_writable
        from calcil.solvers._lock import DirectoryLock

        log_dir = check_writable(options.log_dir)  # before any compiling
        options = dataclasses.replace(options, log_dir=log_dir)
        with DirectoryLock(log_dir, type(self).__name__):
            return self._execute(init, data, options, batched)

    def _execute(self, init, data, opts: RunOptions, batched: bool) -> Result:
        mesh, device = _sharding.make_mesh(opts.devices)
        axis = None
        if mesh is not None:
            _sharding.check_data(data, mesh, opts.batch_size)
            data, axis = _sharding.place_data(data, mesh), _sharding.AXIS
        elif device is not None:
            init, data = jax.device_put((init, data), device)

        def place(tree):
            if mesh is not None:
                return _sharding.place_state(tree, mesh)
            return jax.device_put(tree, device)

        problems = _problem_count(init, data) if batched else None
        setup = self._setup(init, data, opts.batch_size, axis, mesh, problems)
        self.objective.check_data(data)  # before anything is compiled
        run = self._run_constants(setup.plan, setup.fixed, init, data, batched)
        key = _default_key() if opts.key is None else opts.key
        if batched:
            key = jax.random.split(key, problems)
        state, fast_data = setup.initial(setup.fixed, run, init, data, key)
        step_data = data if fast_data is None else fast_data
        if mesh is not None:
            state = place(state)
        loop = RunLoop(self, setup.program, step_data, opts, batched, place)
        return loop.run(state, setup.plan.fast_path)

    def _divergence_message(self, outputs, start, index, at_start) -> str:
        """Why the run diverged: the objective at step ``start + index`` was not finite
        (``index`` < the chunk's steps), or the update before it made the parameters
        non-finite (``outputs`` has no row ``index``)."""
        n = len(outputs.get("loss/total", ()))
        if index < n:
            culprits = [
                k
                for k, v in outputs.items()
                if k.startswith(("loss/", "prior/"))
                and k != "loss/total"
                and not np.isfinite(np.asarray(v)[index])
            ]
            what = f"the objective became non-finite at step {start + index} (terms "
            what += f"{culprits or ['loss/total']})"
            if at_start:
                return (
                    f"{what}, at the parameters the run started from: they are returned "
                    "unchanged. Check init and the data for NaN or inf, and the forward "
                    "model for log, sqrt or division at zero at these parameters."
                )
        else:
            what = (
                f"the update of step {start + index - 1} made the parameters (or their "
                "objective) non-finite"
            )
        return (
            f"{what}; the parameters are the last ones with a finite objective. Lower the "
            "learning rate, or check the forward model for log, sqrt or division at zero."
        )


_POSITIONAL = ("self", "init", "data", "__class__")
IterativeSolver.run.__doc__ = "Run ``iterations`` steps from ``init``.\n" + RUN_ARGS_DOC
IterativeSolver.run_batch.__doc__ = (
    "Run ``iterations`` steps of each of a batch of problems.\n" + RUN_BATCH_DOC
)

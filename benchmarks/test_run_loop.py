"""Run-loop benchmarks: what ``GradientSolver.run`` and ``run_batch`` cost around the steps.

The problem is the TV-regularised deconvolution of ``test_solver.py`` (its objective, solver
and hand-written loop are imported from there): ``x_true`` is ``skimage.data.camera()``
scaled to [0, 1] (float32) and block-averaged to ``n x n``, ``A = Convolve(gaussian_psf(15,
2.0), (n, n), "circular")``, ``y = A(x_true) + 0.01 * noise``, the objective ``0.5 ||A x -
y||^2 + 1e-3 * TV_eps(x)`` (``eps = 1e-3``), minimised from ``x = 0`` by ``optax.adam(1e-2)``.
On calcil's side the least-squares fast path is in use, as in ``test_solver.py``. The
hand-written side (``impl="jax"``) is ``make_hand_solve(k)``: one ``jax.jit`` of a ``k``-step
``lax.scan`` of ``value_and_grad`` + optax update, returning the final ``x`` and the losses.

Groups, each timed beside hand-written JAX in the same run (``report.py`` gives calcil/jax):

- ``run-fixed-cost-64``: the fixed cost of a repeated run, at 64^2 where a step costs far
  less than 1 ms. ``calcil``: ``solver.run(init, data, iterations=1, log_every=1,
  progress=False)`` on a warmed solver, and ``block_until_ready`` of the result's params: the
  whole call (cached setup, the initial state, one chunk dispatched, its scalars read back,
  the history and the ``Result`` built). ``jax``: one call of ``make_hand_solve(1)`` (the
  same work in one jitted call: the optimizer initialised and one step taken from ``x = 0``)
  and ``block_until_ready``. Rows record ``per_call_ms`` and ``calls_per_second``. After
  its timed block, each calcil row also times ``PAIRS`` interleaved (calcil, jax) calls, so
  that load hits both alike, and records the median of the per-pair differences as
  ``fixed_cost_ms`` (target: at most ``FIXED_COST_TARGET_MS`` = 1 ms; also
  ``paired_calcil_ms``, ``paired_jax_ms``). The test asserts that ``solver.traces`` did not
  grow while timing.
- ``run-log-every-512``: the cost of log points. 300 steps at 512^2 per timed call:
  ``calcil-log5`` (``log_every=5``: 60 chunks), ``calcil-log50`` (6 chunks) and ``calcil``
  (``log_every=300``: one chunk, two dispatches since a dispatch holds at most
  ``CAPACITY = 256`` steps), against ``jax`` (the 300-step scan). One solver serves the three
  calcil variants (the chunk length is traced: it compiles once, asserted). Before timing,
  the three variants must have taken 300 steps and agree on the final ``x`` (``rtol=1e-3``,
  ``atol=1e-3 max|x|``) and the 300 losses (``rtol=1e-4``), and calcil must agree with the
  hand-written loop (``rtol=1e-3``). Not bitwise: on XLA:CPU's multi-threaded runtime a
  run of several dispatches is not reproducible to the last bit from one call to the next
  (with ``XLA_FLAGS=--xla_cpu_multi_thread_eigen=false`` it is), and this TV iteration
  amplifies such differences to about 1e-4 of ``max|x|`` by step 300. Target:
  ``calcil-log5`` / ``calcil`` at most 1.15 (``report.py --candidate calcil-log5
  --baseline calcil``). Rows record ``log_points``, ``dispatches``, ``per_iteration_ms``,
  ``iterations_per_second`` and ``peak_bytes`` (the compiled chunk's, or the scan's).
- ``run-batch-256``: throughput of ``BATCH_PROBLEMS = 8`` independent 256^2 problems (the
  same object, different noise in each ``y``), ``BATCH_STEPS = 50`` steps. ``calcil``:
  ``solver.run_batch(init, data, iterations=50, log_every=50, progress=False)`` with every
  leaf stacked along a leading problem axis; ``jax``: ``jax.jit(jax.vmap(make_hand_solve(50),
  in_axes=(0, None, 0)))`` over the same problems (the kernel spectrum shared). Before
  timing, every problem's final ``x`` and losses must agree between the two sides, and with
  a single-problem ``run`` of the first problem. Rows record ``problem_steps_per_second``;
  after each block of timed batch runs, the same impl solves the first problem alone
  (``solver.run`` / ``make_hand_solve(50)``, ``rounds`` times) and the row records
  ``single_problem_steps_per_second`` and ``batching_gain`` (batched / single throughput).
  Target: calcil's throughput at least the hand-written one (calcil/jax at most 1.0).
  ``peak_bytes``: calcil's batched chunk, the hand-written vmapped scan.
- ``run-memory-256``, ``run-memory-512``: peak memory of the compiled program with the
  state donated. The rows time a ``MEMORY_STEPS``-step run (calcil in one chunk, against the
  hand-written scan) for the record; what they are for is ``extra_info``: ``peak_bytes``
  (argument + output + temp - alias, from XLA's ``memory_analysis()``, see
  ``conftest.memory_info``) and its parts, ``alias_bytes`` being what donation gives back.
  calcil's figure is its compiled chunk's (``conftest.solver_memory_info``), the
  hand-written one the whole jitted scan's. Two sizes, so that ``report.py --scaling``
  prints the peaks.

Rows in later blocks of ``run-log-every-512`` and ``run-batch-256`` also record figures over
the blocks timed so far, pooled per impl (``ratio_to_one_chunk``, ``log_point_ms``,
``throughput_ratio_to_jax``). The impls of each group run in alternating blocks (the order
rotated, so that each impl runs first as often as the others) and every side is compiled
and run before its first timed block; ``CALCIL_BENCH_ROUNDS`` scales the rounds per block.
The file takes about a minute on 2 CPU cores::

    python -m pytest benchmarks/test_run_loop.py --benchmark-json=benchmarks/results-run.json
    python benchmarks/report.py benchmarks/results-run.json
    python benchmarks/report.py benchmarks/results-run.json \
        --candidate calcil-log5 --baseline calcil     # log_every=5 against one chunk
    python benchmarks/report.py benchmarks/results-run.json --scaling      # peak memory (MiB)
"""

import copy
import math
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import memory_info, scaled_rounds, solver_memory_info, time_runs
from test_solver import NOISE, make_hand_solve, make_solver

import calcil as cc
from calcil.benchmarking.standard import circular_spectrum
from calcil.solvers._chunk import CAPACITY

FIXED_N = 64
FIXED_ROUNDS_PER_BLOCK = 250
PAIRS = 200  # interleaved (calcil, jax) calls per calcil block of run-fixed-cost
FIXED_COST_TARGET_MS = 1.0

LOG_N = 512
LOG_ITERATIONS = 300
LOG_EVERY = {"calcil-log5": 5, "calcil-log50": 50, "calcil": LOG_ITERATIONS}
LOG_ROUNDS_PER_BLOCK = 2  # x4 blocks = 8 timed 300-step runs per impl
LOG_RATIO_TARGET = 1.15  # calcil-log5 / calcil

BATCH_N = 256
BATCH_PROBLEMS = 8
BATCH_STEPS = 50
BATCH_ROUNDS_PER_BLOCK = 3  # x4 blocks = 12 timed batch runs per impl

MEMORY_SIZES = (256, 512)
MEMORY_STEPS = 20
MEMORY_ROUNDS_PER_BLOCK = 3


def blocks(impls, count):
    """``(block, impl)`` for ``count`` blocks, the order of ``impls`` rotated by one each."""
    return [(b, impls[(b + i) % len(impls)]) for b in range(count) for i in range(len(impls))]


# ---------------------------------------------------------------------- the problems
def camera(n: int) -> jax.Array:
    """``skimage.data.camera()`` in [0, 1] (float32), block-averaged to ``n x n``."""
    import skimage.data

    image = skimage.data.camera().astype(np.float32) / 255.0
    f = image.shape[0] // n
    assert f * n == image.shape[0], n
    return jnp.asarray(image.reshape(n, f, n, f).mean(axis=(1, 3)))


class Deconvolution:
    """The deconvolution at ``n x n``: one problem, or ``problems`` stacked along a leading
    axis (the same object, a different noise draw in each ``y``)."""

    def __init__(self, psf, n: int, problems: int | None = None):
        self.n, self.problems = n, problems
        self.x_true = camera(n)
        self.A = cc.operators.Convolve(psf, (n, n), mode="circular")
        self.K = circular_spectrum(psf, (n, n))
        shape = (n, n) if problems is None else (problems, n, n)
        noise = jax.random.normal(jax.random.key(1), shape, jnp.float32)
        self.y = self.A(self.x_true) + NOISE * noise
        self.x0 = jnp.zeros(shape, jnp.float32)
        self.init, self.data = {"x": self.x0}, {"y": self.y}

    def first(self) -> "Deconvolution":
        """The first problem of a stack, alone."""
        one = copy.copy(self)
        one.problems, one.y, one.x0 = None, self.y[0], self.x0[0]
        one.init, one.data = {"x": one.x0}, {"y": one.y}
        return one


def assert_close(x, ref, rtol=1e-3):
    """``x`` and ``ref`` agree to ``rtol``, with ``atol = rtol * max|ref|``."""
    x, ref = np.asarray(x), np.asarray(ref)
    np.testing.assert_allclose(x, ref, rtol=rtol, atol=rtol * float(np.abs(ref).max()))


def median_of(timings: dict, impl: str) -> float | None:
    data = timings.get(impl)
    return statistics.median(data) if data else None


def per_call(fn, rounds: int) -> float:
    """The median wall time (s) of ``rounds`` calls of ``fn`` (outside pytest-benchmark)."""
    times = []
    for _ in range(rounds):
        tic = time.perf_counter()
        fn()
        times.append(time.perf_counter() - tic)
    return statistics.median(times)


# ---------------------------------------------------------------------- run-fixed-cost
class FixedCost:
    """A warmed solver and the hand-written one-step loop at ``FIXED_N``, checked to agree."""

    def __init__(self, psf):
        self.p = p = Deconvolution(psf, FIXED_N)
        self.solver = make_solver(p.A)
        self.hand = make_hand_solve(1)
        result = self.run_calcil()
        result = self.run_calcil()  # a second run: the cached setup
        x_jax, losses = self.run_jax()
        assert self.solver.traces == 1, self.solver.traces
        assert result.fast_path.startswith("used:"), result.fast_path
        assert result.status == "max_iterations" and result.steps == 1
        assert_close(result.params["x"], x_jax)
        assert_close(result.history["loss/total"], losses)

    def run_calcil(self):
        p = self.p
        result = self.solver.run(p.init, p.data, iterations=1, log_every=1, progress=False)
        jax.block_until_ready(result.params)
        return result

    def run_jax(self):
        return jax.block_until_ready(self.hand(self.p.x0, self.p.K, self.p.y))


@pytest.fixture(scope="module")
def fixed_cost(inputs):
    return FixedCost(inputs.psf)


@pytest.mark.parametrize(("block", "impl"), blocks(("calcil", "jax"), 4))
def test_fixed_cost(benchmark, describe_row, fixed_cost, block, impl):
    f = fixed_cost
    describe_row(
        group=f"run-fixed-cost-{FIXED_N}",
        impl=impl,
        size=FIXED_N,
        block=block,
        iterations=1,
        log_every=1,
        optimizer="adam(1e-2)",
    )
    fn = f.run_calcil if impl == "calcil" else f.run_jax
    traces = f.solver.traces
    benchmark.pedantic(
        fn,
        rounds=scaled_rounds(FIXED_ROUNDS_PER_BLOCK, minimum=10),
        warmup_rounds=5,
        iterations=1,
    )
    median = benchmark.stats.stats.median
    benchmark.extra_info["per_call_ms"] = 1e3 * median
    benchmark.extra_info["calls_per_second"] = 1 / median
    if impl == "calcil":
        differences, calcil, hand = [], [], []
        for _ in range(scaled_rounds(PAIRS, minimum=10)):
            a, b = per_call(f.run_calcil, 1), per_call(f.run_jax, 1)
            calcil.append(a)
            hand.append(b)
            differences.append(a - b)
        fixed = 1e3 * statistics.median(differences)
        benchmark.extra_info.update(
            paired_calcil_ms=1e3 * statistics.median(calcil),
            paired_jax_ms=1e3 * statistics.median(hand),
            fixed_cost_ms=fixed,
            fixed_cost_target_ms=FIXED_COST_TARGET_MS,
            fixed_cost_within_target=fixed <= FIXED_COST_TARGET_MS,
        )
    assert f.solver.traces == traces == 1, (traces, f.solver.traces)  # nothing compiled


# ---------------------------------------------------------------------- run-log-every
class LogEvery:
    """One solver run with three ``log_every`` values, and the hand-written 300-step scan."""

    def __init__(self, psf):
        self.p = p = Deconvolution(psf, LOG_N)
        self.solver = make_solver(p.A)
        self.hand = make_hand_solve(LOG_ITERATIONS)
        x_jax, losses_jax = self.run_jax()
        results = {impl: self.run_calcil(impl) for impl in LOG_EVERY}
        assert self.solver.traces == 1, self.solver.traces  # one program for every length
        one = results["calcil"]
        for impl, result in results.items():
            assert result.status == "max_iterations" and result.steps == LOG_ITERATIONS, impl
            assert len(result.history["loss/total"]) == LOG_ITERATIONS, impl
            # the same steps in the same program, whatever the chunking (not bitwise: see
            # the module docstring)
            assert_close(result.params["x"], one.params["x"])
            assert_close(result.history["loss/total"], one.history["loss/total"], rtol=1e-4)
        assert_close(one.params["x"], x_jax)
        assert_close(one.history["loss/total"], losses_jax)
        # a real problem: the reconstruction beats the blurred data
        err = float(jnp.linalg.norm(x_jax - p.x_true))
        assert err < float(jnp.linalg.norm(p.y - p.x_true)), err
        self.peak = {
            "calcil": solver_memory_info(self.solver, p.init, p.data)["peak_bytes"],
            "jax": memory_info(self.hand, (p.x0, p.K, p.y))["peak_bytes"],
        }
        assert self.solver.traces == 1, self.solver.traces
        self.timings: dict[str, list[float]] = {}

    def run_calcil(self, impl):
        p = self.p
        result = self.solver.run(
            p.init,
            p.data,
            iterations=LOG_ITERATIONS,
            log_every=LOG_EVERY[impl],
            progress=False,
        )
        jax.block_until_ready(result.params)
        return result

    def run_jax(self):
        return jax.block_until_ready(self.hand(self.p.x0, self.p.K, self.p.y))


@pytest.fixture(scope="module")
def log_every(inputs):
    return LogEvery(inputs.psf)


@pytest.mark.parametrize(("block", "impl"), blocks((*LOG_EVERY, "jax"), 4))
def test_log_every(benchmark, describe_row, log_every, block, impl):
    s = log_every
    info = {}
    if impl in LOG_EVERY:
        every = LOG_EVERY[impl]
        lengths = [min(every, LOG_ITERATIONS - start) for start in range(0, LOG_ITERATIONS, every)]
        info = {
            "log_every": every,
            "log_points": len(lengths),
            "dispatches": sum(math.ceil(n / CAPACITY) for n in lengths),
        }
    describe_row(
        group=f"run-log-every-{LOG_N}",
        impl=impl,
        size=LOG_N,
        block=block,
        iterations=LOG_ITERATIONS,
        optimizer="adam(1e-2)",
        **info,
    )

    def fn():
        return s.run_jax() if impl == "jax" else s.run_calcil(impl)

    time_runs(
        benchmark,
        fn,
        scaled_rounds(LOG_ROUNDS_PER_BLOCK, minimum=1),
        LOG_ITERATIONS,
        s.peak["jax" if impl == "jax" else "calcil"],
        solver=None if impl == "jax" else s.solver,  # asserts traces == 1
    )
    s.timings.setdefault(impl, []).extend(benchmark.stats.stats.data)
    one = median_of(s.timings, "calcil")
    mine = median_of(s.timings, impl)
    if impl in LOG_EVERY and one is not None:  # pooled over the blocks timed so far
        benchmark.extra_info["ratio_to_one_chunk"] = mine / one
        if impl == "calcil-log5":
            benchmark.extra_info["ratio_target"] = LOG_RATIO_TARGET
        if info["log_points"] > 1:
            extra = info["log_points"] - 1
            benchmark.extra_info["log_point_ms"] = 1e3 * (mine - one) / extra


# ---------------------------------------------------------------------- run-batch
class Batch:
    """``BATCH_PROBLEMS`` stacked problems: ``run_batch`` and the hand-written vmapped scan,
    and the first problem alone on both sides; all checked to agree."""

    def __init__(self, psf):
        self.p = p = Deconvolution(psf, BATCH_N, BATCH_PROBLEMS)
        self.single = p.first()
        self.solver = make_solver(p.A)
        self.single_solver = make_solver(p.A)
        solve = make_hand_solve(BATCH_STEPS)
        self.hand = jax.jit(jax.vmap(solve, in_axes=(0, None, 0)))
        self.hand_single = solve

        x_jax, losses_jax = self.run_jax()
        result = self.run_calcil()
        one = self.run_calcil_single()
        x_one, losses_one = self.run_jax_single()
        assert self.solver.traces == 1 and self.single_solver.traces == 1
        assert result.status == ["max_iterations"] * BATCH_PROBLEMS, result.status
        assert result.steps == [BATCH_STEPS] * BATCH_PROBLEMS, result.steps
        assert result.params["x"].shape == p.x0.shape
        assert result.history["loss/total"].shape == (BATCH_STEPS, BATCH_PROBLEMS)
        for b in range(BATCH_PROBLEMS):
            assert_close(result.params["x"][b], x_jax[b])
            assert_close(result.history["loss/total"][:, b], losses_jax[b])
        # each problem is solved as if alone: the first against single runs of it
        assert_close(result.params["x"][0], one.params["x"])
        assert_close(result.history["loss/total"][:, 0], one.history["loss/total"])
        assert_close(x_one, x_jax[0])
        assert_close(losses_one, losses_jax[0])
        # the problems differ
        assert float(jnp.abs(x_jax[0] - x_jax[1]).max()) > 0
        self.peak = {
            "calcil": solver_memory_info(self.solver, p.init, p.data, BATCH_PROBLEMS)["peak_bytes"],
            "jax": memory_info(self.hand, (p.x0, p.K, p.y))["peak_bytes"],
        }
        assert self.solver.traces == 1, self.solver.traces
        self.timings: dict[str, list[float]] = {}

    def run_calcil(self):
        p = self.p
        result = self.solver.run_batch(
            p.init, p.data, iterations=BATCH_STEPS, log_every=BATCH_STEPS, progress=False
        )
        jax.block_until_ready(result.params)
        return result

    def run_jax(self):
        return jax.block_until_ready(self.hand(self.p.x0, self.p.K, self.p.y))

    def run_calcil_single(self):
        one = self.single
        result = self.single_solver.run(
            one.init, one.data, iterations=BATCH_STEPS, log_every=BATCH_STEPS, progress=False
        )
        jax.block_until_ready(result.params)
        return result

    def run_jax_single(self):
        one = self.single
        return jax.block_until_ready(self.hand_single(one.x0, one.K, one.y))


@pytest.fixture(scope="module")
def batch(inputs):
    return Batch(inputs.psf)


@pytest.mark.parametrize(("block", "impl"), blocks(("calcil", "jax"), 4))
def test_batch(benchmark, describe_row, batch, block, impl):
    s = batch
    describe_row(
        group=f"run-batch-{BATCH_N}",
        impl=impl,
        size=BATCH_N,
        block=block,
        problems=BATCH_PROBLEMS,
        iterations=BATCH_STEPS,
        log_every=BATCH_STEPS,
        optimizer="adam(1e-2)",
        peak_bytes=s.peak[impl],
    )
    if impl == "calcil":
        fn, single = s.run_calcil, s.run_calcil_single
    else:
        fn, single = s.run_jax, s.run_jax_single
    traces = (s.solver.traces, s.single_solver.traces)
    rounds = scaled_rounds(BATCH_ROUNDS_PER_BLOCK, minimum=1)
    benchmark.pedantic(fn, rounds=rounds, warmup_rounds=0, iterations=1)
    median = benchmark.stats.stats.median
    problem_steps = BATCH_PROBLEMS * BATCH_STEPS / median
    # the first problem alone, right after, so that the same load hits both
    single_rate = BATCH_STEPS / per_call(single, max(rounds, 3))
    assert (s.solver.traces, s.single_solver.traces) == traces == (1, 1), traces
    benchmark.extra_info.update(
        per_iteration_ms=1e3 * median / BATCH_STEPS,
        problem_steps_per_second=problem_steps,
        single_problem_steps_per_second=single_rate,
        batching_gain=problem_steps / single_rate,
    )
    s.timings.setdefault(impl, []).extend(benchmark.stats.stats.data)
    calcil, jax_ = median_of(s.timings, "calcil"), median_of(s.timings, "jax")
    if calcil is not None and jax_ is not None:  # pooled over the blocks timed so far
        benchmark.extra_info["throughput_ratio_to_jax"] = jax_ / calcil


# ---------------------------------------------------------------------- run-memory
class Memory:
    """A ``MEMORY_STEPS``-step run at ``n``: calcil's chunk and the hand-written scan, with
    the memory of their compiled programs."""

    def __init__(self, psf, n):
        self.p = p = Deconvolution(psf, n)
        self.solver = make_solver(p.A)
        self.hand = make_hand_solve(MEMORY_STEPS)
        result = self.run_calcil()
        x_jax, _ = self.run_jax()
        assert_close(result.params["x"], x_jax)
        self.memory = {
            "calcil": solver_memory_info(self.solver, p.init, p.data),
            "jax": memory_info(self.hand, (p.x0, p.K, p.y)),
        }
        assert self.solver.traces == 1, self.solver.traces

    def run_calcil(self):
        p = self.p
        result = self.solver.run(
            p.init, p.data, iterations=MEMORY_STEPS, log_every=MEMORY_STEPS, progress=False
        )
        jax.block_until_ready(result.params)
        return result

    def run_jax(self):
        return jax.block_until_ready(self.hand(self.p.x0, self.p.K, self.p.y))


@pytest.fixture(scope="module")
def memory(inputs):
    """``memory(n)``: the :class:`Memory` problem at ``n``, built on first use."""
    built = {}

    def get(n):
        if n not in built:
            built[n] = Memory(inputs.psf, n)
        return built[n]

    return get


@pytest.mark.parametrize(("block", "impl"), blocks(("calcil", "jax"), 2))
@pytest.mark.parametrize("n", MEMORY_SIZES)
def test_memory(benchmark, describe_row, memory, n, block, impl):
    s = memory(n)
    own, other = s.memory[impl], s.memory["jax" if impl == "calcil" else "calcil"]
    describe_row(
        group=f"run-memory-{n}",
        impl=impl,
        size=n,
        block=block,
        iterations=MEMORY_STEPS,
        log_every=MEMORY_STEPS,
        optimizer="adam(1e-2)",
        **own,
        peak_ratio=own["peak_bytes"] / other["peak_bytes"] if impl == "calcil" else 1.0,
    )
    fn = s.run_calcil if impl == "calcil" else s.run_jax
    time_runs(
        benchmark,
        fn,
        scaled_rounds(MEMORY_ROUNDS_PER_BLOCK, minimum=1),
        MEMORY_STEPS,
        own["peak_bytes"],
        solver=s.solver if impl == "calcil" else None,
    )

"""Solver benchmarks: ``GradientSolver.run`` against a hand-written ``jax.jit`` + ``lax.scan`` loop.

The problem is TV-regularised deconvolution at 512^2: ``x_true`` is ``skimage.data.camera()``
scaled to [0, 1] (float32), ``A = Convolve(gaussian_psf(15, 2.0), (512, 512), "circular")``,
``y = A(x_true) + 0.01 * noise``, and the objective is

    0.5 ||A x - y||^2 + 1e-3 * TV_eps(x),   TV_eps(x) = sum sqrt(|D_y x|^2 + |D_x x|^2 + eps^2)

with Neumann forward differences and ``eps = 1e-3``, minimised from ``x = 0`` by
``optax.adam(1e-2)`` for 300 steps. Every timed call is a whole 300-step run.

Group ``solver-tvdeconv-512``, three implementations timed in the same run:

- ``impl="jax"``: one ``jax.jit``-compiled function running the 300 steps as one ``lax.scan``
  of ``value_and_grad`` + optax update; the convolution is ``irfft2(K * rfft2(x))`` with the
  kernel spectrum ``K`` precomputed by hand, the TV uses ``jnp.diff(..., append=...)``. It
  returns the final ``x`` and the per-step losses.
- ``impl="calcil"``: ``cc.GradientSolver(obj, optimizer=optax.adam(1e-2)).run(..., iterations=300,
  log_every=50, progress=False)``: six 50-step chunks of one compiled program, the history
  read back after each while the next one runs. The solver is warmed by one run first; it
  compiles its chunk once and reuses it.
- ``impl="calcil-logging"``: the same with ``log_dir=`` a fresh directory per run (TensorBoard
  event files written every 50 steps; creating the files is part of the cost).

``report.py`` reports calcil/jax, and calcil-logging/jax as an extra row of the group;
``report.py --candidate calcil-logging --baseline calcil`` gives the logging overhead alone.
The three are timed in six blocks, one per order of the three (each impl runs first, second
and third twice), so that load from other processes hits every side alike.

Group ``solver-compile-512``: the latency to a first result, compilation included, for a run
of ``COMPILE_STEPS`` steps. calcil: build a fresh ``GradientSolver`` and run it (tracing,
compiling the chunk, the steps); jax: ``jax.jit`` a freshly built closure of the same loop and
call it. Every round builds new functions, so nothing comes from JAX's in-memory caches.

Before timing, the final ``x`` and the loss histories of calcil and the hand-written loop are
checked to agree, so both sides solve the same problem.
"""

import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import (
    memory_info,
    scaled_rounds,
    solver_peak_bytes,
    time_runs,
)

import calcil as cc
from calcil.benchmarking.standard import circular_spectrum

N = 512
ITERATIONS = 300
LOG_EVERY = 50
COMPILE_STEPS = 5
LAM = 1e-3  # TV weight
EPS = 1e-3  # TV smoothing
LR = 1e-2
NOISE = 0.01

IMPLS = ("calcil", "calcil-logging", "calcil-autodiff", "jax")
# Four blocks, the impls rotated: each runs first, second, third and fourth once.
BLOCKS = [(b, IMPLS[(b + i) % len(IMPLS)]) for b in range(len(IMPLS)) for i in range(len(IMPLS))]
ROUNDS_PER_BLOCK = 4  # x4 blocks = 16 timed 300-step runs per impl at CALCIL_BENCH_ROUNDS=1
# The larger problem: 2048^2 (the camera upsampled 4x), fewer steps, calcil and jax.
N_LARGE = 2048
ITERATIONS_LARGE = int(os.environ.get("CALCIL_BENCH_LARGE_ITERATIONS", "50"))
LARGE_BLOCKS = [(b, impl) for b in range(2) for impl in (("calcil", "jax"), ("jax", "calcil"))[b]]
# Compile latency: 3 alternating blocks (calcil, jax, jax, calcil, calcil, jax) of one round.
COMPILE_BLOCKS = [(0, "calcil"), (0, "jax"), (1, "jax"), (1, "calcil"), (2, "calcil"), (2, "jax")]


# ---------------------------------------------------------------------- hand-written side


def make_hand_solve(iterations: int):
    """A fresh ``jax.jit`` of ``solve(x0, K, y) -> (x, losses)``: ``iterations`` Adam steps
    in one ``lax.scan``. Each call builds new closures (for honest compile timings)."""
    opt = optax.adam(LR)

    def tv(x):
        dy = jnp.diff(x, axis=0, append=x[-1:])  # Neumann: the last difference is 0
        dx = jnp.diff(x, axis=1, append=x[:, -1:])
        return jnp.sum(jnp.sqrt(dy * dy + dx * dx + EPS**2))

    def loss(x, K, y):
        r = jnp.fft.irfft2(K * jnp.fft.rfft2(x), s=x.shape) - y
        return 0.5 * jnp.sum(r * r) + LAM * tv(x)

    def solve(x0, K, y):
        def step(carry, _):
            x, state = carry
            value, grad = jax.value_and_grad(loss)(x, K, y)
            updates, state = opt.update(grad, state, x)
            return (optax.apply_updates(x, updates), state), value

        (x, _), losses = jax.lax.scan(step, (x0, opt.init(x0)), length=iterations)
        return x, losses

    return jax.jit(solve)


# ---------------------------------------------------------------------- calcil side
def make_objective(A):
    return cc.Objective(
        lambda p, b: A(p["x"]),
        cc.losses.L2("y"),
        priors={"x": LAM * cc.priors.TV(eps=EPS)},
    )


def make_solver(A, fast_path=True):
    return cc.GradientSolver(make_objective(A), optimizer=optax.adam(LR), fast_path=fast_path)


# ---------------------------------------------------------------------- the problem
class Problem:
    """The deconvolution problem, both warmed-up implementations, checked to agree."""

    def __init__(self, psf, log_root, n=N, iterations=ITERATIONS):
        import skimage.data

        camera = skimage.data.camera().astype(np.float32) / 255.0
        self.x_true = jnp.asarray(np.kron(camera, np.ones((n // N, n // N), np.float32)))
        assert self.x_true.shape == (n, n)
        self.n, self.iterations = n, iterations
        self.A = cc.operators.Convolve(psf, (n, n), mode="circular")
        noise = jax.random.normal(jax.random.key(1), (n, n), jnp.float32)
        self.y = self.A(self.x_true) + NOISE * noise
        self.x0 = jnp.zeros((n, n), jnp.float32)
        self.K = circular_spectrum(psf, (n, n))
        self.log_root = log_root
        self.log_runs = 0

        self.hand = make_hand_solve(iterations)
        x_jax, losses_jax = jax.block_until_ready(self.hand(self.x0, self.K, self.y))
        self.solver = make_solver(self.A)
        self.autodiff = make_solver(self.A, fast_path=False)
        result = self.run_calcil()  # compiles the 50-step chunk
        assert self.solver.traces == 1, self.solver.traces
        assert result.fast_path.startswith("used: loss/l2 = 0.5 ||B x - U^H y||^2"), (
            result.fast_path
        )
        self.run_calcil(log=True)  # warms the TensorBoard writer too
        self.run_calcil(autodiff=True)

        # Honest comparison: the two solve the same problem, step by step.
        assert result.status == "max_iterations" and result.steps == iterations
        x_cc, x_ref = np.asarray(result.params["x"]), np.asarray(x_jax)
        scale = float(np.abs(x_ref).max())
        np.testing.assert_allclose(x_cc, x_ref, rtol=1e-3, atol=1e-3 * scale)
        np.testing.assert_allclose(result.history["loss/total"], losses_jax, rtol=1e-3)
        # ... and the problem is a real one: the reconstruction beats the blurred data (after
        # 300 steps; the short large run is only checked to make progress).
        err = float(jnp.linalg.norm(x_jax - self.x_true))
        if iterations >= ITERATIONS:
            assert err < float(jnp.linalg.norm(self.y - self.x_true)), err
        assert losses_jax[-1] < 0.5 * losses_jax[0], (losses_jax[0], losses_jax[-1])
        self.peak = {"jax": memory_info(self.hand, (self.x0, self.K, self.y))["peak_bytes"]}
        for impl, solver in (("calcil", self.solver), ("calcil-autodiff", self.autodiff)):
            self.peak[impl] = solver_peak_bytes(solver, {"x": self.x0}, {"y": self.y})

    def run_jax(self):
        return jax.block_until_ready(self.hand(self.x0, self.K, self.y))

    def run_calcil(self, log=False, autodiff=False):
        log_dir = None
        if log:  # a fresh directory per run: creating the event file is part of the cost
            self.log_runs += 1
            log_dir = self.log_root / f"run-{self.log_runs}"
        result = (self.autodiff if autodiff else self.solver).run(
            {"x": self.x0},
            {"y": self.y},
            iterations=self.iterations,
            log_every=LOG_EVERY,
            log_dir=log_dir,
            progress=False,
        )
        jax.block_until_ready(result.params)
        return result


@pytest.fixture(scope="module")
def problem(inputs, tmp_path_factory):
    return Problem(inputs.psf, tmp_path_factory.mktemp("solver-logs"))  # 15x15, sigma 2


@pytest.fixture(scope="module")
def large_problem(inputs, tmp_path_factory):
    return Problem(inputs.psf, tmp_path_factory.mktemp("large"), N_LARGE, ITERATIONS_LARGE)


@pytest.mark.parametrize(("block", "impl"), BLOCKS)
def test_tvdeconv(benchmark, describe_row, problem, block, impl):
    _time_solver(benchmark, describe_row, problem, block, impl, ROUNDS_PER_BLOCK)


@pytest.mark.parametrize(("block", "impl"), LARGE_BLOCKS)
def test_tvdeconv_large(benchmark, describe_row, large_problem, block, impl):
    _time_solver(benchmark, describe_row, large_problem, block, impl, 2)


def _time_solver(benchmark, describe_row, problem, block, impl, rounds):
    """Label the row ``solver-tvdeconv-<n>`` and time ``rounds`` whole runs of ``impl``."""
    describe_row(
        group=f"solver-tvdeconv-{problem.n}",
        impl=impl,
        size=problem.n,
        block=block,
        iterations=problem.iterations,
        log_every=LOG_EVERY,
        optimizer="adam(1e-2)",
    )
    if impl == "jax":
        fn = problem.run_jax
    else:
        log, autodiff = impl == "calcil-logging", impl == "calcil-autodiff"

        def fn():
            return problem.run_calcil(log=log, autodiff=autodiff)

    time_runs(
        benchmark,
        fn,
        scaled_rounds(rounds, minimum=1),
        problem.iterations,
        problem.peak.get(impl, problem.peak["calcil"]),
        solver=None if impl == "jax" else problem.solver,
    )


@pytest.mark.parametrize(("block", "impl"), COMPILE_BLOCKS)
def test_compile(benchmark, describe_row, problem, block, impl):
    describe_row(
        group="solver-compile-512", impl=impl, size=N, block=block, iterations=COMPILE_STEPS
    )
    traces = []

    def calcil_first_run():
        solver = make_solver(problem.A)
        result = solver.run(
            {"x": problem.x0},
            {"y": problem.y},
            iterations=COMPILE_STEPS,
            log_every=LOG_EVERY,
            progress=False,
        )
        jax.block_until_ready(result.params)
        traces.append(solver.traces)

    def jax_first_call():
        jax.block_until_ready(make_hand_solve(COMPILE_STEPS)(problem.x0, problem.K, problem.y))

    fn = calcil_first_run if impl == "calcil" else jax_first_call
    benchmark.pedantic(fn, rounds=scaled_rounds(1, minimum=1), warmup_rounds=0, iterations=1)
    assert all(t == 1 for t in traces), traces  # each round really compiled (once)
    if impl == "jax":
        # Compilation alone (lower + compile, no run) of the hand-written loop, for reference.
        tic = time.perf_counter()
        make_hand_solve(COMPILE_STEPS).lower(problem.x0, problem.K, problem.y).compile()
        benchmark.extra_info["lower_compile_s"] = time.perf_counter() - tic

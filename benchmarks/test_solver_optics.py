"""Solver benchmark through a propagator: an L2 fit of a complex field through AngularSpectrum.

The problem, at 512^2 on complex64: ``u_true = exp(i (pi/2) camera)`` (a phase object,
``camera = skimage.data.camera() / 255``), ``A = AngularSpectrum((512, 512), dx=0.5,
wavelength=0.5, distance=100.0)`` (µm; ``n_medium=1``, default band limit, no padding),
``y = A(u_true) + 0.01 (n1 + i n2)``, and the objective

    0.5 ||A u - y||^2 = 0.5 ||ifft2(H fft2(u)) - y||^2

minimised from ``u = 0`` by ``optax.adam(1e-2)`` for 100 steps. Every timed call is a whole
100-step run. The propagation is adequately sampled: the grid's highest frequency,
``1 / (2 dx) = 1`` cycle/µm, moves ``z f / sqrt(k^2 - f^2) = 57.7`` µm sideways over 100 µm,
less than half the 256 µm window, so the band limit removes nothing, ``|H| = 1`` everywhere,
and the operator is built without a sampling warning (checked).

Group ``solver-angular-spectrum-512``, three implementations timed in the same run:

- ``impl="jax"``: what a user writes by hand, one ``jax.jit``-compiled function running the
  100 steps as one ``lax.scan`` of ``value_and_grad`` of ``0.5 ||ifft2(H fft2(u)) - y||^2``
  + optax update (the conjugate of ``jax.grad`` as the descent direction of a complex
  variable); ``H`` is computed in NumPy from the textbook formula (``test_optics.py``) and
  passed as an argument. Autodiff through the propagator: two FFTs forward, two backward.
- ``impl="calcil"``: ``cc.GradientSolver(cc.Objective(lambda p, b: A(p["u"]),
  cc.losses.L2("y")), optimizer=optax.adam(1e-2)).run(..., iterations=100, log_every=50,
  progress=False)``. The least-squares fast path applies (``A = U B`` with ``U = F^H``,
  ``B = H F``): each step evaluates ``0.5 ||B u - U^H y||^2`` with ``U^H y`` computed once,
  one FFT forward and one backward.
- ``impl="calcil-autodiff"``: the same solver with ``fast_path=False`` (autodiff through
  ``A``, as the hand-written loop does).

The three are timed in six blocks of two runs, one per order of the three (each impl runs
first, second and third twice), which ``report.py`` pools; it reports calcil/jax, and
calcil-autodiff/jax as an extra row. ``report.py ... --candidate calcil --baseline
calcil-autodiff`` gives the fast path alone.

Before timing: the calcil run reports ``result.fast_path`` starting with ``"used:"`` (the
autodiff run ``"not used:"``), and the final field and the per-step losses of both calcil
runs agree with the hand-written loop, which makes real progress (the loss falls below a
tenth of its start).
"""

import itertools
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import memory_info, scaled_rounds, solver_peak_bytes, time_runs
from test_optics import angular_spectrum_transfer

import calcil as cc

N = 512
DX = 0.5  # µm
WAVELENGTH = 0.5
DISTANCE = 100.0
ITERATIONS = 100
LOG_EVERY = 50
LR = 1e-2
NOISE = 0.01
GROUP = f"solver-angular-spectrum-{N}"

IMPLS = ("calcil", "calcil-autodiff", "jax")
# Six blocks, one per order of the three impls (each runs first, second and third twice).
ORDERS = list(itertools.permutations(IMPLS))
BLOCKS = [(b, impl) for b, order in enumerate(ORDERS) for impl in order]
ROUNDS_PER_BLOCK = 2  # x6 blocks = 12 timed 100-step runs per impl at CALCIL_BENCH_ROUNDS=1


# ---------------------------------------------------------------------- hand-written side
def make_hand_solve(iterations: int):
    """``jax.jit`` of ``solve(u0, H, y) -> (u, losses)``: ``iterations`` Adam steps in one
    ``lax.scan``, differentiating ``0.5 ||ifft2(H fft2(u)) - y||^2`` by autodiff."""
    opt = optax.adam(LR)

    def loss(u, H, y):
        r = jnp.fft.ifft2(H * jnp.fft.fft2(u)) - y
        return 0.5 * jnp.sum(r.real**2 + r.imag**2)

    def solve(u0, H, y):
        def step(carry, _):
            u, state = carry
            value, grad = jax.value_and_grad(loss)(u, H, y)
            updates, state = opt.update(jnp.conj(grad), state, u)  # descent: conj(grad)
            return (optax.apply_updates(u, updates), state), value

        (u, _), losses = jax.lax.scan(step, (u0, opt.init(u0)), length=iterations)
        return u, losses

    return jax.jit(solve)


# ---------------------------------------------------------------------- calcil side
def make_solver(A, fast_path=True):
    objective = cc.Objective(lambda p, b: A(p["u"]), cc.losses.L2("y"))
    return cc.GradientSolver(objective, optimizer=optax.adam(LR), fast_path=fast_path)


# ---------------------------------------------------------------------- the problem
class Problem:
    """The propagator fit, the three warmed-up implementations, checked to agree."""

    def __init__(self):
        import skimage.data

        camera = skimage.data.camera().astype(np.float32) / 255.0
        self.u_true = jnp.exp(1j * (np.pi / 2) * jnp.asarray(camera)).astype(jnp.complex64)
        assert self.u_true.shape == (N, N)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # adequately sampled: no warning
            self.A = cc.operators.AngularSpectrum(
                (N, N), dx=DX, wavelength=WAVELENGTH, distance=DISTANCE
            )
            assert self.A.adequate_sampling()
        H = angular_spectrum_transfer(N, DX, WAVELENGTH, DISTANCE, 1.0)
        assert np.all(np.abs(np.abs(H) - 1) < 1e-12), "the band limit should remove nothing"
        np.testing.assert_allclose(np.asarray(self.A.transfer), H, rtol=0, atol=1e-6)
        self.H = jnp.asarray(H.astype(np.complex64))
        kr, ki = jax.random.split(jax.random.key(1))
        noise = jax.lax.complex(
            jax.random.normal(kr, (N, N), jnp.float32), jax.random.normal(ki, (N, N), jnp.float32)
        )
        self.y = self.A(self.u_true) + NOISE * noise
        self.u0 = jnp.zeros((N, N), jnp.complex64)

        self.hand = make_hand_solve(ITERATIONS)
        u_jax, losses_jax = self.run_jax()
        self.solvers = {
            "calcil": make_solver(self.A),
            "calcil-autodiff": make_solver(self.A, fast_path=False),
        }
        for impl, solver in self.solvers.items():
            result = self.run_calcil(impl)  # compiles the 50-step chunk
            assert solver.traces == 1, (impl, solver.traces)
            expected = "used: " if impl == "calcil" else "not used: fast_path=False"
            assert result.fast_path.startswith(expected), (impl, result.fast_path)
            # Honest comparison: each solves the hand-written problem, step by step.
            assert result.status == "max_iterations" and result.steps == ITERATIONS
            u_cc, u_ref = np.asarray(result.params["u"]), np.asarray(u_jax)
            np.testing.assert_allclose(u_cc, u_ref, rtol=1e-3, atol=1e-3, err_msg=impl)
            np.testing.assert_allclose(
                result.history["loss/total"], losses_jax, rtol=1e-3, err_msg=impl
            )
        # ... and the problem is a real one: the fit makes progress toward u_true.
        assert losses_jax[-1] < 0.1 * losses_jax[0], (losses_jax[0], losses_jax[-1])
        err = float(jnp.linalg.norm(u_jax - self.u_true))
        assert err < 0.5 * float(jnp.linalg.norm(self.u_true)), err
        self.peak = {"jax": memory_info(self.hand, (self.u0, self.H, self.y))["peak_bytes"]}
        for impl, solver in self.solvers.items():
            self.peak[impl] = solver_peak_bytes(solver, {"u": self.u0}, {"y": self.y})

    def run_jax(self):
        return jax.block_until_ready(self.hand(self.u0, self.H, self.y))

    def run_calcil(self, impl):
        result = self.solvers[impl].run(
            {"u": self.u0},
            {"y": self.y},
            iterations=ITERATIONS,
            log_every=LOG_EVERY,
            progress=False,
        )
        jax.block_until_ready(result.params)
        return result


@pytest.fixture(scope="module")
def problem():
    return Problem()


@pytest.mark.parametrize(("block", "impl"), BLOCKS)
def test_angular_spectrum_fit(benchmark, describe_row, problem, block, impl):
    describe_row(
        group=GROUP,
        impl=impl,
        size=N,
        block=block,
        iterations=ITERATIONS,
        log_every=LOG_EVERY,
        optimizer="adam(1e-2)",
    )
    if impl == "jax":
        fn = problem.run_jax
    else:

        def fn():
            return problem.run_calcil(impl)

    time_runs(
        benchmark,
        fn,
        scaled_rounds(ROUNDS_PER_BLOCK, minimum=1),
        ITERATIONS,
        problem.peak[impl],
        solver=problem.solvers.get(impl),
    )

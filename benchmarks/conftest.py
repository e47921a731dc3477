"""Shared fixtures for the calcil benchmark suites.

Every benchmark times a ``jax.jit``-compiled function, already compiled and warmed up, and
waits for its result (``block_until_ready``) inside the timed call: the compiled calls and
the memory figures come from calcil's own timing core (``calcil.benchmarking.timing``, the
one behind ``cc.benchmark`` and ``python -m calcil bench``); pytest-benchmark does the
rounds and the statistics. Each row records
``benchmark.group`` (what is computed, e.g. ``convolve-circular-forward-512``) and
``benchmark.extra_info["impl"]`` (``"calcil"`` or ``"jax"``, the hand-written equivalent), so
``benchmarks/report.py`` can pair the two implementations of the same computation.

Not collected by the unit-test run: ``pyproject.toml`` sets ``testpaths = ["tests"]``.
Run with ``python -m pytest benchmarks --benchmark-json=benchmarks/results.json``.

``CALCIL_BENCH_ROUNDS`` (a float, default 1) scales the number of timed rounds, e.g. ``0.2``
for a quick smoke run or ``3`` for a quieter measurement.
"""

import functools
import os

import jax
import jax.numpy as jnp
import pytest

from calcil.benchmarking.standard import gaussian_kernel
from calcil.benchmarking.timing import compile_call, program_memory
from calcil.solvers.memory import chunk_memory


def scaled_rounds(rounds: int, minimum: int = 3) -> int:
    """``rounds`` scaled by ``CALCIL_BENCH_ROUNDS``, at least ``minimum``."""
    return max(minimum, round(rounds * float(os.environ.get("CALCIL_BENCH_ROUNDS", "1"))))


def _rounds_for(size: int) -> int:
    """Timed rounds per benchmark: many for small (fast, noisy) problems, fewer for large."""
    return scaled_rounds(400 if size <= 512 else 100 if size <= 1024 else 60)


def device_kind() -> str:
    """The first device's kind (``extra_info["device"]``), e.g. ``"cpu"`` or ``"NVIDIA H100"``."""
    return str(jax.devices()[0].device_kind)


def gaussian_psf(size: int = 15, sigma: float = 2.0) -> jax.Array:
    """A normalised ``size x size`` Gaussian PSF (float32), centred at ``size // 2``
    (the one ``python -m calcil bench`` uses)."""
    return jnp.asarray(gaussian_kernel(size, sigma, 2))


@functools.cache
def real_image(n: int, seed: int = 0) -> jax.Array:
    """A float32 ``n x n`` standard-normal image (cached: shared by both implementations)."""
    return jax.random.normal(jax.random.key(seed), (n, n), jnp.float32)


@functools.cache
def complex_image(n: int, seed: int = 0) -> jax.Array:
    """A complex64 ``n x n`` image with standard-normal real and imaginary parts."""
    kr, ki = jax.random.split(jax.random.key(seed))
    re = jax.random.normal(kr, (n, n), jnp.float32)
    im = jax.random.normal(ki, (n, n), jnp.float32)
    return jax.lax.complex(re, im)


class Inputs:
    """Benchmark inputs: ``psf`` (15x15 Gaussian), ``real_image(n)``, ``complex_image(n)``.

    Hashable (by identity), so a suite may cache its builders on it with ``functools.cache``.
    """

    def __init__(self):
        self.psf = gaussian_psf()

    real_image = staticmethod(real_image)
    complex_image = staticmethod(complex_image)


def memory_info(fn, args) -> dict:
    """The compiled program's memory (bytes): calcil's :func:`program_memory`
    (``peak_bytes = argument + output + temp - alias``, and the parts). ``fn`` is a
    ``jax.jit``-compiled function; compiling it here again costs one compilation."""
    return program_memory(fn.lower(*args).compile())


def solver_memory_info(solver, init, data, problems: int | None = None) -> dict:
    """:func:`memory_info` of the one chunk ``solver`` compiled for ``init`` and ``data``
    (calcil's :func:`chunk_memory`; ``problems``: a leading problem axis)."""
    return chunk_memory(solver, init, data, problems)


def solver_peak_bytes(solver, init, data) -> int:
    """Peak bytes (:func:`memory_info`) of the chunk a solver compiled for ``init`` and ``data``."""
    return solver_memory_info(solver, init, data)["peak_bytes"]


def time_runs(benchmark, fn, rounds, iterations, peak_bytes, solver=None) -> None:
    """Time ``rounds`` calls of ``fn`` (a whole ``iterations``-step run each), check that a
    calcil ``solver`` traced once (the timed runs reuse the chunk of its warm-up), and record
    per-step time, steps per second and the program's peak memory."""
    benchmark.pedantic(fn, rounds=rounds, warmup_rounds=0, iterations=1)
    if solver is not None:
        assert solver.traces == 1, solver.traces
    median = benchmark.stats.stats.median
    benchmark.extra_info["per_iteration_ms"] = 1e3 * median / iterations
    benchmark.extra_info["iterations_per_second"] = iterations / median
    benchmark.extra_info["peak_bytes"] = peak_bytes


def device_memory_info() -> dict:
    """``peak_bytes_in_use`` (process-wide) and ``bytes_in_use`` where the device has them
    (GPU; ``memory_stats()`` is ``None`` on CPU)."""
    stats = jax.devices()[0].memory_stats() or {}
    keys = ("peak_bytes_in_use", "bytes_in_use")
    return {f"device_{key}": int(stats[key]) for key in keys if key in stats}


@pytest.fixture(scope="session")
def inputs() -> Inputs:
    return Inputs()


def describe(benchmark, *, group: str, impl: str, size: int, **info) -> None:
    """Label a row: its group, its impl (``calcil`` or ``jax``), size, versions, extras."""
    benchmark.group = group
    benchmark.extra_info.update(
        impl=impl,
        size=size,
        jax_version=jax.__version__,
        backend=jax.default_backend(),
        **info,
    )


@pytest.fixture
def describe_row(benchmark):
    """:func:`describe` bound to this test's ``benchmark``."""
    return functools.partial(describe, benchmark)


@pytest.fixture
def run_jitted(benchmark):
    """Time ``fn(*args)`` (a jitted function) under ``benchmark.pedantic``.

    ``run_jitted(fn, args, group=..., impl=..., size=...)`` compiles and warms ``fn`` outside
    the timing, then times ``jax.block_until_ready(fn(*args))`` over enough rounds for a stable
    median (``rounds`` overrides the size-based default; ``share`` takes a fraction of it, for
    a pair measured in several alternating blocks). Extra keyword arguments land in
    ``benchmark.extra_info``. Returns ``fn(*args)``.
    """

    def run(
        fn,
        args,
        *,
        group: str,
        impl: str,
        size: int,
        rounds: int | None = None,
        share: float = 1.0,
        **info,
    ):
        describe(benchmark, group=group, impl=impl, size=size, **info)
        compiled = compile_call(fn, args, group)  # compiled and warmed outside the timing
        return benchmark.pedantic(
            compiled.call,
            rounds=max(3, round(share * (_rounds_for(size) if rounds is None else rounds))),
            warmup_rounds=1,
            iterations=1,
        )

    return run

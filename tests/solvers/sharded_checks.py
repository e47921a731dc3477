"""Sharded-run checks, run by ``test_sharding.py`` in a process with 4 CPU devices.

``XLA_FLAGS=--xla_force_host_platform_device_count=4`` must be set before JAX starts, hence
a separate process. Prints one JSON object: ``{check: "ok" or what went wrong}``.
"""

import json
import sys
import tempfile
import traceback
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

import calcil as cc
from calcil.solvers import _sharding
from calcil.solvers._chunk import initial_state

sys.path.insert(0, str(Path(__file__).parent))
from sharded_problem import problem

CHECKS = {}


def check(fn):
    CHECKS[fn.__name__] = fn
    return fn


def _pair(make, reduction="sum", prior="tv", **run):
    """The same run on one device and on all four."""
    objective, init, data = problem(reduction, prior)
    one = make(objective).run(init, data, progress=False, **run)
    four = make(objective).run(init, data, progress=False, devices=jax.devices(), **run)
    return one, four


def _close(one, four, atol, rtol):
    np.testing.assert_allclose(np.asarray(four.params["x"]), one.params["x"], atol=atol)
    for key, values in one.history.items():
        if key.startswith(("loss/", "prior/")):
            np.testing.assert_allclose(four.history[key], values, rtol=rtol, err_msg=key)


def _compiled_chunk_text(solver, init, data) -> str:
    """The optimised HLO of the solver's one compiled chunk, sharded over all devices."""
    (chunk,) = solver._compiled.values()
    mesh, _ = _sharding.make_mesh(jax.devices())
    state = initial_state(init, solver._prepare(init, data, None, None, "data")[1], 0)
    state, data = _sharding.place_state(state, mesh), _sharding.place_data(data, mesh)
    return chunk.lower(state, data).compile().as_text()


def adam(objective):
    return cc.GradientSolver(objective, optimizer=optax.adam(1e-2))


@check
def gradient_solver_full_batch():
    one, four = _pair(adam, iterations=30, log_every=10)
    assert jax.devices()[0] in four.params["x"].sharding.device_set
    assert len(four.params["x"].sharding.device_set) == 4
    _close(one, four, 1e-6, 5e-6)


@check
def gradient_solver_mini_batches():
    """Same shuffled batches as on one device: each device gets its block of the batch."""
    one, four = _pair(adam, iterations=30, log_every=10, batch_size=4, key=jax.random.key(3))
    _close(one, four, 1e-6, 5e-6)


@check
def mean_reduction_averages_the_devices():
    # SGD: Adam's normalisation would magnify rounding in these tiny (mean) gradients.
    sgd = lambda o: cc.GradientSolver(o, optimizer=optax.sgd(100.0))  # noqa: E731
    one, four = _pair(sgd, "mean", iterations=30, log_every=10)
    _close(one, four, 5e-5, 5e-6)
    one, four = _pair(sgd, "mean", iterations=12, log_every=6, batch_size=4)
    _close(one, four, 5e-5, 5e-6)


@check
def fista():
    one, four = _pair(cc.ProximalGradient, prior="l1", iterations=20)
    _close(one, four, 1e-5, 5e-6)


@check
def conjugate_gradient():
    one, four = _pair(cc.ConjugateGradient, prior="l2", iterations=20)
    # CG amplifies rounding (here the order of the sums) by about 1.5x per step: 3e-4 at 20
    _close(one, four, 2e-4, 5e-4)


@check
def one_all_reduce_of_the_gradient_and_no_gather_of_the_data():
    objective, init, data = problem()
    solver = adam(objective)
    solver.run(init, data, iterations=5, log_every=5, progress=False, devices=jax.devices())
    hlo = _compiled_chunk_text(solver, init, data)
    assert "all-gather" not in hlo, "the batch is gathered"
    assert "all-reduce" in hlo


@check
def logs_checkpoints_and_exact_resume():
    objective, init, data = problem()
    with tempfile.TemporaryDirectory() as tmp:
        common = {"log_every": 5, "progress": False, "devices": jax.devices()}
        full = adam(objective).run(init, data, iterations=20, **common)
        logged = {**common, "log_dir": tmp, "checkpoint_every": 5}
        adam(objective).run(init, data, iterations=10, **logged)
        resumed = adam(objective).run(init, data, iterations=20, resume=True, **logged)
        assert list(Path(tmp).glob("events.out.tfevents.*"))
        np.testing.assert_array_equal(np.asarray(resumed.params["x"]), full.params["x"])
        np.testing.assert_array_equal(resumed.history["loss/total"], full.history["loss/total"])


@check
def divergence_keeps_the_last_finite_parameters():
    objective, init, data = problem()
    solver = cc.GradientSolver(objective, optimizer=optax.sgd(1e3))
    result = solver.run(
        init, data, iterations=40, log_every=10, progress=False, devices=jax.devices()
    )
    assert result.status == "diverged", result.status
    assert np.all(np.isfinite(np.asarray(result.params["x"])))


@check
def uneven_data_is_a_clear_error():
    objective, init, data = problem()
    odd = {k: v[:6] for k, v in data.items()}
    try:
        adam(objective).run(init, odd, iterations=2, progress=False, devices=jax.devices())
    except ValueError as e:
        assert "into 4 equal parts" in str(e) and "(6, 32, 32)" in str(e), e
    else:
        raise AssertionError("no error for 6 measurements on 4 devices")
    try:
        adam(objective).run(
            init, data, iterations=2, batch_size=2, progress=False, devices=jax.devices()
        )
    except ValueError as e:
        assert "batch_size=2 does not split evenly over 4 devices" in str(e), e
    else:
        raise AssertionError("no error for batch_size=2 on 4 devices")


@check
def two_devices_of_four():
    objective, init, data = problem()
    one = adam(objective).run(init, data, iterations=10, progress=False)
    two = adam(objective).run(init, data, iterations=10, progress=False, devices=jax.devices()[2:])
    assert two.params["x"].sharding.device_set == set(jax.devices()[2:])
    _close(one, two, 1e-6, 5e-6)


@check
def tomography_splits_the_angles():
    """A CT problem whose forward model builds the projection from the batch's angles: each
    device projects its own quarter of the angles, and the run equals the one-device run."""
    n, angles = 24, np.linspace(0, np.pi, 16, endpoint=False)
    truth = cc.phantoms.shepp_logan((n, n))
    data = {"y": cc.operators.ParallelProjection((n, n), angles)(truth), "angles": angles}
    objective = cc.Objective(
        forward=lambda p, b: cc.operators.ParallelProjection((n, n), b["angles"])(p["x"]),
        loss=cc.losses.L2(target="y"),
        priors={"x": 1e-3 * cc.priors.TV()},
    )
    init = {"x": jnp.zeros((n, n))}
    one = adam(objective).run(init, data, iterations=20, progress=False)
    solver = adam(objective)
    four = solver.run(init, data, iterations=20, progress=False, devices=jax.devices())
    assert len(four.params["x"].sharding.device_set) == 4
    np.testing.assert_allclose(np.asarray(four.params["x"]), one.params["x"], atol=1e-5)
    np.testing.assert_allclose(four.history["loss/l2"], one.history["loss/l2"], rtol=1e-5)
    hlo = _compiled_chunk_text(solver, init, data)
    assert "all-gather" not in hlo, "the angles or the sinogram are gathered"


if __name__ == "__main__":
    assert jax.device_count() == 4, jax.devices()
    report = {}
    for name, fn in CHECKS.items():
        try:
            fn()
            report[name] = "ok"
        except Exception:
            report[name] = traceback.format_exc()
    print(json.dumps(report))

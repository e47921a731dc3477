"""solver.run_batch: independent problems in one compiled run, each as if run alone."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import calcil as cc
from tests.solvers.test_run_parts import BlowUp

N = 16
A = cc.operators.Convolve(jnp.ones((3, 3)) / 9, (N, N))


def measurements(problems=3):
    rng = np.random.default_rng(0)
    truth = rng.random((problems, N, N)).astype(np.float32)
    noise = 0.05 * rng.standard_normal((problems, N, N)).astype(np.float32)
    return jnp.asarray(np.stack([np.asarray(A(t)) for t in truth]) + noise)


def deconvolution():
    return cc.Objective(
        lambda p, b: A(p["x"]), cc.losses.L2("y"), priors={"x": 1e-2 * cc.priors.TV()}
    )


def one(tree, i):
    return jax.tree_util.tree_map(lambda a: a[i], tree)


def assert_each_as_if_alone(solver, init, data, rtol=1e-5, **kwargs):
    batch = solver.run_batch(init, data, progress=False, **kwargs)
    n = len(batch.status)
    for i in range(n):
        alone = solver.run(one(init, i), one(data, i), progress=False, **kwargs)
        np.testing.assert_allclose(batch.params["x"][i], alone.params["x"], rtol=rtol, atol=1e-6)
        assert batch.status[i] == alone.status and batch.steps[i] == alone.steps
        for name, values in alone.history.items():
            if name != "perf/steps_per_second":
                np.testing.assert_allclose(
                    batch.history[name][: len(values), i],
                    values,
                    rtol=rtol,
                    atol=1e-6,
                    err_msg=name,
                )
    return batch


def test_gradient_solver_batch_equals_each_problem_alone():
    y = measurements()
    solver = cc.GradientSolver(deconvolution(), optimizer=optax.adam(0.05))
    batch = assert_each_as_if_alone(
        solver, {"x": jnp.zeros((3, N, N))}, {"y": y}, iterations=30, log_every=7
    )
    assert batch.params["x"].shape == (3, N, N)
    assert batch.history["loss/total"].shape == (30, 3) and batch.history["step"].shape == (30, 3)
    assert batch.status == ["max_iterations"] * 3 and batch.steps == [30, 30, 30]
    assert solver.traces == 2  # one program for the batch, one for a single problem


def test_each_problem_draws_its_own_mini_batches():
    """Problem i's batches come from jax.random.split(key, n)[i]."""
    rng = np.random.default_rng(1)
    y = jnp.asarray(rng.standard_normal((2, 6, 3)), jnp.float32)
    obj = cc.Objective(lambda p, b: jnp.broadcast_to(p["x"], b["y"].shape), cc.losses.L2("y"))
    solver = cc.GradientSolver(obj, optimizer=optax.sgd(0.1))
    key = jax.random.key(5)
    batch = solver.run_batch(
        {"x": jnp.zeros((2, 3))}, {"y": y}, iterations=9, batch_size=2, key=key, progress=False
    )
    keys = jax.random.split(key, 2)
    for i in range(2):
        alone = solver.run(
            {"x": jnp.zeros(3)},
            {"y": y[i]},
            iterations=9,
            batch_size=2,
            key=keys[i],
            progress=False,
        )
        np.testing.assert_allclose(batch.params["x"][i], alone.params["x"], rtol=1e-6)


def test_fista_batch_uses_each_problems_own_step_size():
    """The forward model scales by a per-problem gain: Lipschitz constants 1, 9 and 0.25."""
    obj = cc.Objective(
        lambda p, b: b["gain"] * A(p["x"]), cc.losses.L2("y"), priors={"x": 1e-2 * cc.priors.L1()}
    )
    y = measurements()
    data = {"y": y, "gain": jnp.array([1.0, 3.0, 0.5])[:, None, None] * jnp.ones((3, N, N))}
    solver = cc.ProximalGradient(obj)
    batch = assert_each_as_if_alone(
        solver, {"x": jnp.zeros((3, N, N))}, data, rtol=2e-5, iterations=25, log_every=25
    )
    steps = batch.history["fista/step_size"][0]
    np.testing.assert_allclose(steps * np.array([1.0, 9.0, 0.25]), steps[0], rtol=1e-3)


def test_conjugate_gradient_problems_converge_at_their_own_step():
    weights = jnp.array([[1.0, 2.0, 3.0], [1.0, 1.0, 1.0]])
    obj = cc.Objective(
        lambda p, b: b["w"] * p["x"], cc.losses.L2("y"), priors={"x": 0.1 * cc.priors.L2()}
    )
    data = {"w": weights, "y": jnp.ones((2, 3))}
    batch = assert_each_as_if_alone(
        cc.ConjugateGradient(obj), {"x": jnp.zeros((2, 3))}, data, iterations=20, log_every=20
    )
    assert batch.status == ["converged", "converged"]
    assert batch.steps == [3, 1]  # three distinct eigenvalues, and one
    assert np.isnan(batch.history["loss/total"][2:, 1]).all()  # after it stopped


def test_a_diverging_problem_is_frozen_while_the_others_go_on():
    """sgd(3) on 0.5 x^2: from 1, NaN at step 4 (x_3 = -8); from 0.01 at step 10."""
    obj = cc.Objective(lambda p, b: p["x"], cc.losses.L2("y"), priors={"x": BlowUp()})
    solver = cc.GradientSolver(obj, optimizer=optax.sgd(3.0))
    init = {"x": jnp.array([[1.0], [0.01], [0.5]])}
    data = {"y": jnp.array([[0.0], [0.0], [0.5]])}
    result = solver.run_batch(init, data, iterations=20, log_every=3, progress=False)
    np.testing.assert_allclose(result.params["x"].ravel(), [-8.0, -5.12, 0.5], rtol=1e-6)
    assert result.status == ["diverged", "diverged", "max_iterations"]
    assert result.steps == [4, 10, 20]
    loss = result.history["loss/l2"]
    assert np.isfinite(loss[:4, 0]).all() and np.isnan(loss[5:, 0]).all()
    assert np.isfinite(loss[:10, 1]).all() and (loss[:, 2] == 0).all()
    assert "problem 0: the objective became non-finite at step 4" in result.message


def test_batch_checkpoints_resume_exactly_and_logs_summaries(tmp_path):
    y = measurements(2)
    solver = cc.GradientSolver(deconvolution(), optimizer=optax.adam(0.05))
    init = {"x": jnp.zeros((2, N, N))}
    common = {"log_every": 5, "checkpoint_every": 10, "progress": False}
    whole = solver.run_batch(init, {"y": y}, iterations=30, log_dir=tmp_path / "whole", **common)
    tmp_path = tmp_path / "split"
    solver.run_batch(init, {"y": y}, iterations=20, log_dir=tmp_path, **common)
    resumed = solver.run_batch(
        init, {"y": y}, iterations=30, log_dir=tmp_path, resume=True, **common
    )
    np.testing.assert_array_equal(resumed.params["x"], whole.params["x"])
    np.testing.assert_array_equal(resumed.history["loss/total"], whole.history["loss/total"])
    acc = EventAccumulator(str(tmp_path))
    acc.Reload()
    events = sorted(acc.Scalars("loss/total"), key=lambda e: e.step)  # two runs, two files
    assert [e.step for e in events] == [4, 9, 14, 19, 24, 29]
    np.testing.assert_allclose(
        [e.value for e in events], whole.history["loss/total"][4::5].mean(axis=1), rtol=1e-5
    )
    assert "loss/total/max" in acc.Tags()["scalars"]


def test_problems_of_different_counts_are_a_clear_error():
    solver = cc.GradientSolver(deconvolution(), optimizer=optax.adam(0.05))
    with pytest.raises(ValueError, match=r"same length .* init\['x'\]: 3, data\['y'\]: 2"):
        solver.run_batch({"x": jnp.zeros((3, N, N))}, {"y": measurements(2)}, iterations=2)


def test_a_resumed_batch_remembers_the_problems_that_had_stopped(tmp_path):
    obj = cc.Objective(lambda p, b: p["x"], cc.losses.L2("y"), priors={"x": BlowUp()})
    solver = cc.GradientSolver(obj, optimizer=optax.sgd(3.0))
    init, data = {"x": jnp.array([[1.0], [0.5]])}, {"y": jnp.array([[0.0], [0.5]])}
    common = {"log_every": 5, "checkpoint_every": 10, "log_dir": tmp_path, "progress": False}
    solver.run_batch(init, data, iterations=10, **common)
    resumed = solver.run_batch(init, data, iterations=20, resume=True, **common)
    assert resumed.status == ["diverged", "max_iterations"] and resumed.steps == [4, 20]
    np.testing.assert_allclose(resumed.params["x"].ravel(), [-8.0, 0.5])
    assert "problem 0: diverged at step 4, before the resumed run" in resumed.message

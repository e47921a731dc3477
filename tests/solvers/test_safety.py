"""The run loop never returns a wrong answer with a success status: divergence at the last
step, checkpoints of diverging runs, locked log directories, and run arguments."""

import json
import os
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import optax
import pytest

import calcil as cc
from calcil import checkpoint
from calcil.solvers._lock import LOCK_NAME
from tests.solvers.test_gradient import LogPrior  # -log(x): NaN for x < 0


def log_problem():
    """sgd(2) from x = 1 towards y = -5: x_1 = 1 - 2 (1 + 5 - 0.1) < 0, objective NaN."""
    obj = cc.Objective(lambda p, b: p["x"], cc.losses.L2("y"), priors={"x": 0.1 * LogPrior()})
    return (
        cc.GradientSolver(obj, optimizer=optax.sgd(2.0)),
        {"x": jnp.array([1.0])},
        {"y": jnp.array([-5.0])},
    )


def sqrt_problem():
    """sqrt in the forward model at 0: the gradient is infinite, one step makes x = -inf."""
    obj = cc.Objective(lambda p, b: jnp.sqrt(p["x"]), cc.losses.L2("y"))
    return cc.GradientSolver(obj, optimizer=optax.sgd(0.1)), {"x": jnp.zeros(2)}, {"y": jnp.ones(2)}


def saved_objectives(log_dir, solver, init, data):
    """The objective at the parameters of every checkpoint in ``log_dir``."""
    values = []
    for path in checkpoint.list_checkpoints(log_dir / "checkpoints"):
        state, _ = checkpoint.load(path, target=solver_state(solver, init, data))
        values.append(float(solver.objective(state["params"], data)[0]))
    return values


def solver_state(solver, init, data):
    _, inner, _ = solver._prepare(init, data, None, None)
    return {"params": init, "inner": inner, "step": jnp.zeros((), jnp.int32)}


# ---------------------------------------------------------------- divergence at the end


@pytest.mark.parametrize("iterations", [1, 3])
def test_parameters_made_non_finite_by_the_last_step_are_a_divergence(iterations):
    solver, init, data = sqrt_problem()
    result = solver.run(init, data, iterations=iterations, log_every=iterations, progress=False)
    assert result.status == "diverged", result.message
    np.testing.assert_array_equal(result.params["x"], [0.0, 0.0])
    assert result.steps == 1
    if iterations == 1:  # the last step: found by the finiteness of the final parameters
        assert "update of step 0" in result.message
        np.testing.assert_array_equal(result.history["loss/total"], [1.0])  # at x_0


def test_non_finite_parameters_at_a_log_point_stop_the_run_there():
    solver, init, data = sqrt_problem()
    result = solver.run(init, data, iterations=50, log_every=1, progress=False)
    assert result.status == "diverged" and result.steps == 1
    assert np.all(np.isfinite(result.params["x"]))


def test_non_finite_initial_parameters_are_named_as_such():
    solver, _, data = sqrt_problem()
    result = solver.run({"x": jnp.array([1.0, np.nan])}, data, iterations=5, progress=False)
    assert result.status == "diverged" and result.steps == 0
    assert "the parameters the run started from" in result.message
    assert "last ones with a finite objective" not in result.message


# ---------------------------------------------------------------- checkpoints


def test_no_checkpoint_holds_parameters_with_a_non_finite_objective(tmp_path):
    """Step 1's parameters are finite but their objective is NaN: the checkpoint due at
    step 1 is not written; the run saves its last finite state (step 0) instead."""
    solver, init, data = log_problem()
    result = solver.run(
        init, data, iterations=10, log_every=1, checkpoint_every=1, log_dir=tmp_path,
        progress=False,
    )  # fmt: skip
    assert result.status == "diverged" and result.steps == 1
    values = saved_objectives(tmp_path, solver, init, data)
    assert values and all(np.isfinite(values))
    newest = checkpoint.latest(tmp_path / "checkpoints")
    assert newest.name == "step-000000000.ckpt"

    resumed = solver.run(init, data, iterations=10, log_dir=tmp_path, resume=True, log_every=1)
    assert resumed.status == "diverged"
    np.testing.assert_array_equal(resumed.params["x"], [1.0])  # finite objective, truly


def test_a_run_whose_last_update_breaks_the_objective_saves_the_state_before(tmp_path):
    """The last chunk ends at parameters whose objective is NaN: found by one probe step."""
    solver, init, data = log_problem()
    result = solver.run(
        init, data, iterations=1, checkpoint_every=1, log_dir=tmp_path, progress=False
    )
    assert result.status == "diverged", result.message
    np.testing.assert_array_equal(result.params["x"], [1.0])
    assert all(np.isfinite(saved_objectives(tmp_path, solver, init, data)))


def test_checkpoints_of_a_healthy_run_are_unchanged(tmp_path):
    solver = cc.GradientSolver(
        cc.Objective(lambda p, b: p["x"], cc.losses.L2("y")), optimizer=optax.sgd(0.1)
    )
    init, data = {"x": jnp.zeros(3)}, {"y": jnp.array([1.0, 2.0, 3.0])}
    solver.run(init, data, iterations=20, checkpoint_every=5, log_dir=tmp_path, progress=False)
    names = [p.name for p in checkpoint.list_checkpoints(tmp_path / "checkpoints")]
    assert names == ["step-000000010.ckpt", "step-000000015.ckpt", "step-000000020.ckpt"]
    _, extra = checkpoint.load(
        checkpoint.latest(tmp_path / "checkpoints"), solver_state(solver, init, data)
    )
    assert extra["history"]["loss/total"].shape == (20,)


# ---------------------------------------------------------------- the log_dir lock


def run_small(log_dir, **kwargs):
    solver = cc.GradientSolver(
        cc.Objective(lambda p, b: p["x"], cc.losses.L2("y")), optimizer=optax.sgd(0.1)
    )
    return solver.run(
        {"x": jnp.zeros(3)}, {"y": jnp.ones(3)}, iterations=4, log_every=2, log_dir=log_dir,
        progress=False, **kwargs,
    )  # fmt: skip


def test_a_second_run_in_the_same_log_dir_is_refused_and_names_the_holder(tmp_path):
    refused = []

    def second_run(step, params, terms):
        with pytest.raises(ValueError, match="is in use by GradientSolver in process") as err:
            run_small(tmp_path)
        refused.append(str(err.value))

    run_small(tmp_path, callbacks=[second_run])
    assert len(refused) == 2 and str(os.getpid()) in refused[0]
    assert not (tmp_path / LOCK_NAME).exists()  # released at the end
    run_small(tmp_path)  # and the directory can be used again


def test_the_lock_is_released_when_a_run_fails(tmp_path):
    def fail(step, params, terms):
        raise RuntimeError("callback failed")

    with pytest.raises(RuntimeError, match="callback failed"):
        run_small(tmp_path, callbacks=[fail])
    assert not (tmp_path / LOCK_NAME).exists()


def test_a_lock_held_by_a_live_process_is_respected_and_a_dead_ones_taken_over(tmp_path):
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        record = {"host": os.uname().nodename, "pid": live.pid, "owner": "GradientSolver"}
        (tmp_path / LOCK_NAME).write_text(json.dumps(record))
        with pytest.raises(ValueError, match=f"in process {live.pid}.*delete"):
            run_small(tmp_path)
    finally:
        live.kill()
        live.wait()
    # the holder is gone: its lock is stale and the next run takes it over
    assert run_small(tmp_path).status == "max_iterations"
    assert not (tmp_path / LOCK_NAME).exists()


def test_a_lock_from_another_host_is_respected(tmp_path):
    record = {"host": "another-machine", "pid": 1, "owner": "ProximalGradient"}
    (tmp_path / LOCK_NAME).write_text(json.dumps(record))
    with pytest.raises(ValueError, match="ProximalGradient in process 1 on another-machine"):
        run_small(tmp_path)
    assert json.loads((tmp_path / LOCK_NAME).read_text()) == record  # left alone


# ---------------------------------------------------------------- run arguments


def test_resuming_with_fewer_iterations_than_done_is_an_error(tmp_path):
    run_small(tmp_path, checkpoint_every=2)
    with pytest.raises(ValueError, match=r"checkpoint at step 4 .* iterations=2 .* >= 4"):
        solver = cc.GradientSolver(
            cc.Objective(lambda p, b: p["x"], cc.losses.L2("y")), optimizer=optax.sgd(0.1)
        )
        solver.run({"x": jnp.zeros(3)}, {"y": jnp.ones(3)}, iterations=2, log_dir=tmp_path,
                   resume=True)  # fmt: skip


def test_numpy_integers_are_accepted_as_counts():
    solver = cc.GradientSolver(
        cc.Objective(lambda p, b: p["x"], cc.losses.L2("y")), optimizer=optax.sgd(0.1)
    )
    result = solver.run(
        {"x": jnp.zeros(3)}, {"y": jnp.ones(3)}, iterations=np.int64(6), log_every=np.int32(3),
        progress=False,
    )  # fmt: skip
    assert result.steps == 6 and isinstance(result.steps, int)
    with pytest.raises(ValueError, match=r"iterations must be a non-negative integer.*float"):
        solver.run({"x": jnp.zeros(3)}, {"y": jnp.ones(3)}, iterations=6.0)


@pytest.mark.parametrize(
    "make",
    [
        lambda o: cc.GradientSolver(o, optimizer=optax.sgd(0.1)),
        cc.ProximalGradient,
        cc.ConjugateGradient,
    ],
)
def test_zero_iterations_return_the_init_and_a_history_with_every_key(make):
    obj = cc.Objective(lambda p, b: p["x"], cc.losses.L2("y"), priors={"x": cc.priors.L2()})
    result = make(obj).run({"x": jnp.ones(3)}, {"y": jnp.ones(3)}, iterations=0)
    assert result.steps == 0 and result.status == "max_iterations"
    np.testing.assert_array_equal(result.params["x"], np.ones(3))
    assert {"step", "loss/total", "loss/l2", "prior/x/l2", "perf/steps_per_second"} <= set(
        result.history
    )
    assert all(v.shape == (0,) for v in result.history.values())
    assert not any(k.startswith("_") for k in result.history)

"""The run loop's parts on their own: options and chunk schedule, the compiled chunk, history,
stop rules and the checkpointer."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import calcil as cc
from calcil import checkpoint
from calcil.solvers._checkpointer import Checkpointer
from calcil.solvers._chunk import DIVERGED, NON_FINITE, initial_state
from calcil.solvers._history import History
from calcil.solvers._hooks import StopRules
from calcil.solvers._options import run_options

# ---------------------------------------------------------------- options and schedule


def schedule(done=0, **kwargs):
    return [
        (c.start, c.stop, c.log, c.image, c.checkpoint) for c in run_options(**kwargs).chunks(done)
    ]


def test_chunks_end_at_log_points_images_checkpoints_and_the_end():
    assert schedule(iterations=10, log_every=4) == [
        (0, 4, True, False, False),
        (4, 8, True, False, False),
        (8, 10, True, False, False),
    ]
    got = schedule(iterations=10, log_every=5, checkpoint_every=3, log_dir=".")
    assert [(a, b) for a, b, *_ in got] == [(0, 3), (3, 5), (5, 6), (6, 9), (9, 10)]
    assert [c for *_, c in got] == [True, False, True, True, True]  # and at the end
    got = schedule(iterations=6, log_every=6, images={"x": abs}, image_every=2, log_dir=".")
    assert [(b, log, image) for _, b, log, image, _ in got] == [
        (2, False, True),
        (4, False, True),
        (6, True, True),
    ]


def test_a_resumed_schedule_starts_where_the_run_stopped():
    assert schedule(done=7, iterations=12, log_every=5) == [
        (7, 10, True, False, False),
        (10, 12, True, False, False),
    ]
    assert schedule(done=12, iterations=12, log_every=5) == []


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"iterations": -1}, ValueError, "iterations must be a non-negative integer"),
        ({"log_every": 2.0}, ValueError, "log_every must be a positive integer"),
        ({"images": {"x": 3}}, TypeError, "images maps names to functions"),
        ({"callbacks": [1]}, TypeError, "callbacks must be functions"),
        ({"resume": True}, ValueError, "resume need log_dir"),
    ],
)
def test_bad_options_are_clear_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        run_options(**kwargs)


# ---------------------------------------------------------------- the compiled chunk


def sgd_solver(lr=0.5, priors=None):
    obj = cc.Objective(lambda p, b: p["x"], cc.losses.L2("y"), priors=priors or {})
    return cc.GradientSolver(obj, optimizer=optax.sgd(lr))


def program_and_state(solver, init, data):
    solver.run(init, data, iterations=1, progress=False)  # builds and compiles the program
    (program,) = solver._compiled.values()
    _, inner, step_data = solver._prepare(init, data, None, None)
    return program, initial_state(init, inner, 0), step_data


def test_one_program_runs_any_number_of_steps_and_packs_them_in_one_array():
    solver = sgd_solver()
    init, data = {"x": jnp.zeros(2)}, {"y": jnp.array([2.0, 4.0])}
    program, state, step_data = program_and_state(solver, init, data)
    state, packed = program(state, step_data, 3, True)
    outputs, steps, halt, where = program.unpack(np.asarray(packed))
    assert steps == 3 and halt == 0 and where == -1
    # sgd(0.5) on 0.5 |x - y|^2 halves the residual: loss 10, 2.5, 0.625
    np.testing.assert_allclose(outputs["loss/total"], [10.0, 2.5, 0.625])
    np.testing.assert_allclose(state["params"]["x"], [1.75, 3.5])
    assert int(state["step"]) == 3
    np.testing.assert_allclose(state["prev"]["x"], [1.5, 3.0])  # x_2: its objective was finite
    assert np.isnan(outputs["grad_norm/all"][:2]).all() and np.isfinite(outputs["grad_norm/all"][2])
    state, packed = program(state, step_data, 5, False)
    assert program.unpack(np.asarray(packed))[1] == 5 and int(state["step"]) == 8
    assert solver.traces == 1  # lengths 1, 3 and 5: one program


def test_the_state_is_donated_but_the_callers_arrays_are_not():
    solver = sgd_solver()
    init, data = {"x": jnp.zeros(2)}, {"y": jnp.array([2.0, 4.0])}
    program, state, step_data = program_and_state(solver, init, data)
    new, _ = program(state, step_data, 2, True)
    assert state["params"]["x"].is_deleted() and not init["x"].is_deleted()
    result = solver.run(init, data, iterations=2, progress=False)
    assert not init["x"].is_deleted() and not data["y"].is_deleted()
    np.testing.assert_allclose(result.params["x"], new["params"]["x"])


class BlowUp(cc.priors.Prior):
    """0 for |x| < 10, NaN beyond."""

    def __init__(self):
        super().__init__("blowup")

    def value(self, x):
        return jnp.sum(jnp.where(jnp.abs(x) < 10, 0.0, jnp.nan))


def test_a_halted_state_stops_the_chunk_and_later_chunks_leave_it_alone():
    """sgd(3) on 0.5 x^2 from 1: x = 1, -2, 4, -8, 16; the objective at 16 is NaN (step 4)."""
    solver = sgd_solver(3.0, {"x": BlowUp()})
    init, data = {"x": jnp.array([1.0])}, {"y": jnp.zeros(1)}
    program, state, step_data = program_and_state(solver, init, data)
    state, packed = program(state, step_data, 10, True)
    outputs, steps, halt, where = program.unpack(np.asarray(packed))
    assert (steps, int(halt), int(where)) == (5, DIVERGED, 4)
    np.testing.assert_allclose(state["params"]["x"], [-8.0])  # the last finite: no replay
    assert not np.isfinite(outputs["loss/total"][4])
    state, packed = program(state, step_data, 10, True)  # dispatched after the halt
    assert program.unpack(np.asarray(packed))[1:] == (0, DIVERGED, -1)
    np.testing.assert_allclose(state["params"]["x"], [-8.0])


def test_non_finite_parameters_after_the_last_step_halt_the_chunk():
    obj = cc.Objective(lambda p, b: jnp.sqrt(p["x"]), cc.losses.L2("y"))
    solver = cc.GradientSolver(obj, optimizer=optax.sgd(0.1))
    init, data = {"x": jnp.zeros(2)}, {"y": jnp.ones(2)}
    program, state, step_data = program_and_state(solver, init, data)
    state, packed = program(state, step_data, 1, True)
    _, steps, halt, where = program.unpack(np.asarray(packed))
    assert (steps, int(halt), int(where)) == (1, NON_FINITE, 1)
    np.testing.assert_array_equal(state["params"]["x"], [0.0, 0.0])


def test_chunks_longer_than_one_dispatch_are_split_and_recorded_whole():
    solver = sgd_solver(0.1)
    init, data = {"x": jnp.zeros(2)}, {"y": jnp.array([2.0, 4.0])}
    result = solver.run(init, data, iterations=600, log_every=600, progress=False)
    assert result.history["loss/total"].shape == (600,)
    np.testing.assert_array_equal(result.history["step"], np.arange(600))
    grad_norms = result.history["grad_norm/all"]
    assert np.flatnonzero(np.isfinite(grad_norms)).tolist() == [599]  # the logged step only
    np.testing.assert_allclose(result.params["x"], [2.0, 4.0], rtol=1e-6)


# ---------------------------------------------------------------- history and stop rules


def test_history_of_a_batch_masks_problems_after_they_stopped():
    h = History()
    values = np.arange(6.0).reshape(3, 2)
    h.append({"loss/total": values}, start=0, rate=10.0, last=np.array([1, 2]))
    h.append({"loss/total": values + 6}, start=3, rate=5.0, last=np.array([-1, 2]))
    d = h.arrays()
    assert d["step"].shape == (6, 2) and d["step"][:, 0].tolist() == list(range(6))
    np.testing.assert_array_equal(d["loss/total"][:, 0], [0, 2, np.nan, np.nan, np.nan, np.nan])
    np.testing.assert_array_equal(d["loss/total"][:, 1], [1, 3, 5, 7, 9, 11])
    np.testing.assert_array_equal(d["perf/steps_per_second"][:, 1], [10, 10, 10, 5, 5, 5])


def test_history_restored_from_a_checkpoint_comes_first():
    h = History({"step": np.arange(2), "loss/total": np.array([5.0, 4.0])})
    h.append({"loss/total": np.array([3.0])}, start=2, rate=1.0)
    assert h.arrays()["loss/total"].tolist() == [5.0, 4.0, 3.0]


def test_stop_rules():
    rules = StopRules(tol=1e-2, max_time=None)
    assert rules.converged(5, 1.0, first=2.0) is None  # changed by 50%
    assert "relative change 5.00e-03 < tol 0.01 at step 10" == rules.converged(10, 0.995)
    batch = StopRules(tol=1e-2, max_time=None)
    batch.converged(5, np.array([1.0, 1.0]))
    assert batch.converged(10, np.array([0.999, 0.5])) is None  # one problem still moves
    assert batch.converged(15, np.array([0.9989, np.nan])) is not None  # the other stopped
    assert not StopRules(None, None).out_of_time() and StopRules(None, 0.0).out_of_time()


# ---------------------------------------------------------------- the checkpointer


def test_checkpointer_saves_anchors_and_refuses_to_overwrite(tmp_path):
    state = {"params": {"x": np.ones(2)}, "inner": {"t": np.float32(1)}, "step": np.int32(4)}
    ckpt = Checkpointer(tmp_path, every=2, keep=2, solver="Test")
    assert ckpt.restore(state, resume=True) == (None, {})
    ckpt.save(4, state, {"loss/total": np.arange(6.0)})
    assert ckpt.anchor == (4, state)
    (path,) = checkpoint.list_checkpoints(tmp_path / "checkpoints")
    assert path.name == "step-000000004.ckpt"
    restored, history = ckpt.restore(jax.tree_util.tree_map(np.zeros_like, state), resume=True)
    np.testing.assert_array_equal(restored["params"]["x"], [1.0, 1.0])
    assert history["loss/total"].tolist() == [0.0, 1.0, 2.0, 3.0]  # the steps before step 4
    with pytest.raises(ValueError, match="already holds checkpoints"):
        Checkpointer(tmp_path, every=2, keep=2, solver="Test").restore(state, resume=False)


# ---------------------------------------------------------------- repeated runs and the pipeline


def test_repeated_runs_trace_and_analyse_once(monkeypatch):
    solver = cc.GradientSolver(
        cc.Objective(lambda p, b: 2 * p["x"], cc.losses.L2("y"), priors={"x": cc.priors.TV()}),
        optimizer=optax.adam(0.1),
    )
    analysed = []
    original = solver._analyse
    monkeypatch.setattr(solver, "_analyse", lambda *a: analysed.append(1) or original(*a))
    init, data = {"x": jnp.zeros((8, 8))}, {"y": jnp.ones((8, 8))}
    for iterations, log_every in [(10, 5), (20, 7), (30, 30), (1, 1)]:
        solver.run(init, data, iterations=iterations, log_every=log_every, progress=False)
    assert solver.traces == 1 and len(analysed) == 1
    solver.run({"x": jnp.zeros((4, 4))}, {"y": jnp.ones((4, 4))}, iterations=2, progress=False)
    assert solver.traces == 2 and len(analysed) == 2  # new shapes: a new plan


A = cc.operators.Convolve(jnp.ones((3, 3)) / 9, (8, 8))


def test_fista_reuses_its_step_size_estimate_for_the_same_data():
    obj = cc.Objective(lambda p, b: A(p["x"]), cc.losses.L2("y"), priors={"x": cc.priors.L1()})
    solver = cc.ProximalGradient(obj)
    init, data = {"x": jnp.zeros((8, 8))}, {"y": jnp.ones((8, 8))}
    first = solver.run(init, data, iterations=3, progress=False)
    estimate = solver._estimate[2]
    solver.run({"x": jnp.ones((8, 8))}, data, iterations=3, progress=False)
    assert solver._estimate[2] is estimate  # same data arrays: the same estimate
    solver.run(init, {"y": 2 * jnp.ones((8, 8))}, iterations=3, progress=False)
    assert solver._estimate[2] is not estimate
    np.testing.assert_allclose(first.history["fista/step_size"][0], 1 / 1.05, rtol=1e-3)


def test_the_next_chunk_is_dispatched_before_the_previous_one_is_read(monkeypatch):
    from calcil.solvers import _pipeline

    events = []
    solver = sgd_solver(0.1)
    init, data = {"x": jnp.zeros(2)}, {"y": jnp.array([2.0, 4.0])}
    solver.run(init, data, iterations=1, progress=False)
    (program,) = solver._compiled.values()
    call, read = type(program).__call__, _pipeline.RunLoop._read
    monkeypatch.setattr(type(program), "__call__", lambda *a: events.append("dispatch") or call(*a))
    monkeypatch.setattr(_pipeline.RunLoop, "_read", lambda *a: events.append("read") or read(*a))
    seen = []
    solver.run(
        init, data, iterations=4, log_every=1, progress=False,
        callbacks=[lambda step, params, terms: seen.append((step, float(params["x"][0])))],
    )  # fmt: skip
    assert events == [
        "dispatch",
        "dispatch",
        "read",
        "dispatch",
        "read",
        "dispatch",
        "read",
        "read",
    ]
    # callbacks see the parameters of their own step, not those of the chunk in flight
    np.testing.assert_allclose([x for _, x in seen], [0.2, 0.38, 0.542, 0.6878], rtol=1e-6)
    assert [s for s, _ in seen] == [1, 2, 3, 4]


def test_tol_stops_after_the_chunk_in_flight():
    solver = sgd_solver(0.5)
    result = solver.run(
        {"x": jnp.zeros(2)}, {"y": jnp.array([2.0, 4.0])}, iterations=1000, log_every=10, tol=1e-6,
        progress=False,
    )  # fmt: skip
    assert result.status == "converged"
    at = int(result.message.rsplit("step ", 1)[1])  # the log point where the change was small
    assert result.steps == at + 10  # the chunk dispatched before that log point was read


def test_an_operator_built_from_the_data_is_analysed_again_for_new_data():
    """The fast path's factors of a Convolve built from data['psf'] hold for that psf only."""

    def forward(p, b):
        return cc.operators.Convolve(b["psf"], (8, 8))(p["x"])

    obj = cc.Objective(forward, cc.losses.L2("y"))
    rng = np.random.default_rng(3)
    y = jnp.asarray(rng.standard_normal((8, 8)), jnp.float32)
    psfs = [jnp.ones((3, 3)) / 9, jnp.asarray(rng.random((3, 3)), jnp.float32)]
    fast, slow = (cc.GradientSolver(obj, optimizer=optax.adam(0.1), fast_path=f) for f in (1, 0))
    for psf in psfs + psfs[:1]:
        data = {"psf": psf, "y": y}
        a = fast.run({"x": jnp.zeros((8, 8))}, data, iterations=20, progress=False)
        b = slow.run({"x": jnp.zeros((8, 8))}, data, iterations=20, progress=False)
        assert a.fast_path.startswith("used")
        np.testing.assert_allclose(a.params["x"], b.params["x"], rtol=1e-4, atol=1e-5)
    assert fast.traces == 1  # the same plan: one program
    batch = fast.run_batch(
        {"x": jnp.zeros((2, 8, 8))}, {"psf": jnp.stack(psfs), "y": jnp.stack([y, y])},
        iterations=20, progress=False,
    )  # fmt: skip
    assert "differs between the problems" in batch.fast_path
    for i, psf in enumerate(psfs):
        alone = slow.run({"x": jnp.zeros((8, 8))}, {"psf": psf, "y": y}, iterations=20)
        np.testing.assert_allclose(batch.params["x"][i], alone.params["x"], rtol=1e-4, atol=1e-5)

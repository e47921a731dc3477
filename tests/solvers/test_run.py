"""The shared run loop through the GradientSolver: logs, history, callbacks, checkpoints,
resume, progress, stopping rules and devices."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import calcil as cc
from calcil import checkpoint

T = jnp.array([1.0, -2.0, 3.0])


def quadratic():
    return cc.Objective(lambda p, b: p["x"], cc.losses.L2("y"), priors={"x": 0.1 * cc.priors.L2()})


def batched_problem():
    """8 noisy views of a 16x16 image through a blur; TV prior; mini-batches of 2."""
    rng = np.random.default_rng(0)
    A = cc.operators.Convolve(jnp.ones((3, 3)) / 9, (16, 16))
    truth = jnp.asarray(rng.random((16, 16)), jnp.float32)
    y = jnp.stack([A(truth) + 0.05 * jnp.asarray(rng.standard_normal((16, 16))) for _ in range(8)])
    obj = cc.Objective(
        lambda p, b: jax.vmap(A)(jnp.broadcast_to(p["x"], b["y"].shape)),
        cc.losses.L2("y"),
        priors={"x": 1e-2 * cc.priors.TV()},
    )
    groups = {"x": cc.Group("adam", lr=optax.exponential_decay(0.05, 20, 0.8))}
    return obj, groups, {"x": jnp.zeros((16, 16))}, {"y": y.astype(jnp.float32)}


def test_history_has_steps_terms_learning_rates_and_gradient_norms():
    groups = {"x": cc.Group("sgd", lr=optax.linear_schedule(0.2, 0.1, 4))}
    result = cc.GradientSolver(quadratic(), groups=groups).run(
        {"x": jnp.zeros(3)}, {"y": T}, iterations=6, log_every=4
    )
    h = result.history
    assert set(h) == {
        "step",
        "loss/total",
        "loss/l2",
        "prior/x/l2",
        "lr/x",
        "grad_norm/x",
        "perf/steps_per_second",
    }
    np.testing.assert_array_equal(h["step"], np.arange(6))
    np.testing.assert_allclose(h["lr/x"], [0.2, 0.175, 0.15, 0.125, 0.1, 0.1], rtol=1e-6)
    # replay: x_{k+1} = x_k - lr_k * grad, grad = (x - T) + 0.1 x
    x = np.zeros(3)
    for k in range(6):
        grad = (x - T) + 0.1 * x
        if k in (3, 5):  # the last steps of the chunks 0-3 and 4-5: the logged ones
            np.testing.assert_allclose(h["grad_norm/x"][k], np.linalg.norm(grad), rtol=1e-5)
        else:  # not computed between log points (a pass over the gradient per step)
            assert np.isnan(h["grad_norm/x"][k])
        np.testing.assert_allclose(h["loss/total"][k], h["loss/l2"][k] + h["prior/x/l2"][k])
        x = x - h["lr/x"][k] * grad
    np.testing.assert_allclose(result.params["x"], x, rtol=1e-5)
    assert np.all(h["perf/steps_per_second"] > 0)


def test_learning_rate_of_an_injected_optimizer_is_logged_and_a_plain_one_is_not():
    injected = optax.inject_hyperparams(optax.adam)(learning_rate=0.03)
    groups = {"x": cc.Group(injected), "z": cc.Group(optax.adam(0.1))}
    obj = cc.Objective(lambda p, b: p["x"] + p["z"], cc.losses.L2("y"))
    h = (
        cc.GradientSolver(obj, groups=groups)
        .run({"x": jnp.zeros(3), "z": jnp.zeros(3)}, {"y": T}, iterations=3)
        .history
    )
    np.testing.assert_allclose(h["lr/x"], 0.03)
    assert "lr/z" not in h and "grad_norm/z" in h


def test_group_labels_drop_trailing_globs():
    from calcil.solvers.gradient import group_label

    assert group_label("**") == "all"
    assert group_label("net/**") == "net"
    assert group_label("psf") == "psf"


def test_tensorboard_reads_back_every_scalar_and_image(tmp_path):
    obj, groups, init, data = batched_problem()
    images = {"x": lambda p: p["x"], "field": lambda p: jnp.exp(1j * p["x"])}
    result = cc.GradientSolver(obj, groups=groups).run(
        init, data, iterations=20, batch_size=2, log_dir=tmp_path, log_every=5, images=images,
        image_every=10,
    )  # fmt: skip
    acc = EventAccumulator(str(tmp_path), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    scalars = set(acc.Tags()["scalars"])
    assert scalars == {
        "loss/total",
        "loss/l2",
        "prior/x/tv",
        "lr/x",
        "grad_norm/x",
        "perf/steps_per_second",
    }
    assert set(acc.Tags()["images"]) == {"x", "field/amplitude", "field/phase"}
    events = acc.Scalars("loss/total")
    assert [e.step for e in events] == [4, 9, 14, 19]  # the step each value was measured at
    np.testing.assert_allclose(
        [e.value for e in events], result.history["loss/total"][[4, 9, 14, 19]], rtol=1e-6
    )
    assert [e.step for e in acc.Images("x")] == [10, 20]


def test_callbacks_run_at_log_points_with_current_parameters():
    seen = []

    def callback(step, params, terms):
        seen.append((step, np.asarray(params["x"]).copy(), terms["loss/total"]))

    solver = cc.GradientSolver(quadratic(), optimizer=optax.sgd(0.1))
    result = solver.run(
        {"x": jnp.zeros(3)}, {"y": T}, iterations=7, log_every=3, callbacks=[callback]
    )
    assert [s for s, _, _ in seen] == [3, 6, 7]
    np.testing.assert_array_equal(seen[-1][1], result.params["x"])
    assert seen[0][2] == pytest.approx(result.history["loss/total"][2])


def test_unwritable_log_dir_fails_before_compiling(tmp_path):
    (tmp_path / "file").write_text("x")
    solver = cc.GradientSolver(quadratic(), optimizer=optax.sgd(0.1))
    with pytest.raises(ValueError, match="cannot be written to"):
        solver.run({"x": jnp.zeros(3)}, {"y": T}, iterations=3, log_dir=tmp_path / "file" / "run")
    assert solver.traces == 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"checkpoint_every": 5}, "checkpoint_every need log_dir"),
        ({"resume": True}, "resume need log_dir"),
        ({"images": {"x": lambda p: p["x"]}}, "images need log_dir"),
        ({"log_every": 0}, "log_every must be a positive integer"),
        ({"checkpoint_every": 2.5, "log_dir": "."}, "checkpoint_every must be a positive"),
        ({"devices": [jax.devices()[0]] * 2}, "lists a device twice"),
    ],
)
def test_run_configuration_errors(kwargs, match):
    solver = cc.GradientSolver(quadratic(), optimizer=optax.sgd(0.1))
    with pytest.raises(ValueError, match=match):
        solver.run({"x": jnp.zeros(3)}, {"y": T}, iterations=3, **kwargs)


def test_single_device_runs_there():
    device = jax.devices()[0]
    result = cc.GradientSolver(quadratic(), optimizer=optax.sgd(0.5)).run(
        {"x": jnp.zeros(3)}, {"y": T}, iterations=50, devices=[device]
    )
    assert result.params["x"].devices() == {device}
    np.testing.assert_allclose(result.params["x"], T / 1.1, rtol=1e-5)


def _run(log_dir, iterations, **kwargs):
    obj, groups, init, data = batched_problem()
    return cc.GradientSolver(obj, groups=groups).run(
        init, data, iterations=iterations, batch_size=2, key=jax.random.key(11),
        log_dir=log_dir, log_every=10, checkpoint_every=20, progress=False, **kwargs,
    )  # fmt: skip


def test_resume_reproduces_the_uninterrupted_run(tmp_path):
    whole = _run(tmp_path / "whole", 100)
    _run(tmp_path / "split", 40)
    assert checkpoint.latest(tmp_path / "split" / "checkpoints").name == "step-000000040.ckpt"
    resumed = _run(tmp_path / "split", 100, resume=True)
    assert resumed.steps == 100
    np.testing.assert_array_equal(resumed.params["x"], whole.params["x"])
    for name in whole.history:
        if name != "perf/steps_per_second":
            np.testing.assert_array_equal(resumed.history[name], whole.history[name], err_msg=name)


def test_resume_after_a_crash_continues_from_the_newest_checkpoint(tmp_path):
    whole = _run(tmp_path / "whole", 60)

    def crash(step, params, terms):
        if step == 50:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path / "crash", 60, callbacks=[crash])
    assert checkpoint.latest(tmp_path / "crash" / "checkpoints").name == "step-000000040.ckpt"
    resumed = _run(tmp_path / "crash", 60, resume=True)
    np.testing.assert_array_equal(resumed.params["x"], whole.params["x"])


def test_resume_without_checkpoints_starts_fresh_and_a_new_run_will_not_overwrite(tmp_path):
    fresh = _run(tmp_path, 20, resume=True)
    assert fresh.steps == 20
    with pytest.raises(ValueError, match=r"already holds checkpoints .* resume=True"):
        _run(tmp_path, 20)


def test_a_corrupted_checkpoint_stops_the_resume_and_is_kept(tmp_path):
    _run(tmp_path, 20)
    newest = checkpoint.latest(tmp_path / "checkpoints")
    newest.write_bytes(newest.read_bytes()[:-100])
    damaged = newest.read_bytes()
    with pytest.raises(checkpoint.CheckpointError, match="corrupted"):
        _run(tmp_path, 40, resume=True)
    assert newest.read_bytes() == damaged


def test_resume_with_another_problem_is_a_clear_error(tmp_path):
    _run(tmp_path, 20)
    solver = cc.GradientSolver(quadratic(), optimizer=optax.sgd(0.1))
    with pytest.raises(checkpoint.CheckpointError, match="does not match this run"):
        solver.run({"x": jnp.zeros(3)}, {"y": T}, iterations=30, log_dir=tmp_path, resume=True)


def test_progress_bar_only_on_a_terminal(capsys, monkeypatch):
    solver = cc.GradientSolver(quadratic(), optimizer=optax.sgd(0.1))
    solver.run({"x": jnp.zeros(3)}, {"y": T}, iterations=4, log_every=2)
    assert capsys.readouterr().err == ""  # pytest's stderr is not a terminal
    monkeypatch.setattr("sys.stderr.isatty", lambda: True, raising=False)
    solver.run({"x": jnp.zeros(3)}, {"y": T}, iterations=4, log_every=2)
    err = capsys.readouterr().err
    assert "GradientSolver" in err and "4/4" in err and "loss=" in err
    solver.run({"x": jnp.zeros(3)}, {"y": T}, iterations=4, log_every=2, progress=False)
    assert capsys.readouterr().err == ""


def test_tol_compares_log_points():
    solver = cc.GradientSolver(quadratic(), optimizer=optax.sgd(0.5))
    result = solver.run({"x": jnp.zeros(3)}, {"y": T}, iterations=1000, log_every=10, tol=1e-6)
    assert result.status == "converged" and result.steps % 10 == 0 and result.steps < 100
    v = result.history["loss/total"]
    assert abs(v[-1] - v[-11]) / abs(v[-11]) < 1e-6


def test_max_time_stops_between_chunks():
    solver = cc.GradientSolver(quadratic(), optimizer=optax.sgd(0.01))
    result = solver.run({"x": jnp.zeros(3)}, {"y": T}, iterations=10**6, log_every=10, max_time=0)
    assert result.status == "max_time" and result.steps == 10

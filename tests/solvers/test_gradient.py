"""GradientSolver: convergence against closed forms, group semantics, batches, safety."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import calcil as cc
from calcil.solvers.gradient import _sample

T = jnp.array([1.0, -2.0, 3.0])


def quadratic(target_key="y"):
    """0.5 ||x - y||^2 summed over all parameters named in the forward."""
    return cc.Objective(lambda p, b: p["x"], cc.losses.L2(target_key))


def test_converges_to_least_squares_solution_of_a_blur():
    """min 0.5||A x - y||^2 for an invertible circular blur reaches x_true."""
    rng = np.random.default_rng(0)
    x_true = jnp.asarray(rng.random((16, 16)), jnp.float32)
    psf = jnp.array([[0.0, 0.1, 0.0], [0.1, 0.6, 0.1], [0.0, 0.1, 0.0]])
    A = cc.operators.Convolve(psf, (16, 16))
    obj = cc.Objective(lambda p, b: A(p["x"]), cc.losses.L2("y"))
    result = cc.GradientSolver(obj, optimizer=optax.sgd(1.0)).run(
        {"x": jnp.zeros((16, 16))}, {"y": A(x_true)}, iterations=300
    )
    np.testing.assert_allclose(result.params["x"], x_true, atol=1e-4)
    assert result.history["loss/total"].shape == (300,)
    assert result.history["loss/l2"][-1] < 1e-8 * result.history["loss/l2"][0]


def test_sgd_steps_match_the_formula():
    result = cc.GradientSolver(quadratic(), optimizer=optax.sgd(0.25)).run(
        {"x": jnp.zeros(3)}, {"y": T}, iterations=3, log_every=2
    )
    np.testing.assert_allclose(result.params["x"], (1 - 0.75**3) * T, rtol=1e-6)
    np.testing.assert_allclose(
        result.history["loss/total"], [0.5 * 14 * 0.75 ** (2 * k) for k in range(3)], rtol=1e-6
    )


def test_complex_variables_descend_along_the_conjugate_gradient():
    t = jnp.array([1 + 2j, -0.5j, 3.0], jnp.complex64)
    result = cc.GradientSolver(quadratic(), optimizer=optax.sgd(0.3)).run(
        {"x": jnp.zeros(3, jnp.complex64)}, {"y": t}, iterations=60
    )
    assert result.params["x"].dtype == jnp.complex64
    np.testing.assert_allclose(result.params["x"], t, atol=1e-5)


def test_every_n_updates_with_the_mean_gradient():
    """4 steps with every=2: 2 updates, each with the mean of 2 gradients (here equal)."""
    groups = {"x": cc.Group(optax.sgd(0.5), every=2)}
    result = cc.GradientSolver(quadratic(), groups=groups).run(
        {"x": jnp.zeros(3)}, {"y": T}, iterations=4
    )
    np.testing.assert_allclose(result.params["x"], (1 - 0.5**2) * T, rtol=1e-6)
    assert (
        np.count_nonzero(np.diff(result.history["loss/total"])) == 1
    )  # changes after step 1 only... and 3


def test_every_counts_updates():
    groups = {"x": cc.Group(optax.sgd(0.5), every=2)}
    history = (
        cc.GradientSolver(quadratic(), groups=groups)
        .run({"x": jnp.zeros(3)}, {"y": T}, iterations=5)
        .history
    )
    values = history["loss/total"]
    # value before steps 0..4; updates happen at steps 1 and 3
    np.testing.assert_allclose(values, [7.0, 7.0, 1.75, 1.75, 0.4375], rtol=1e-6)


def test_start_delays_a_group_and_frozen_keeps_it():
    obj = cc.Objective(lambda p, b: p["x"] + p["z"], cc.losses.L2("y"))
    groups = {"x": cc.Group(optax.sgd(0.5), start=3), "z": cc.Group(optax.sgd(0.5), frozen=True)}
    init = {"x": jnp.zeros(3), "z": jnp.ones(3)}
    result = cc.GradientSolver(obj, groups=groups).run(init, {"y": T}, iterations=5)
    # x is updated at steps 3 and 4 only; z never
    np.testing.assert_allclose(result.params["x"], (1 - 0.5**2) * (T - 1), rtol=1e-6)
    np.testing.assert_array_equal(result.params["z"], np.ones(3))


def test_projection_after_each_update():
    groups = {"x": cc.Group(optax.sgd(0.5), project=cc.priors.NonNegative())}
    result = cc.GradientSolver(quadratic(), groups=groups).run(
        {"x": jnp.zeros(3)}, {"y": T}, iterations=40
    )
    np.testing.assert_allclose(result.params["x"], np.maximum(T, 0), atol=1e-6)


def test_groups_use_their_own_optimizers():
    """A separable problem: each group must follow its own optax optimizer exactly."""
    obj = cc.Objective(lambda p, b: jnp.concatenate([p["a"], p["b"]]), cc.losses.L2("y"))
    y = jnp.array([1.0, 2.0, -1.0, 4.0])
    groups = {"a": cc.Group("adam", lr=0.1), "b": cc.Group(optax.sgd(0.2))}
    result = cc.GradientSolver(obj, groups=groups).run(
        {"a": jnp.zeros(2), "b": jnp.zeros(2)}, {"y": y}, iterations=7
    )

    def reference(tx, target):
        x, state = jnp.zeros(2), tx.init(jnp.zeros(2))
        for _ in range(7):
            updates, state = tx.update(x - target, state, x)
            x = optax.apply_updates(x, updates)
        return x

    np.testing.assert_allclose(result.params["a"], reference(optax.adam(0.1), y[:2]), rtol=1e-5)
    np.testing.assert_allclose(result.params["b"], reference(optax.sgd(0.2), y[2:]), rtol=1e-6)


def test_lbfgs_gets_value_and_value_fn():
    rng = np.random.default_rng(1)
    m = jnp.asarray(rng.standard_normal((6, 4)), jnp.float32)
    y = jnp.asarray(rng.standard_normal(6), jnp.float32)
    obj = cc.Objective(lambda p, b: m @ p["x"], cc.losses.L2("y"))
    result = cc.GradientSolver(obj, optimizer=optax.lbfgs()).run(
        {"x": jnp.zeros(4)}, {"y": y}, iterations=20
    )
    want = np.linalg.lstsq(np.asarray(m), np.asarray(y), rcond=None)[0]
    np.testing.assert_allclose(result.params["x"], want, atol=1e-4)


def test_post_update_runs_after_each_step():
    def zero_mean(params, step):
        return {"x": params["x"] - jnp.mean(params["x"])}

    groups = {"x": cc.Group(optax.sgd(0.5), post_update=zero_mean)}
    result = cc.GradientSolver(quadratic(), groups=groups).run(
        {"x": jnp.zeros(3)}, {"y": T}, iterations=30
    )
    np.testing.assert_allclose(result.params["x"], T - jnp.mean(T), atol=1e-5)


def test_mini_batches_cover_each_epoch_once():
    key = jax.random.key(3)
    data = {"i": jnp.arange(12)}
    seen = [np.asarray(_sample(data, key, jnp.int32(s), 3, 12)["i"]) for s in range(8)]
    for epoch in (seen[:4], seen[4:]):
        assert sorted(np.concatenate(epoch).tolist()) == list(range(12))
    assert not np.array_equal(np.concatenate(seen[:4]), np.concatenate(seen[4:]))


def test_mini_batch_run_reaches_the_mean_of_the_measurements():
    y = jnp.arange(8.0)[:, None] * jnp.ones((1, 3))
    obj = cc.Objective(
        lambda p, b: jnp.broadcast_to(p["x"], b["y"].shape), cc.losses.L2("y", reduction="mean")
    )
    result = cc.GradientSolver(obj, optimizer=optax.sgd(0.1)).run(
        {"x": jnp.zeros(3)}, {"y": y}, iterations=400, batch_size=4, key=jax.random.key(0)
    )
    np.testing.assert_allclose(result.params["x"], np.full(3, 3.5), atol=0.3)


def test_divergence_stops_at_the_last_finite_parameters():
    """A too-large step drives x below 0, where -log(x) is NaN: the run must stop there."""
    obj = cc.Objective(lambda p, b: p["x"], cc.losses.L2("y"), priors={"x": 0.1 * LogPrior()})
    result = cc.GradientSolver(obj, optimizer=optax.sgd(2.0)).run(
        {"x": jnp.array([1.0])}, {"y": jnp.array([-5.0])}, iterations=10
    )
    assert result.status == "diverged"
    assert result.steps == 1  # step 0 was finite (x = 1), step 1 evaluates at x < 0
    np.testing.assert_allclose(result.params["x"], [1.0])  # where the objective was finite
    assert "prior/x/log" in result.message and "step 1" in result.message
    assert not np.isfinite(result.history["loss/total"][-1])
    assert result.history["loss/total"].shape == (2,)


class BlowUp(cc.priors.Prior):
    """0 while |x| < 10, NaN beyond (zero gradient): marks the step where x escapes."""

    def __init__(self):
        super().__init__("blowup")

    def value(self, x):
        return jnp.sum(jnp.where(jnp.abs(x) < 10, 0.0, jnp.nan))


@pytest.mark.parametrize("log_every", [1, 2, 3, 4, 10])
def test_divergence_anywhere_in_a_chunk_returns_the_last_finite_parameters(log_every):
    """sgd(3) on 0.5 x^2 doubles and flips x: 1, -2, 4, -8, 16 (non-finite at step 4).

    Step 4 is the first step of a chunk for log_every 1, 2 and 4, in the middle otherwise;
    either way the result is x_3 = -8, found by replaying the chunk from its input.
    """
    obj = cc.Objective(lambda p, b: p["x"], cc.losses.L2("y"), priors={"x": BlowUp()})
    result = cc.GradientSolver(obj, optimizer=optax.sgd(3.0)).run(
        {"x": jnp.array([1.0])}, {"y": jnp.zeros(1)}, iterations=20, log_every=log_every
    )
    assert result.status == "diverged" and result.steps == 4
    np.testing.assert_allclose(result.params["x"], [-8.0])
    np.testing.assert_allclose(result.history["loss/l2"], [0.5, 2.0, 8.0, 32.0, 128.0])
    assert "step 4" in result.message and "prior/x/blowup" in result.message


def test_non_finite_initial_objective_returns_the_initial_parameters():
    obj = cc.Objective(lambda p, b: p["x"], cc.losses.L2("y"), priors={"x": BlowUp()})
    result = cc.GradientSolver(obj, optimizer=optax.sgd(0.1)).run(
        {"x": jnp.array([20.0])}, {"y": jnp.zeros(1)}, iterations=5, progress=False
    )
    assert result.status == "diverged" and result.steps == 0
    np.testing.assert_allclose(result.params["x"], [20.0])
    assert "step 0" in result.message


class LogPrior(cc.priors.Prior):
    """-log(x): finite for x > 0, NaN once a large step makes x negative."""

    def __init__(self):
        super().__init__("log")

    def value(self, x):
        return -jnp.sum(jnp.log(x))


def test_second_run_reuses_the_compiled_chunk():
    solver = cc.GradientSolver(quadratic(), optimizer=optax.sgd(0.1))
    solver.run({"x": jnp.zeros(3)}, {"y": T}, iterations=10, log_every=5)
    assert solver.traces == 1
    solver.run({"x": jnp.ones(3)}, {"y": 2 * T}, iterations=20, log_every=5)
    assert solver.traces == 1


def test_tol_stops_as_converged():
    result = cc.GradientSolver(quadratic(), optimizer=optax.sgd(0.5)).run(
        {"x": jnp.zeros(3)}, {"y": T}, iterations=1000, log_every=10, tol=1e-6
    )
    assert result.status == "converged" and result.steps < 1000


def test_init_arrays_are_not_modified():
    init = {"x": jnp.zeros(3)}
    cc.GradientSolver(quadratic(), optimizer=optax.sgd(0.5)).run(init, {"y": T}, iterations=3)
    np.testing.assert_array_equal(init["x"], np.zeros(3))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, "either groups"),
        ({"optimizer": optax.sgd(1), "groups": {"x": cc.Group(optax.sgd(1))}}, "not both"),
    ],
)
def test_solver_configuration_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        cc.GradientSolver(quadratic(), **kwargs)


def test_unknown_optimizer_name_fails_when_the_solver_is_built():
    with pytest.raises(ValueError, match="no optimizer named 'adamm'"):
        cc.GradientSolver(quadratic(), groups={"x": cc.Group("adamm", lr=0.1)})


def test_run_argument_errors():
    solver = cc.GradientSolver(quadratic(), optimizer=optax.sgd(0.1))
    with pytest.raises(ValueError, match="batch_size 5 is larger than the 4 measurements"):
        solver.run({"x": jnp.zeros(3)}, {"y": jnp.zeros((4, 3))}, iterations=1, batch_size=5)
    with pytest.raises(ValueError, match="same leading"):
        solver.run(
            {"x": jnp.zeros(3)},
            {"y": jnp.zeros((4, 3)), "w": jnp.zeros((5,))},
            iterations=1,
            batch_size=2,
        )
    with pytest.raises(ValueError, match="iterations must be a non-negative integer"):
        solver.run({"x": jnp.zeros(3)}, {"y": T}, iterations=-1)
    groups_solver = cc.GradientSolver(quadratic(), groups={"x": cc.Group(optax.sgd(1))})
    with pytest.raises(ValueError, match=r"variables matched by no group: \['z'\]"):
        groups_solver.run({"x": jnp.zeros(3), "z": jnp.zeros(1)}, {"y": T}, iterations=1)
    with pytest.raises(TypeError, match=r"needs a cc\.Objective"):
        cc.GradientSolver(lambda p: 0, optimizer=optax.sgd(1))


def test_learning_rate_of_an_injected_schedule_is_logged_per_step():
    schedule = optax.linear_schedule(1.0, 0.0, 10)
    injected = optax.inject_hyperparams(optax.sgd)(learning_rate=schedule)
    result = cc.GradientSolver(quadratic(), groups={"x": cc.Group(injected)}).run(
        {"x": jnp.zeros(3)}, {"y": T}, iterations=12, log_every=5, progress=False
    )
    want = [1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0, 0.0]
    np.testing.assert_allclose(result.history["lr/x"], want, atol=1e-6)
    x = np.zeros(3)  # replay: x_{k+1} = x_k - lr_k (x_k - T) with the logged rates
    for k in range(12):
        x = x - want[k] * (x - np.asarray(T))
    np.testing.assert_allclose(result.params["x"], x, atol=1e-6)


@pytest.mark.parametrize(
    ("wrap", "want"),
    [
        (lambda tx: optax.chain(optax.clip(10.0), tx), [1.0, 0.75, 0.5, 0.25, 0.0, 0.0]),
        (lambda tx: optax.masked(tx, lambda p: [True] * len(p)), [1.0, 0.75, 0.5, 0.25, 0.0, 0.0]),
        # the inner optimizer updates every 2nd step; in between its last rate stands
        (lambda tx: optax.MultiSteps(tx, 2), [1.0, 1.0, 1.0, 0.75, 0.75, 0.5]),
    ],
    ids=["chain", "masked", "MultiSteps"],
)
def test_learning_rate_is_found_inside_wrapped_states(wrap, want):
    tx = optax.inject_hyperparams(optax.sgd)(learning_rate=optax.linear_schedule(1.0, 0.0, 4))
    h = (
        cc.GradientSolver(quadratic(), optimizer=wrap(tx))
        .run({"x": jnp.zeros(3)}, {"y": T}, iterations=6, progress=False)
        .history
    )
    np.testing.assert_allclose(h["lr/all"], want, atol=1e-6)


def test_learning_rate_under_the_key_lr_and_ambiguous_rates():
    def factory(lr):
        return optax.sgd(lr)

    tx = optax.inject_hyperparams(factory)(lr=optax.exponential_decay(0.5, 1, 0.5))
    h = (
        cc.GradientSolver(quadratic(), optimizer=tx)
        .run({"x": jnp.zeros(3)}, {"y": T}, iterations=3, progress=False)
        .history
    )
    np.testing.assert_allclose(h["lr/all"], [0.5, 0.25, 0.125])
    two = optax.chain(
        optax.inject_hyperparams(optax.sgd)(learning_rate=0.1),
        optax.inject_hyperparams(optax.sgd)(learning_rate=0.2),
    )
    h = (
        cc.GradientSolver(quadratic(), optimizer=two)
        .run({"x": jnp.zeros(3)}, {"y": T}, iterations=2, progress=False)
        .history
    )
    assert "lr/all" not in h  # two rates: which one would it be?


def test_learning_rate_of_a_delayed_group_is_its_last_updates():
    schedule = optax.linear_schedule(1.0, 0.0, 4)
    group = cc.Group(optax.inject_hyperparams(optax.sgd)(learning_rate=schedule), start=2)
    h = (
        cc.GradientSolver(quadratic(), groups={"x": group})
        .run({"x": jnp.zeros(3)}, {"y": T}, iterations=5, progress=False)
        .history
    )
    np.testing.assert_allclose(h["lr/x"], [1.0, 1.0, 1.0, 0.75, 0.5], atol=1e-6)

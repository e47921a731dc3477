"""Group configuration and the matching of variables to groups."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.extend.core import jaxprs_in_params

import calcil as cc
from calcil.solvers import match_groups

PARAMS = {
    "x": jnp.zeros((4, 4)),
    "psf": jnp.zeros((3, 3)),
    "net": {"dense": {"kernel": jnp.zeros((2, 3)), "bias": jnp.zeros(3)}, "scale": jnp.zeros(())},
}
ADAM = cc.Group(optax.adam(1e-2))


def test_exact_names_and_subtree_patterns():
    groups = {"x": ADAM, "psf": ADAM, "net": ADAM}
    assert match_groups(PARAMS, groups) == {
        "net/dense/bias": "net",
        "net/dense/kernel": "net",
        "net/scale": "net",
        "psf": "psf",
        "x": "x",
    }


@pytest.mark.parametrize(
    ("pattern", "covers", "others"),
    [
        ("net/**", {"net/dense/bias", "net/dense/kernel", "net/scale"}, []),
        ("net/*", {"net/dense/bias", "net/dense/kernel", "net/scale"}, []),  # and below
        ("net/dense/*", {"net/dense/bias", "net/dense/kernel"}, ["net/scale"]),
        ("**/kernel", {"net/dense/kernel"}, ["net/dense/bias", "net/scale"]),
        ("*/*/b?as", {"net/dense/bias"}, ["net/dense/kernel", "net/scale"]),
    ],
)
def test_glob_patterns(pattern, covers, others):
    groups = {"x": ADAM, "psf": ADAM, pattern: ADAM, **dict.fromkeys(others, ADAM)}
    assignment = match_groups(PARAMS, groups)
    assert {p for p, pat in assignment.items() if pat == pattern} == covers


def test_star_stays_within_a_segment():
    with pytest.raises(ValueError, match=r"patterns that match no variable: \['dense/\*'\]"):
        match_groups(PARAMS, {"x": ADAM, "psf": ADAM, "net": ADAM, "dense/*": ADAM})


def test_unmatched_variables_are_listed():
    with pytest.raises(ValueError) as info:
        match_groups(PARAMS, {"x": ADAM, "net/**": ADAM})
    msg = str(info.value)
    assert "variables matched by no group: ['psf']" in msg
    assert (
        "The variables are ['net/dense/bias', 'net/dense/kernel', 'net/scale', 'psf', 'x']" in msg
    )


def test_doubly_matched_variables_are_listed():
    with pytest.raises(ValueError, match=r"net/dense/kernel by \['net', '\*\*/kernel'\]"):
        match_groups(PARAMS, {"x": ADAM, "psf": ADAM, "net": ADAM, "**/kernel": ADAM})


def test_pattern_matching_nothing_is_an_error():
    with pytest.raises(ValueError, match=r"patterns that match no variable: \['object'\]"):
        match_groups(PARAMS, {"x": ADAM, "psf": ADAM, "net": ADAM, "object": ADAM})


def test_flax_parameter_tree():
    model = nn.Dense(3)
    variables = model.init(jax.random.key(0), jnp.ones((1, 2)))
    params = {"field": variables, "x": jnp.zeros(2)}
    assignment = match_groups(params, {"field/**": ADAM, "x": ADAM})
    assert assignment == {
        "field/params/bias": "field/**",
        "field/params/kernel": "field/**",
        "x": "x",
    }


def test_named_optimizer_with_float_and_schedule_learning_rates():
    params = jnp.array([1.0, -2.0])
    grads = jnp.array([0.5, 0.5])
    sgd = cc.Group("sgd", lr=0.1).transformation()
    updates, _ = sgd.update(grads, sgd.init(params))
    np.testing.assert_allclose(updates, -0.1 * grads)
    schedule = optax.exponential_decay(1.0, transition_steps=1, decay_rate=0.5)
    sgd = cc.Group("sgd", lr=schedule).transformation()
    state = sgd.init(params)
    u0, state = sgd.update(grads, state)
    u1, _ = sgd.update(grads, state)
    np.testing.assert_allclose(u0, -1.0 * grads)
    np.testing.assert_allclose(u1, -0.5 * grads)


def test_transformation_is_passed_through():
    tx = optax.adam(1e-3)
    assert cc.Group(tx).transformation() is tx


def test_projection_from_constraints_and_functions():
    x = jnp.array([-1.0, 0.5, 3.0])
    np.testing.assert_array_equal(
        cc.Group(optax.sgd(1), project=cc.priors.NonNegative()).projection()(x), [0.0, 0.5, 3.0]
    )
    np.testing.assert_array_equal(
        cc.Group(optax.sgd(1), project=cc.priors.Box(0.0, 1.0)).projection()(x), [0.0, 0.5, 1.0]
    )
    np.testing.assert_array_equal(
        cc.Group(optax.sgd(1), project=jnp.abs).projection()(x), [1.0, 0.5, 3.0]
    )
    assert cc.Group(optax.sgd(1)).projection() is None


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"optimizer": "adam"}, ValueError, r"needs a learning rate: Group\('adam', lr=1e-2\)"),
        (
            {"optimizer": "adamm", "lr": 1e-2},
            ValueError,
            r"no optimizer named 'adamm'. Did you mean 'adam'",
        ),
        (
            {"optimizer": optax.adam(1e-2), "lr": 1e-3},
            ValueError,
            "lr is used only with an optimizer name",
        ),
        ({"optimizer": 0.01}, TypeError, "must be an optax GradientTransformation"),
        ({"optimizer": "sgd", "lr": 1.0, "start": -1}, ValueError, "start must be an integer >= 0"),
        ({"optimizer": "sgd", "lr": 1.0, "every": 0}, ValueError, "every must be an integer >= 1"),
        (
            {"optimizer": "sgd", "lr": 1.0, "every": 1.5},
            ValueError,
            "every must be an integer >= 1",
        ),
        ({"optimizer": "sgd", "lr": 1.0, "project": 3}, TypeError, "constraint or a function"),
        (
            {"optimizer": "sgd", "lr": 1.0, "project": cc.priors.L1() + cc.priors.TV()},
            ValueError,
            "no prox",
        ),
        (
            {"optimizer": "sgd", "lr": 1.0, "post_update": 1},
            TypeError,
            "post_update must be a function",
        ),
    ],
)
def test_misconfigured_groups(kwargs, error, match):
    with pytest.raises(error, match=match):
        cc.Group(**kwargs).transformation()


def test_group_types_are_checked():
    with pytest.raises(TypeError, match="groups must map patterns"):
        match_groups(PARAMS, {"x": optax.adam(1e-2)})
    with pytest.raises(ValueError, match="no groups given"):
        match_groups(PARAMS, {})


@pytest.mark.parametrize(
    ("lr", "shown"),
    [
        (-1e-2, "it is -0.01"),
        (0.0, "it is 0.0"),
        (float("nan"), "it is nan"),
        (np.inf, "it is inf"),
    ],
)
def test_learning_rate_must_be_positive_and_finite(lr, shown):
    with pytest.raises(ValueError, match=rf"must be positive and finite, but {shown} \(a neg"):
        cc.Group("adam", lr=lr)


def test_schedules_may_start_at_zero_but_not_below():
    warmup = optax.linear_schedule(0.0, 1e-2, 10)
    assert cc.Group("adam", lr=warmup).lr is warmup
    with pytest.raises(ValueError, match=r"but its value at step 0 is -0.5 "):
        cc.Group("sgd", lr=optax.linear_schedule(-0.5, 0.0, 10))


def test_learning_rate_given_as_a_string_says_to_pass_a_number_or_schedule():
    pattern = (
        r"Group\('adam', lr='1e-2'\): lr must be a float or an optax schedule \(step -> "
        r"learning rate\), not a string\. Pass the number, Group\('adam', lr=0\.01\)"
    )
    with pytest.raises(TypeError, match=pattern):
        cc.Group("adam", lr="1e-2")
    with pytest.raises(TypeError, match=r"not a string\. Pass a positive float or an optax"):
        cc.Group("adam", lr="fast")
    for lr in (True, [1e-2]):
        with pytest.raises(TypeError, match="lr must be a float or an optax schedule"):
            cc.Group("sgd", lr=lr)


@pytest.mark.parametrize("name", ["clip", "chain", "scale", "scale_by_adam", "inject_hyperparams"])
def test_optax_names_that_are_not_optimizers_are_refused(name):
    pattern = (
        rf"optax\.{name} is not an optimizer that takes a learning rate, so Group\('{name}', "
        r"lr=\.\.\.\) cannot build it\. Optimizer names are the \d+ optax optimizers that take "
        r"a learning rate, such as 'adam', 'adamw', 'sgd', 'rmsprop', 'lbfgs'\."
    )
    with pytest.raises(ValueError, match=pattern):
        cc.Group(name, lr=1e-2)


def test_unknown_names_get_suggestions_and_the_valid_names():
    with pytest.raises(ValueError, match=r"no optimizer named 'Adam'\. Did you mean 'adam'"):
        cc.Group("Adam", lr=1e-2)
    with pytest.raises(ValueError, match=r"named 'zzz'\. Optimizer names are .* such as 'adam'"):
        cc.Group("zzz", lr=1e-2)


def test_numpy_integers_are_accepted_for_start_and_every():
    group = cc.Group("sgd", lr=np.float32(0.5), start=np.int64(2), every=np.int32(3))
    assert (group.start, group.every) == (2, 3)
    assert type(group.start) is int and type(group.every) is int
    for kwargs in ({"start": True}, {"every": 2.0}, {"start": np.float64(1.0)}):
        with pytest.raises(ValueError, match=r"must be an integer >= \d, got .*\. Pass a whole"):
            cc.Group("sgd", lr=0.5, **kwargs)


# ---------------------------------------------------------------- update semantics, pinned
# Each test below runs the solver and an independent reference: plain NumPy, or plain optax
# optimizers called by hand on the steps where the group updates.

Y = np.array([1.0, -2.0, 3.0], np.float32)


def coupled():
    """0.5 ||x + z - y||^2: x's gradient changes while x waits, because z moves."""
    return cc.Objective(lambda p, b: p["x"] + p["z"], cc.losses.L2("y"))


def test_every_3_from_step_2_applies_the_mean_of_the_gradients_since_the_last_update():
    """x: adam(0.1), start=2, every=3; z: sgd(0.3) at every step. Over steps 0..9, x updates
    at steps 4 and 7 (the mean of the gradients of steps 2-4 and 5-7); those of steps 8 and 9
    wait for step 10."""
    groups = {
        "x": cc.Group(optax.adam(0.1), start=2, every=3),
        "z": cc.Group(optax.sgd(0.3)),
    }
    init = {"x": np.zeros(3, np.float32), "z": np.full(3, 0.5, np.float32)}
    result = cc.GradientSolver(coupled(), groups=groups).run(
        init, {"y": Y}, iterations=10, log_every=4, progress=False
    )

    adam = optax.adam(0.1)  # called only at the update steps, with the mean gradient
    x, z, state, gathered, losses = init["x"], init["z"], adam.init(init["x"]), [], []
    for step in range(10):
        g = x + z - Y
        losses.append(0.5 * np.sum(g**2))
        z = z - 0.3 * g
        if step >= 2:
            gathered.append(g)
        if step in (4, 7):
            assert len(gathered) == 3
            mean = np.mean(gathered, axis=0)
            updates, state = adam.update(jnp.asarray(mean), state)
            x, gathered = np.asarray(x + updates), []
    assert len(gathered) == 2  # steps 8 and 9, not applied
    np.testing.assert_allclose(result.history["loss/total"], losses, rtol=1e-5)
    np.testing.assert_allclose(result.params["x"], x, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(result.params["z"], z, rtol=1e-5, atol=1e-6)
    seen = [init["x"]]  # x after every step

    def record(step, params, terms):
        seen.append(np.asarray(params["x"]))

    cc.GradientSolver(coupled(), groups=groups).run(
        init, {"y": Y}, iterations=10, log_every=1, callbacks=record, progress=False
    )
    changed = np.flatnonzero(np.any(np.diff(np.stack(seen), axis=0), axis=1))
    assert changed.tolist() == [4, 7]  # x moves at steps 4 and 7, and only there


def test_frozen_and_not_yet_started_leaves_stay_bit_identical():
    """Negative zeros, subnormals and odd values come back bit for bit: the solver does not
    add a zero update to them."""
    odd = np.array([-0.0, 1e-40, -3.3333333, 7.0e10], np.float32)
    obj = cc.Objective(lambda p, b: p["x"] + p["z"] + p["w"], cc.losses.L2("y"))
    groups = {
        "x": cc.Group(optax.adam(0.1)),
        "z": cc.Group(optax.adam(0.1), frozen=True),
        "w": cc.Group(optax.adam(0.1), start=100),
    }
    init = {"x": np.zeros(4, np.float32), "z": odd, "w": odd.copy()}
    result = cc.GradientSolver(obj, groups=groups).run(
        init, {"y": np.ones(4, np.float32)}, iterations=7, log_every=3, progress=False
    )
    for name in ("z", "w"):
        got = np.asarray(result.params[name])
        np.testing.assert_array_equal(got.view(np.uint32), odd.view(np.uint32), err_msg=name)
    assert not np.array_equal(result.params["x"], init["x"])
    assert "lr/z" not in result.history and "grad_norm/z" in result.history


@pytest.mark.parametrize("every", [1, 2])
def test_lbfgs_in_one_group_next_to_adam_in_another(every):
    """lbfgs's line search evaluates the objective with only its own group's leaves moved;
    the reference runs optax.lbfgs and optax.adam side by side on the same coupled problem,
    lbfgs on every ``every``-th step with the mean gradient (``grad=`` the mean too, and
    ``value=`` the objective at that step)."""
    rng = np.random.default_rng(3)
    m = jnp.asarray(rng.standard_normal((6, 4)), jnp.float32)
    y = jnp.asarray(rng.standard_normal(6), jnp.float32)
    obj = cc.Objective(lambda p, b: m @ p["a"] + p["b"], cc.losses.L2("y"))
    groups = {"a": cc.Group(optax.lbfgs(), every=every), "b": cc.Group(optax.adam(0.05))}
    init = {"a": jnp.zeros(4), "b": jnp.zeros(6)}
    result = cc.GradientSolver(obj, groups=groups).run(
        init, {"y": y}, iterations=8, log_every=8, progress=False
    )

    def f(a, b):
        return 0.5 * jnp.sum((m @ a + b - y) ** 2)

    lbfgs, adam = optax.lbfgs(), optax.adam(0.05)
    a, b = init["a"], init["b"]
    sa, sb, gathered = lbfgs.init(a), adam.init(b), []
    for step in range(8):
        value, (ga, gb) = jax.value_and_grad(f, argnums=(0, 1))(a, b)
        gathered.append(ga)
        if step % every == every - 1:
            mean = sum(gathered) / every
            ua, sa = lbfgs.update(
                mean, sa, a, value=value, grad=mean, value_fn=lambda a_, b=b: f(a_, b)
            )
            a, gathered = a + ua, []
        ub, sb = adam.update(gb, sb, b)
        b = b + ub
    np.testing.assert_allclose(result.params["a"], a, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(result.params["b"], b, rtol=1e-4, atol=1e-5)
    assert result.history["loss/total"][-1] < 0.5 * result.history["loss/total"][0]
    assert "lr/a" in result.history  # the line search's step


def test_projection_is_applied_only_on_the_steps_that_update():
    """init violates the constraint: a projection on skipped steps would show in the loss.
    every=2 from step 1: updates at steps 2, 4, 6."""
    groups = {"x": cc.Group(optax.sgd(0.5), start=1, every=2, project=cc.priors.NonNegative())}
    obj = cc.Objective(lambda p, b: p["x"], cc.losses.L2("y"))
    init = {"x": np.array([-1.0, 2.0, -0.5], np.float32)}
    result = cc.GradientSolver(obj, groups=groups).run(
        init, {"y": Y}, iterations=7, log_every=7, progress=False
    )
    x, gathered, losses = init["x"].copy(), [], []
    for step in range(7):
        losses.append(0.5 * np.sum((x - Y) ** 2))
        if step >= 1:
            gathered.append(x - Y)
        if step in (2, 4, 6):
            x, gathered = np.maximum(x - 0.5 * np.mean(gathered, axis=0), 0.0), []
    np.testing.assert_allclose(result.history["loss/total"], losses, rtol=1e-6)
    assert losses[0] == losses[1] == losses[2]  # not projected before the first update
    np.testing.assert_allclose(result.params["x"], x, rtol=1e-6)

    # a function projection that counts: applied at steps 2 and 5 only
    counting = cc.Group(optax.sgd(0.5), every=3, project=lambda v: v + 1.0)
    zero_grad = cc.Objective(lambda p, b: 0.0 * p["x"], cc.losses.L2("y"))
    got = cc.GradientSolver(zero_grad, groups={"x": counting}).run(
        {"x": np.zeros(3, np.float32)}, {"y": Y}, iterations=7, progress=False
    )
    np.testing.assert_array_equal(got.params["x"], [2.0, 2.0, 2.0])


def test_learning_rate_history_of_a_scheduled_named_optimizer_with_every_2():
    """The schedule runs on the group's updates (steps 1, 3, 5 use lr(0), lr(1), lr(2)); the
    logged rate is the one the step's update used, or the last update's on a skipped step,
    as optax.MultiSteps(inject_hyperparams(sgd)) stores it."""
    schedule = optax.linear_schedule(1.0, 0.0, 4)  # 1, 0.75, 0.5, 0.25, 0
    obj = cc.Objective(lambda p, b: p["x"], cc.losses.L2("y"))
    result = cc.GradientSolver(obj, groups={"x": cc.Group("sgd", lr=schedule, every=2)}).run(
        {"x": np.zeros(3, np.float32)}, {"y": Y}, iterations=6, log_every=4, progress=False
    )

    reference = optax.MultiSteps(optax.inject_hyperparams(optax.sgd)(learning_rate=schedule), 2)
    x, state, rates = jnp.zeros(3), reference.init(jnp.zeros(3)), []
    for _ in range(6):
        updates, state = reference.update(x - Y, state, x)
        x = x + updates
        rates.append(float(state.inner_opt_state.hyperparams["learning_rate"]))
    assert rates == [1.0, 1.0, 1.0, 0.75, 0.75, 0.5]
    np.testing.assert_allclose(result.history["lr/x"], rates, rtol=1e-6)
    np.testing.assert_allclose(result.params["x"], x, rtol=1e-6)
    want = np.zeros(3)  # by hand: x <- x - lr_k (x - y) at the updates (equal gradients)
    for lr in (1.0, 0.75, 0.5):
        want = want - lr * (want - Y)
    np.testing.assert_allclose(result.params["x"], want, rtol=1e-6)


def test_every_over_complex_and_real_leaves_in_one_group():
    """The mean of conj(grad) for the complex leaf, of grad for the real one."""
    t = np.array([1 + 2j, -0.5j], np.complex64)
    obj = cc.Objective(lambda p, b: p["c"] * p["r"], cc.losses.L2("y"))
    init = {"c": np.array([0.5 + 0.5j, 1.0], np.complex64), "r": np.array([1.0, 2.0], np.float32)}
    result = cc.GradientSolver(obj, groups={"**": cc.Group(optax.sgd(0.1), every=2)}).run(
        init, {"y": t}, iterations=6, progress=False
    )
    c, r = init["c"].astype(np.complex128), init["r"].astype(np.float64)
    gathered = []
    for step in range(6):
        res = c * r - t  # d/dc* of 0.5|c r - t|^2 is res r; the real gradient of r: Re(conj(c) res)
        gathered.append((res * r, np.real(np.conj(c) * res)))
        if step % 2 == 1:
            c = c - 0.1 * np.mean([g[0] for g in gathered], axis=0)
            r = r - 0.1 * np.mean([g[1] for g in gathered], axis=0)
            gathered = []
    assert result.params["c"].dtype == np.complex64 and result.params["r"].dtype == np.float32
    np.testing.assert_allclose(result.params["c"], c, rtol=1e-5)
    np.testing.assert_allclose(result.params["r"], r, rtol=1e-5)


def test_resume_in_the_middle_of_an_accumulation_is_exact(tmp_path):
    groups = {
        "x": cc.Group("adam", lr=optax.exponential_decay(0.1, 2, 0.5), start=2, every=3),
        "z": cc.Group(optax.sgd(0.3), project=cc.priors.Box(-1.0, 1.0)),
    }
    init = {"x": np.zeros(3, np.float32), "z": np.full(3, 0.5, np.float32)}

    def run(log_dir, iterations, **kwargs):
        return cc.GradientSolver(coupled(), groups=groups).run(
            init, {"y": Y}, iterations=iterations, log_dir=log_dir, log_every=2,
            checkpoint_every=6, progress=False, **kwargs,
        )  # fmt: skip

    whole = run(tmp_path / "whole", 14)
    run(tmp_path / "split", 6)  # step 6: steps 5 gathered, step 7 updates x
    resumed = run(tmp_path / "split", 14, resume=True)
    for name in ("x", "z"):
        np.testing.assert_array_equal(resumed.params[name], whole.params[name])
    for name in whole.history:
        if name != "perf/steps_per_second":
            np.testing.assert_array_equal(resumed.history[name], whole.history[name], err_msg=name)


def _conds(jaxpr) -> int:
    """The number of ``cond`` primitives in a jaxpr, nested ones included."""
    count = 0
    for eqn in jaxpr.eqns:
        count += eqn.primitive.name == "cond"
        for sub in jaxprs_in_params(eqn.params):
            count += _conds(sub)
    return count


@pytest.mark.parametrize(
    ("group", "always"),
    [
        (cc.Group(optax.adam(0.1)), True),
        (cc.Group(optax.adam(0.1), project=cc.priors.NonNegative()), True),
        (cc.Group(optax.adam(0.1), start=3), False),
    ],
)
def test_a_group_updated_at_every_step_compiles_no_branch(group, always):
    solver = cc.GradientSolver(coupled(), groups={"x": group, "z": cc.Group(optax.sgd(0.1))})
    init, data = {"x": jnp.zeros(3), "z": jnp.zeros(3)}, {"y": jnp.asarray(Y)}
    plan, inner, data = solver._prepare(init, data, None, None)
    jaxpr = jax.make_jaxpr(
        lambda params, inner, step: solver._step(plan, params, inner, step, data, False)
    )(init, inner, jnp.int32(0))
    conds = _conds(jaxpr.jaxpr)  # 2: the gradient norms, computed on logged steps only
    assert conds == 2 if always else conds > 2


def test_groups_are_one_optax_transformation():
    """every, start and frozen are optax's MultiSteps, conditionally_mask and set_to_zero,
    combined by multi_transform: the solver's optimizer state is optax's own."""
    obj = cc.Objective(lambda p, b: p["a"] + p["b"] + p["c"], cc.losses.L2("y"))
    groups = {
        "a": cc.Group(optax.adam(1e-2), every=2),
        "b": cc.Group(optax.sgd(1e-2), start=3),
        "c": cc.Group(optax.sgd(1.0), frozen=True),
    }
    solver = cc.GradientSolver(obj, groups=groups)
    init = {k: jnp.zeros(3) for k in "abc"}
    _, inner, _ = solver._prepare(init, {"y": jnp.ones(3)}, None, None)
    state = inner["opt"]
    assert isinstance(state, optax.PartitionState)
    kinds = {k: type(v.inner_state) for k, v in state.inner_states.items()}
    assert kinds == {
        "a": optax.MultiStepsState,
        "b": optax.ConditionallyMaskState,
        "c": optax.EmptyState,
    }

"""Group configuration and the matching of variables to groups."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

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

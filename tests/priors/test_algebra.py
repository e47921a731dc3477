"""Prior algebra: weights scale values and prox steps, sums add values and log named terms."""

import dataclasses
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from calcil.priors import (
    L1,
    L2,
    TV,
    Box,
    Huber,
    NonNegative,
    Prior,
    PriorSum,
    Simplex,
    Support,
    Weighted,
)
from tests.helpers import randn


@partial(jax.jit, static_argnames="iterations")
def _prox(prior, x, step, iterations=None):
    kwargs = {} if iterations is None else {"iterations": iterations}
    return prior.prox(x, step, **kwargs)


@jax.jit
def _value(prior, x):
    return prior(x)


@jax.jit
def _terms(prior, x):
    return prior.terms(x)


def x_of(shape=(4, 5), seed=0, complex_=False):
    return randn(np.random.default_rng(seed), shape, np.complex128 if complex_ else np.float64)


PROX_PRIORS = [
    pytest.param(L1(), None, id="l1"),
    pytest.param(L2(), None, id="l2"),
    pytest.param(Huber(0.4), None, id="huber"),
    pytest.param(TV(), 30, id="tv"),
    pytest.param(TV(isotropic=False), 30, id="tv-aniso"),
    pytest.param(NonNegative(), None, id="nonnegative"),
    pytest.param(Box(-0.2, 0.3), None, id="box"),
    pytest.param(Simplex(), None, id="simplex"),
    pytest.param(Support(np.eye(4, 5, dtype=bool)), None, id="support"),
]


@pytest.mark.parametrize("prior, iterations", PROX_PRIORS)
def test_weighted_prox_is_prox_with_scaled_step(prior, iterations):
    x = x_of()
    with jax.enable_x64(True):
        for w, step in ((0.5, 0.3), (3.0, 0.2), (1e-3, 50.0)):
            got = _prox(w * prior, x, step, iterations)
            want = _prox(prior, x, w * step, iterations)
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-13)


def test_weighted_prox_by_hand():
    x = jnp.array([-3.0, 0.5, 2.0])
    np.testing.assert_allclose((0.5 * L1()).prox(x, 2.0), [-2.0, 0.0, 1.0])
    np.testing.assert_allclose((3.0 * L2()).prox(x, 1.0), x / 4)
    # the weight changes the result: prox of 3 L2 with step 1 is not prox of L2 with step 1
    assert not np.allclose((3.0 * L2()).prox(x, 1.0), L2().prox(x, 1.0))


@pytest.mark.parametrize(
    "prior", [L1(), L2(), Huber(0.3), TV(), TV(eps=0.1), NonNegative()], ids=lambda p: p.name
)
def test_weighted_value_and_terms(prior):
    x = np.abs(x_of()) if prior.name == "nonnegative" else x_of()
    with jax.enable_x64(True):
        v = float(_value(prior, x))
        assert float(_value(2.5 * prior, x)) == pytest.approx(2.5 * v, rel=1e-12)
        assert float(_value(prior * 2.5, x)) == pytest.approx(2.5 * v, rel=1e-12)
        terms = _terms(0.1 * prior, x)
        assert list(terms) == [prior.name]
        assert float(terms[prior.name]) == pytest.approx(0.1 * v, rel=1e-12)


def test_weights_multiply_and_keep_the_inner_prior():
    p = 2.0 * (3.0 * L1())
    assert isinstance(p, Weighted)
    ((weight, inner),) = p.parts()
    assert isinstance(inner, L1) and weight == 6.0
    x = jnp.array([1.0, -2.0])
    assert float(p(x)) == pytest.approx(18.0)
    np.testing.assert_allclose(p.prox(jnp.array([10.0, -1.0]), 1.0), [4.0, 0.0])
    assert p.name == "l1" and p.has_prox


def test_weight_is_a_traceable_leaf():
    x = jnp.array([1.0, -2.0, 4.0])
    f = jax.jit(lambda w, x: (w * L1()).prox(x, 1.0))
    np.testing.assert_allclose(f(1.5, x), [0.0, -0.5, 2.5])
    np.testing.assert_allclose(f(0.5, x), [0.5, -1.5, 3.5])  # same compilation, new weight
    # d/dw (w R)(x) = R(x)
    assert float(jax.grad(lambda w: (w * Huber(1.0))(x))(0.7)) == pytest.approx(0.5 + 1.5 + 3.5)
    leaves = jax.tree_util.tree_leaves(0.25 * TV())
    assert len(leaves) == 1 and float(leaves[0]) == 0.25


def test_sum_value_and_terms():
    x = x_of(seed=1)
    a, b = 0.3 * TV(), 2.0 * L1()
    s = a + b
    with jax.enable_x64(True):
        va, vb = float(_value(a, x)), float(_value(b, x))
        assert float(_value(s, x)) == pytest.approx(va + vb, rel=1e-12)
        terms = _terms(s, x)
        assert set(terms) == {"tv", "l1"}  # (jit returns dicts sorted by key)
        assert float(terms["tv"]) == pytest.approx(va, rel=1e-12)
        assert float(terms["l1"]) == pytest.approx(vb, rel=1e-12)
        assert float(sum(terms.values())) == pytest.approx(float(_value(s, x)), rel=1e-12)
    assert isinstance(s, PriorSum) and s.name == "tv+l1"


def test_duplicate_names_in_a_sum_are_numbered():
    x = x_of(seed=2)
    s = L1() + 2.0 * L1() + (L2() + 3.0 * L1())
    assert [w for w, _ in s.parts()] == [1.0, 2.0, 1.0, 3.0]  # nested sums flatten
    with jax.enable_x64(True):
        terms = _terms(s, x)
        l1, l2 = float(np.abs(x).sum()), 0.5 * float((x**2).sum())
        assert set(terms) == {"l1", "l1_2", "l2", "l1_3"}
        assert list(s.terms(x)) == ["l1", "l1_2", "l2", "l1_3"]  # eager: in the order of the sum
        np.testing.assert_allclose(
            [float(terms[k]) for k in ("l1", "l1_2", "l2", "l1_3")], [l1, 2 * l1, l2, 3 * l1]
        )
        assert float(_value(s, x)) == pytest.approx(6 * l1 + l2, rel=1e-12)


def test_weighted_sum_scales_every_term():
    x = x_of(seed=3)
    s = 0.5 * (L2() + 2.0 * L1())
    with jax.enable_x64(True):
        terms = _terms(s, x)
        assert set(terms) == {"l2", "l1"}
        assert float(terms["l2"]) == pytest.approx(0.25 * float((x**2).sum()), rel=1e-12)
        assert float(terms["l1"]) == pytest.approx(float(np.abs(x).sum()), rel=1e-12)
        assert float(_value(s, x)) == pytest.approx(float(sum(terms.values())), rel=1e-12)


def test_gradient_of_a_weighted_sum_matches_finite_differences():
    prior = 0.3 * TV(eps=0.1) + 2.0 * Huber(0.5) + L2()
    x, h = x_of((3, 4), seed=4), 1e-6
    with jax.enable_x64(True):
        g = np.asarray(jax.jit(jax.grad(prior))(x))
        eye = np.eye(x.size).reshape((x.size, *x.shape))
        values = np.asarray(jax.jit(jax.vmap(prior))(np.concatenate([x + h * eye, x - h * eye])))
    fd = ((values[: x.size] - values[x.size :]) / (2 * h)).reshape(x.shape)
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-8)


def test_sum_has_no_prox():
    s = L1() + L2()
    assert not s.has_prox and not (2.0 * s).has_prox
    with pytest.raises(
        NotImplementedError, match=r"has no proximal operator \(has_prox is False\)"
    ):
        s.prox(jnp.ones(3), 1.0)
    with pytest.raises(NotImplementedError, match=r"^2 \* L1\(\) \+ 2 \* L2\(\) has no"):
        (2.0 * s).prox(jnp.ones(3), 1.0)


def test_bad_algebra():
    with pytest.raises(TypeError, match=r"Prior \* Prior is not defined"):
        L1() * L2()
    with pytest.raises(TypeError, match=r"a prior weight must be a scalar, got shape \(2,\)"):
        L1() * jnp.ones(2)
    with pytest.raises(TypeError, match=r"a prior weight must be a scalar, got shape \(2,\)"):
        jnp.ones(2) * L1()
    with pytest.raises(TypeError):
        L1() + 1.0
    with pytest.raises(TypeError):
        1.0 + L1()


def test_numpy_array_weight_on_the_left_is_rejected():
    """NumPy must not broadcast the prior into an object array of weighted priors."""
    with pytest.raises(TypeError, match=r"a prior weight must be a scalar, got shape \(2,\)"):
        np.ones(2) * L1()
    assert isinstance(np.float64(2.0) * L1(), Weighted)  # a NumPy scalar is a fine weight


def test_repr_and_names():
    assert repr(2e-3 * TV()) == "0.002 * TV(axes=None, isotropic=True, eps=0, prox_iterations=50)"
    assert repr(L1() + 0.5 * Huber(2.0)) == "L1() + 0.5 * Huber(delta=2)"
    assert (2e-3 * TV()).name == "tv"
    assert [p.name for p in (L1(), L2(), Huber(), TV())] == ["l1", "l2", "huber", "tv"]


def test_priors_are_immutable_pytrees():
    p = 2.0 * L1()
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.weights = (3.0,)
    doubled = jax.tree_util.tree_map(lambda w: 2 * w, p)
    ((weight, inner),) = doubled.parts()
    assert isinstance(doubled, Weighted) and isinstance(inner, L1) and weight == 4.0
    x = jnp.array([1.0, -3.0])
    assert float(doubled(x)) == pytest.approx(16.0)


def test_subclass_without_value():
    class Bare(Prior):
        def __init__(self):
            super().__init__("bare")

    with pytest.raises(NotImplementedError, match=r"Bare does not implement value\(\)"):
        Bare()(jnp.ones(2))
    with pytest.raises(NotImplementedError, match=r"has no proximal operator"):
        Bare().prox(jnp.ones(2), 1.0)

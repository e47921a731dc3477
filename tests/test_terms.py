"""The weighted-sum algebra shared by losses and priors: flat parts with exact weights, the
convex-quadratic test, reductions, and the old names as aliases of the new classes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import calcil as cc
from calcil._internal.terms import Sum, Term
from calcil.losses import (
    Amplitude,
    ElementwiseLoss,
    LeastSquares,
    Loss,
    LossSum,
    Poisson,
    WeightedLeastSquares,
)
from calcil.priors import L1, TV, Huber, NonNegative, Prior, PriorSum, Tikhonov

X = jnp.array([3.0, -4.0, 0.5])
P = jnp.array([1.0, 2.0, 4.0])
BATCH = {"y": jnp.array([0.0, 1.0, 2.0]), "z": jnp.array([1.0, 1.0, 1.0])}


def weights(term):
    return [float(w) for w, _ in term.parts()]


def kinds(term):
    return [type(t).__name__ for _, t in term.parts()]


# ---------------------------------------------------------------------------- one algebra


def test_loss_sums_and_prior_sums_are_built_the_same_way():
    a, b, c = LeastSquares("y"), Poisson("y"), Amplitude("z")
    loss = a + 2.0 * (b + 3.0 * c)
    r, s, t = L1(), Huber(1.0), Tikhonov()
    prior = r + 2.0 * (s + 3.0 * t)
    assert type(loss) is LossSum and type(prior) is PriorSum
    assert isinstance(loss, Sum) and isinstance(prior, Sum)
    assert weights(loss) == weights(prior) == [1.0, 2.0, 6.0]
    assert [t is u for (_, t), u in zip(loss.parts(), (a, b, c), strict=True)] == [True] * 3
    assert [t is u for (_, t), u in zip(prior.parts(), (r, s, t), strict=True)] == [True] * 3
    assert loss.name == "l2+poisson+amplitude" and prior.name == "l1+huber+l2"
    with jax.enable_x64(True):
        la, lb, lc = (float(term(P, BATCH)) for term in (a, b, c))
        # p = (1, 2, 4), y = (0, 1, 2), z = 1: 0.5 (1 + 1 + 4); sum(p - y log p); 0.5 sum(..)
        want = (3.0, 7 - 5 * np.log(2), 0.5 * ((np.sqrt(2) - 1) ** 2 + 1))
        assert (la, lb, lc) == pytest.approx(want, rel=1e-6)
        assert float(loss(P, BATCH)) == pytest.approx(la + 2 * lb + 6 * lc, rel=1e-6)
        ra, rb, rc = (float(term(X)) for term in (r, s, t))
        # L1 = 7.5; Huber(1) = 2.5 + 3.5 + 0.125; Tikhonov = 0.5 * 25.25
        assert (ra, rb, rc) == pytest.approx((7.5, 6.125, 12.625))
        assert float(prior(X)) == pytest.approx(7.5 + 2 * 6.125 + 6 * 12.625)
        assert {k: float(v) for k, v in prior.terms(X).items()} == pytest.approx(
            {"l1": 7.5, "huber": 12.25, "l2": 75.75}
        )


def test_a_new_family_gets_the_algebra_from_two_small_classes():
    class Penalty(Term, family="penalty"):
        scale: float

        def __init__(self, scale):
            self.scale = scale
            super().__init__("penalty")

        def value(self, x):
            return self.scale * jnp.sum(x)

    class PenaltySum(Sum, Penalty):
        pass

    Penalty._sum = PenaltySum
    total = 2.0 * Penalty(1.0) + 0.5 * (Penalty(3.0) + Penalty(4.0))
    assert type(total) is PenaltySum and weights(total) == [2.0, 0.5, 0.5]
    assert float(total(jnp.ones(2))) == pytest.approx(2 * 2 + 0.5 * 6 + 0.5 * 8)
    assert list(total.terms(jnp.ones(2))) == ["penalty", "penalty_2", "penalty_3"]
    with pytest.raises(TypeError, match=r"Penalty \* Penalty is not defined"):
        Penalty(1.0) * Penalty(2.0)
    with pytest.raises(TypeError):
        Penalty(1.0) + L1()


def test_families_do_not_mix():
    with pytest.raises(TypeError):
        L1() + LeastSquares()
    with pytest.raises(TypeError):
        LeastSquares() + L1()
    with pytest.raises(TypeError, match=r"LossSum adds loss terms only; got L1\(\)"):
        LossSum((LeastSquares(), L1()))
    with pytest.raises(TypeError, match=r"Prior \* Prior is not defined"):
        L1() * LeastSquares()
    with pytest.raises(ValueError, match=r"PriorSum needs one or more terms"):
        PriorSum(())


# ---------------------------------------------------------------------------- parts


def test_parts_of_a_plain_term_is_the_term_with_weight_one():
    for term in (L1(), TV(), LeastSquares(), Poisson()):
        ((w, t),) = term.parts()
        assert w == 1.0 and t is term


def test_parts_multiply_nested_weights_exactly():
    assert weights(2.0 * (3.0 * L1())) == [6.0]
    assert weights(0.5 * (L1() + 4.0 * (TV() + 2.0 * Huber()))) == [0.5, 2.0, 4.0]
    assert kinds(0.5 * (L1() + 4.0 * (TV() + 2.0 * Huber()))) == ["L1", "TV", "Huber"]
    assert weights((L1() + 2.0 * L1()) + 3.0 * (L1() + L1())) == [1.0, 2.0, 3.0, 3.0]
    loss = 0.25 * (LeastSquares() + 8.0 * (Poisson() + 0.5 * Amplitude()))
    assert weights(loss) == [0.25, 2.0, 1.0]
    assert kinds(loss) == ["LeastSquares", "Poisson", "Amplitude"]
    w = jnp.float32(3.0)  # array weights stay arrays (leaves)
    ((weight, _),) = (w * (2.0 * L1())).parts()
    assert isinstance(weight, jax.Array) and float(weight) == 6.0


def test_parts_are_flat_and_their_weights_are_leaves():
    prior = 2.0 * (3.0 * L1() + Huber())
    assert not any(isinstance(t, Sum) for _, t in prior.parts())
    assert jax.tree_util.tree_leaves(prior) == [6.0, 2.0]  # Huber's delta is static
    halved = jax.tree_util.tree_map(lambda w: w / 2, prior)
    assert weights(halved) == [3.0, 1.0]
    # The same weight on two terms: d/dw (w (L1 + Tikhonov))(x) = L1(x) + Tikhonov(x).
    g = jax.grad(lambda w: (w * (L1() + Tikhonov()))(X))(0.7)
    assert float(g) == pytest.approx(7.5 + 12.625)


def test_weights_are_traceable_in_parts():
    @jax.jit
    def scaled_value(w):
        ((weight, term),) = (w * (2.0 * L1())).parts()
        return weight * term(X)

    assert float(scaled_value(1.5)) == pytest.approx(3.0 * 7.5)
    assert float(scaled_value(0.5)) == pytest.approx(1.0 * 7.5)


# ---------------------------------------------------------------------------- not_quadratic


@pytest.mark.parametrize(
    "term",
    [
        LeastSquares(),
        WeightedLeastSquares("y", jnp.array([1.0, 2.0, 0.0])),
        cc.losses.L2("y", reduction="mean") + 2.0 * cc.losses.WeightedL2("y", "w"),
        0.0 * LeastSquares(),
        3.0 * (LeastSquares("y") + 0.5 * LeastSquares("z")),
        -1.0 * (-2.0 * LeastSquares()),  # the weight that counts is the product, 2
        Tikhonov(),
        cc.priors.L2(),
        0.1 * Tikhonov() + Tikhonov(),
    ],
    ids=lambda t: repr(t),
)
def test_convex_quadratics(term):
    assert term.not_quadratic() is None


@pytest.mark.parametrize(
    ("term", "why"),
    [
        (Poisson(), "Poisson is not quadratic"),
        (Amplitude(), "Amplitude is not quadratic"),
        (L1(), "L1 is not quadratic"),
        (TV(), "TV is not quadratic"),
        (Huber(), "Huber is not quadratic"),
        (NonNegative(), "NonNegative is not quadratic"),
        (-1.0 * LeastSquares(), "its weight -1 is negative"),
        (2.0 * (-0.5 * LeastSquares()), "its weight -1 is negative"),
        (Tikhonov() + -0.25 * Tikhonov(), "its weight -0.25 is negative"),
        (jnp.float32(-3.0) * Tikhonov(), "its weight -3 is negative"),
        (1j * Tikhonov(), "its weight 0+1j is complex"),
        (LeastSquares() + 0.5 * Poisson(), "Poisson is not quadratic"),
        (2.0 * (Tikhonov() + TV()), "TV is not quadratic"),
        # the first reason in the order of the sum
        (Amplitude() + -1.0 * LeastSquares(), "Amplitude is not quadratic"),
        (-1.0 * LeastSquares() + Amplitude(), "its weight -1 is negative"),
    ],
    ids=lambda v: v if isinstance(v, str) else repr(v),
)
def test_not_quadratic_says_why(term, why):
    assert term.not_quadratic() == why


def test_a_traced_weight_counts_as_fine():
    seen = []

    @jax.jit
    def check(w):
        seen.append((w * Tikhonov()).not_quadratic())
        seen.append((w * Poisson()).not_quadratic())
        return w

    check(-1.0)
    assert seen == [None, "Poisson is not quadratic"]


def test_a_custom_quadratic_says_so_itself():
    class Energy(Prior):
        def __init__(self):
            super().__init__("energy")

        def value(self, x):
            return jnp.sum(x**2)

        def not_quadratic(self):
            return None

    assert (2.0 * Energy() + Tikhonov()).not_quadratic() is None
    assert (2.0 * Energy() + L1()).not_quadratic() == "L1 is not quadratic"


# ---------------------------------------------------------------------------- reductions


def test_reductions_of_a_mixed_sum_follow_the_logged_terms():
    loss = (
        LeastSquares("y")
        + 2.0 * (Poisson("y", reduction="mean") + Amplitude("z"))
        + WeightedLeastSquares("y", jnp.ones(3), reduction="mean")
        + 0.5 * LeastSquares("z", reduction="mean")
    )
    assert loss.reductions() == ("sum", "mean", "sum", "mean", "mean")
    terms = loss.terms(P, BATCH)
    assert list(terms) == ["l2", "poisson", "amplitude", "weighted_l2", "l2_2"]
    with jax.enable_x64(True):
        mean_l2 = 0.5 * 0.5 * float(np.mean((np.asarray(P) - 1.0) ** 2))  # (0 + 1 + 9) / 3
        assert float(loss.terms(P, BATCH)["l2_2"]) == pytest.approx(mean_l2)
        assert mean_l2 == pytest.approx(10 / 12)


def test_reductions_of_plain_and_scaled_losses():
    assert LeastSquares().reductions() == ("sum",)
    assert Poisson(reduction="mean").reductions() == ("mean",)
    assert (3.0 * Amplitude(reduction="mean")).reductions() == ("mean",)


def test_a_loss_without_reductions_says_what_to_implement():
    class Custom(Loss):
        def __init__(self):
            super().__init__("custom")

        def value(self, prediction, batch):
            return jnp.sum(prediction)

    assert float(Custom()(P, BATCH)) == 7.0
    assert Custom().check_data(BATCH) is None
    with pytest.raises(NotImplementedError, match=r"Custom does not say how its value combines"):
        (LeastSquares() + Custom()).reductions()


# ---------------------------------------------------------------------------- names


def test_old_names_are_aliases_of_the_new_classes():
    assert cc.losses.L2 is LeastSquares
    assert cc.losses.WeightedL2 is WeightedLeastSquares
    assert cc.priors.L2 is Tikhonov
    assert cc.priors.Weighted is PriorSum
    assert cc.losses.LossSum is LossSum
    assert type(2.0 * L1()) is PriorSum and type(2.0 * LeastSquares()) is LossSum
    assert issubclass(LeastSquares, ElementwiseLoss) and issubclass(LossSum, Loss)
    for module, names in (
        (cc.losses, ("L2", "LeastSquares", "WeightedL2", "WeightedLeastSquares", "LossSum")),
        (cc.priors, ("L2", "Tikhonov", "PriorSum", "Weighted")),
    ):
        assert set(names) <= set(module.__all__)


def test_renamed_classes_keep_their_logged_names_reprs_and_messages():
    assert (LeastSquares().name, WeightedLeastSquares("y", "w").name, Tikhonov().name) == (
        "l2",
        "weighted_l2",
        "l2",
    )
    assert repr(LeastSquares("y")) == "L2(target='y')"
    assert repr(0.5 * Tikhonov()) == "0.5 * L2()"
    weighted = WeightedLeastSquares("y", "w")
    assert repr(weighted) == "WeightedL2(target='y', weights=None, weights_key='w')"
    with pytest.raises(ValueError, match=r"^L2: data\['y'\] must hold finite values"):
        LeastSquares("y").check_data({"y": jnp.array([np.nan])})
    obj = cc.Objective(lambda p, b: p["x"], LeastSquares("y"), priors={"x": 2.0 * Tikhonov()})
    value, terms = obj({"x": jnp.array([1.0, 2.0, 3.0])}, BATCH)
    assert {k: float(v) for k, v in terms.items()} == {"loss/l2": 1.5, "prior/x/l2": 14.0}
    assert float(value) == 15.5


def test_reserved_method_names_cannot_be_fields():
    with pytest.raises(TypeError, match=r"\['parts'\] that would hide methods"):

        class Bad(Prior):
            parts: tuple

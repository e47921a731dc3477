"""Data-fidelity terms against NumPy/SciPy references, finite-difference gradients, safety at
zero, composition and error messages."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import gammaln
from scipy.stats import poisson

from calcil.losses import L2, Amplitude, LossSum, Poisson, WeightedL2
from tests.helpers import fd_grad, randn


@jax.jit
def _value(loss, prediction, batch):
    return loss(prediction, batch)


@jax.jit
def _grad(loss, prediction, batch):
    return jax.grad(loss)(prediction, batch)


@jax.jit
def _values(loss, predictions, batch):
    return jax.vmap(loss, (0, None))(predictions, batch)


@jax.jit
def _terms(loss, prediction, batch):
    return loss.terms(prediction, batch)


def value(loss, prediction, batch):
    return float(_value(loss, prediction, batch))


def assert_grad_matches_fd(loss, x, batch, rtol=1e-6):
    got = np.asarray(_grad(loss, x, batch))
    got = np.conj(got) if np.iscomplexobj(x) else got  # JAX's convention for complex inputs
    want = fd_grad(lambda xs: _values(loss, xs, batch), x, batched=True)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * max(1.0, np.abs(want).max()))


def data(seed=0, shape=(3, 4)):
    rng = np.random.default_rng(seed)
    u = randn(rng, shape, np.complex128)  # a field
    p = rng.uniform(0.5, 3.0, shape)  # a positive intensity
    y = rng.poisson(4.0, shape).astype(np.float64)  # photon counts (zeros included)
    w = rng.uniform(0.1, 2.0, shape)
    return rng, u, p, y, w


# ---------------------------------------------------------------------------- values


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_l2_matches_numpy(reduction):
    _, u, p, y, _ = data()
    reduce = np.sum if reduction == "sum" else np.mean
    with jax.enable_x64(True):
        got = value(L2("y", reduction=reduction), p, {"y": y})
        assert got == pytest.approx(reduce(0.5 * (p - y) ** 2), rel=1e-12)
        v = u[::-1]  # complex prediction against a complex measurement
        got = value(L2("m", reduction=reduction), u, {"m": v})
        assert got == pytest.approx(reduce(0.5 * np.abs(u - v) ** 2), rel=1e-12)


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_weighted_l2_matches_numpy(reduction):
    _, u, p, y, w = data(1)
    reduce = np.sum if reduction == "sum" else np.mean
    with jax.enable_x64(True):
        want = reduce(0.5 * w * (p - y) ** 2)
        assert value(WeightedL2("y", w, reduction=reduction), p, {"y": y}) == pytest.approx(want)
        # weights taken from the batch by name
        loss = WeightedL2("y", "w", reduction=reduction)
        assert value(loss, p, {"y": y, "w": w}) == pytest.approx(want, rel=1e-12)
        # weights broadcast along rows; complex prediction
        row = w[0]
        want = reduce(0.5 * row * np.abs(u - y) ** 2)
        got = value(WeightedL2("y", row, reduction=reduction), u, {"y": y})
        assert got == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_poisson_matches_scipy(reduction):
    _, u, p, y, _ = data(2)
    reduce = np.sum if reduction == "sum" else np.mean
    # negative log-likelihood without the constant log(y!)
    nll = -poisson.logpmf(y, p) - gammaln(y + 1)
    with jax.enable_x64(True):
        assert value(Poisson("y", reduction=reduction), p, {"y": y}) == pytest.approx(
            reduce(nll), rel=1e-12
        )
        # a complex prediction is a field: its intensity |u|^2 is the mean
        nll = -poisson.logpmf(y, np.abs(u) ** 2) - gammaln(y + 1)
        assert value(Poisson("y", reduction=reduction), u, {"y": y}) == pytest.approx(
            reduce(nll), rel=1e-12
        )


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_amplitude_matches_numpy(reduction):
    _, u, p, y, _ = data(3)
    reduce = np.sum if reduction == "sum" else np.mean
    with jax.enable_x64(True):
        want = reduce(0.5 * (np.sqrt(p) - np.sqrt(y)) ** 2)
        assert value(Amplitude("y", reduction=reduction), p, {"y": y}) == pytest.approx(want)
        want = reduce(0.5 * (np.abs(u) - np.sqrt(y)) ** 2)
        got = value(Amplitude("y", reduction=reduction), u, {"y": y})
        assert got == pytest.approx(want, rel=1e-12)


def test_values_by_hand():
    y = {"y": jnp.array([0.0, 1.0])}
    assert value(L2(), jnp.array([1.0, 3.0]), y) == pytest.approx(2.5)
    assert value(L2(reduction="mean"), jnp.array([1.0, 3.0]), y) == pytest.approx(1.25)
    assert value(WeightedL2("y", jnp.array([1.0, 4.0])), jnp.array([1.0, 1.0]), y) == 0.5
    # Poisson: (1 - 0) + (e - 1 * 1)
    assert value(Poisson(), jnp.array([1.0, np.e]), y) == pytest.approx(np.e)
    # Amplitude: |3 + 4i| = 5 against sqrt(9) = 3 -> 0.5 * 4
    assert value(Amplitude(), jnp.array([3 + 4j]), {"y": jnp.array([9.0])}) == pytest.approx(2.0)


def test_values_are_real_scalars_in_single_precision():
    u = jnp.ones((2, 3), jnp.complex64)
    batch = {"y": jnp.ones((2, 3), jnp.float32)}
    for loss in (L2(), WeightedL2("y", jnp.ones(3)), Poisson(), Amplitude()):
        for prediction in (u, u.real):
            v = _value(loss, prediction, batch)
            assert v.shape == () and v.dtype == jnp.float32


# ---------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("complex_", [False, True], ids=["intensity", "field"])
@pytest.mark.parametrize(
    "loss",
    [L2(), L2(reduction="mean"), WeightedL2("y", "w"), Poisson(), Amplitude()],
    ids=["l2", "l2-mean", "weighted_l2", "poisson", "amplitude"],
)
def test_gradient_matches_finite_differences(loss, complex_):
    _, u, p, y, w = data(4)
    with jax.enable_x64(True):
        assert_grad_matches_fd(loss, u if complex_ else p, {"y": y, "w": w})


def test_gradients_by_hand():
    p, y = jnp.array([2.0, 4.0]), jnp.array([1.0, 2.0])
    np.testing.assert_allclose(_grad(L2(), p, {"y": y}), p - y)
    np.testing.assert_allclose(_grad(Poisson(), p, {"y": y}), 1 - y / p)
    # d/dp 0.5 (sqrt(p) - sqrt(y))^2 = (sqrt(p) - sqrt(y)) / (2 sqrt(p))
    want = (np.sqrt(p) - np.sqrt(y)) / (2 * np.sqrt(p))
    np.testing.assert_allclose(_grad(Amplitude(), p, {"y": y}), want, rtol=1e-6)


def test_amplitude_gradient_where_the_intensity_is_negative():
    """sqrt(max(p, 0)) is flat for p < 0, so the loss is too: its gradient there is 0."""
    p = np.array([-0.5, -1e-3, 2.0])
    batch = {"y": np.array([1.0, 4.0, 1.0])}
    with jax.enable_x64(True):
        slopes = fd_grad(lambda ps: _values(Amplitude(), ps, batch), p, batched=True)
        np.testing.assert_allclose(slopes[:2], 0.0, atol=1e-9)
        assert_grad_matches_fd(Amplitude(), p, batch)


# ---------------------------------------------------------------------------- safe at zero


def test_poisson_is_safe_at_zero():
    zero = jnp.zeros(3)
    # y = 0 and p = 0: the term is p itself: value 0, gradient 1
    assert value(Poisson(), zero, {"y": zero}) == 0.0
    np.testing.assert_array_equal(_grad(Poisson(), zero, {"y": zero}), np.ones(3))
    # y > 0 and p = 0: the tangent at eps continues the term, finite value and gradient
    y = jnp.array([1.0, 0.0, 3.0])
    v = value(Poisson(), zero, {"y": y})
    assert v == pytest.approx(4.0 - 4.0 * np.log(1e-12), rel=1e-5)
    g = np.asarray(_grad(Poisson(), zero, {"y": y}))
    assert np.all(np.isfinite(g))
    # ... whose slope pushes a too-small (even negative) prediction back up
    np.testing.assert_allclose(g, [1 - 1 / 1e-12, 1.0, 1 - 3 / 1e-12], rtol=1e-5)
    g_neg = np.asarray(_grad(Poisson(), -jnp.ones(3), {"y": y}))
    assert g_neg[0] < 0 and g_neg[2] < 0
    # a zero field: the gradient through |u|^2 vanishes
    g = np.asarray(_grad(Poisson(), jnp.zeros(3, jnp.complex64), {"y": y}))
    np.testing.assert_array_equal(g, np.zeros(3))
    # p > 0 where y = 0: the term is p alone (no 0 * log)
    p = jnp.array([0.5, 2.0, 1e-30])
    assert value(Poisson(), p, {"y": zero}) == pytest.approx(2.5)
    np.testing.assert_allclose(_grad(Poisson(), p, {"y": zero}), np.ones(3))


def test_amplitude_gradient_is_finite_at_a_zero_field():
    y = {"y": jnp.array([0.0, 1.0, 4.0])}
    for zero in (jnp.zeros(3, jnp.complex64), jnp.zeros(3)):
        assert value(Amplitude(), zero, y) == pytest.approx(0.5 * (0 + 1 + 4))
        g = np.asarray(_grad(Amplitude(), zero, y))
        assert np.all(np.isfinite(g))
    # at a zero field the loss has a minimum along every direction where y = 0
    g = np.asarray(_grad(Amplitude(), jnp.zeros(3, jnp.complex64), {"y": jnp.zeros(3)}))
    np.testing.assert_array_equal(g, np.zeros(3))
    # a zero field with x64 as well
    with jax.enable_x64(True):
        g = np.asarray(_grad(Amplitude(), np.zeros(3, np.complex128), {"y": np.ones(3)}))
        assert np.all(np.isfinite(g))


# ---------------------------------------------------------------------------- composition


def test_weighted_loss_value_and_terms():
    _, _, p, y, _ = data(5)
    batch = {"y": y}
    with jax.enable_x64(True):
        v = value(Poisson(), p, batch)
        loss = 0.25 * Poisson()
        assert value(loss, p, batch) == pytest.approx(0.25 * v, rel=1e-12)
        assert value(Poisson() * 0.25, p, batch) == pytest.approx(0.25 * v, rel=1e-12)
        terms = _terms(loss, p, batch)
        assert set(terms) == {"poisson"}
        assert float(terms["poisson"]) == pytest.approx(0.25 * v, rel=1e-12)
        # the weight is a traceable leaf
        g = jax.grad(lambda w: (w * Poisson())(p, batch))(0.5)
        assert float(g) == pytest.approx(v, rel=1e-12)


def test_sum_of_losses_on_different_targets():
    _, _, p, y, _ = data(6)
    batch = {"y": y, "z": 2 * y}
    loss = L2("y") + 0.5 * Amplitude("z")
    with jax.enable_x64(True):
        a = 0.5 * np.sum((p - y) ** 2)
        b = 0.5 * 0.5 * np.sum((np.sqrt(p) - np.sqrt(2 * y)) ** 2)
        assert value(loss, p, batch) == pytest.approx(a + b, rel=1e-12)
        terms = _terms(loss, p, batch)
        assert set(terms) == {"l2", "amplitude"}
        assert float(terms["l2"]) == pytest.approx(a, rel=1e-12)
        assert float(terms["amplitude"]) == pytest.approx(b, rel=1e-12)
    assert isinstance(loss, LossSum) and loss.name == "l2+amplitude"
    weighted = 4.0 * loss  # a weighted sum scales every term
    with jax.enable_x64(True):
        terms = _terms(weighted, p, batch)
        assert float(terms["l2"]) == pytest.approx(4 * a, rel=1e-12)
        assert float(terms["amplitude"]) == pytest.approx(4 * b, rel=1e-12)
        assert value(weighted, p, batch) == pytest.approx(4 * (a + b), rel=1e-12)


def test_duplicate_names_in_a_sum_are_numbered():
    _, _, p, y, _ = data(7)
    batch = {"y": y, "z": y + 1}
    loss = L2("y") + (2.0 * L2("z") + L2("y", reduction="mean"))
    assert [w for w, _ in loss.parts()] == [1.0, 2.0, 1.0]  # nested sums flatten
    assert list(loss.terms(p, batch)) == ["l2", "l2_2", "l2_3"]  # eager: in the order of the sum
    with jax.enable_x64(True):
        terms = _terms(loss, p, batch)
        want = [
            0.5 * np.sum((p - y) ** 2),
            2.0 * 0.5 * np.sum((p - y - 1) ** 2),
            0.5 * np.mean((p - y) ** 2),
        ]
        got = [float(terms[k]) for k in ("l2", "l2_2", "l2_3")]
        np.testing.assert_allclose(got, want, rtol=1e-12)
        assert value(loss, p, batch) == pytest.approx(sum(want), rel=1e-12)


def test_custom_names():
    loss = L2("y", name="data") + Poisson("y", name="counts")
    assert set(loss.terms(jnp.ones(2), {"y": jnp.ones(2)})) == {"data", "counts"}


def test_jit_with_a_loss_as_argument_and_array_weights_as_leaves():
    _, _, p, y, w = data(8)
    p, y, w = (jnp.asarray(a, jnp.float32) for a in (p, y, w))
    for loss in (WeightedL2("y", w), 0.3 * Amplitude(), L2() + Poisson()):
        np.testing.assert_allclose(
            _value(loss, p, {"y": y}), loss(p, {"y": y}), rtol=1e-6
        )  # jitted vs eager
    leaves = jax.tree_util.tree_leaves(WeightedL2("y", w))
    assert len(leaves) == 1 and leaves[0].shape == w.shape


def test_repr():
    assert repr(L2("y")) == "L2(target='y')"
    assert repr(0.5 * Poisson("y", reduction="mean")) == (
        "0.5 * Poisson(target='y', reduction='mean', eps=1e-12)"
    )
    assert repr(L2() + Amplitude()) == ("L2(target='y') + Amplitude(target='y')")


# ---------------------------------------------------------------------------- errors


def test_missing_batch_key_lists_the_keys():
    with pytest.raises(KeyError, match=r"batch\['y'\], but the batch has \['z', 'w'\]"):
        L2("y")(jnp.ones(2), {"z": jnp.ones(2), "w": jnp.ones(2)})
    with pytest.raises(KeyError, match=r"Poisson reads batch\['counts'\]"):
        Poisson("counts")(jnp.ones(2), {"y": jnp.ones(2)})
    with pytest.raises(KeyError, match=r"but the batch has NoneType"):
        Amplitude()(jnp.ones(2), None)


def test_missing_weights_key_lists_the_keys():
    loss = WeightedL2("y", "w")
    with pytest.raises(KeyError, match=r"\['y', 'v'\]"):
        loss(jnp.ones(2), {"y": jnp.ones(2), "v": jnp.ones(2)})


def test_shape_mismatch():
    pattern = r"L2: prediction of shape \(3,\) does not match batch\['y'\] of shape \(3, 1\)"
    with pytest.raises(ValueError, match=pattern):
        L2()(jnp.ones(3), {"y": jnp.ones((3, 1))})
    with pytest.raises(ValueError, match=r"Poisson: prediction of shape \(2, 2\)"):
        Poisson()(jnp.ones((2, 2)), {"y": jnp.ones(4)})


@pytest.mark.parametrize("cls", [L2, Poisson, Amplitude])
def test_bad_reduction(cls):
    with pytest.raises(ValueError, match=r"reduction must be one of \('sum', 'mean'\), got 'max'"):
        cls("y", reduction="max")


def test_weighted_l2_needs_weights():
    with pytest.raises(ValueError, match=r"WeightedL2 needs weights"):
        WeightedL2("y")


def test_bad_weights():
    with pytest.raises(TypeError, match=r"a loss can be multiplied by a scalar weight only"):
        L2() * jnp.ones(2)
    with pytest.raises(TypeError):
        L2() + 1.0


def test_loss_times_loss_raises_without_a_jax_deprecation():
    """``loss * loss`` must be rejected before ``jnp.ndim`` sees a non-array (JAX deprecates
    that and will make it an error of its own)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(TypeError, match=r"a loss can be multiplied by a scalar weight only"):
            L2() * L2()


def test_numpy_array_weight_on_the_left_is_rejected():
    """NumPy must not broadcast the loss into an object array of weighted losses."""
    with pytest.raises(TypeError, match=r"a loss can be multiplied by a scalar weight only"):
        np.ones(2) * L2()


# ---------------------------------------------------------------------------- data checks


def test_finite_counts_and_intensities_pass_the_data_check():
    _, u, _, y, w = data(11)
    batch = {"y": y, "w": w}
    losses = (L2(), Poisson(), Amplitude(), WeightedL2("y", "w"), WeightedL2("y", w))
    for loss in (*losses, 0.5 * Poisson() + L2()):
        assert loss.check_data(batch) is None
        assert loss.check_data({"y": jnp.asarray(y), "w": jnp.asarray(w)}) is None
    assert Poisson().check_data({"y": np.array([0, 3, 7])}) is None  # integer counts, zeros
    assert L2().check_data({"y": jnp.asarray(u, jnp.complex64)}) is None
    assert L2().check_data({"y": np.array([-1.5, 2.0])}) is None  # L2 takes any real data


@pytest.mark.parametrize("to_array", [np.asarray, jnp.asarray], ids=["numpy", "jax"])
@pytest.mark.parametrize(
    ("cls", "shown"), [(L2, "L2"), (Poisson, "Poisson"), (Amplitude, "Amplitude")]
)
def test_non_finite_targets_are_rejected_with_count_and_position(cls, shown, to_array):
    y = to_array(np.array([[1.0, 2.0, np.nan], [np.inf, 3.0, np.nan]], np.float32))
    pattern = (
        rf"{shown}: data\['y'\] must hold finite values, but has 2 NaN and 1 infinite "
        r"values \(of 6; the first at index \(0, 2\), shape \(2, 3\)\)\. Replace them"
    )
    with pytest.raises(ValueError, match=pattern):
        cls("y").check_data({"y": y})


def test_complex_targets_with_nan_are_rejected():
    y = jnp.array([1 + 1j, complex(0, np.nan), 2.0], jnp.complex64)
    with pytest.raises(ValueError, match=r"1 NaN value \(of 3; the first at index \(1,\)"):
        L2().check_data({"y": y})


@pytest.mark.parametrize("to_array", [np.asarray, jnp.asarray], ids=["numpy", "jax"])
def test_negative_counts_are_rejected_by_poisson(to_array):
    y = to_array(np.array([4.0, -2.0, 0.0, -0.5], np.float32))
    pattern = (
        r"Poisson: data\['counts'\] must be >= 0 \(photon counts\), but has 2 negative values "
        r"\(of 4; smallest -2, the first at index \(1,\), shape \(4,\)\)\. Pass counts"
    )
    with pytest.raises(ValueError, match=pattern):
        Poisson("counts").check_data({"counts": y})


def test_negative_intensities_are_rejected_by_amplitude():
    pattern = (
        r"Amplitude: data\['y'\] must be >= 0 \(measured intensities.*\), but has 1 negative "
        r"value \(of 3; smallest -0.25, the first at index \(2,\), shape \(3,\)\)\. Clip"
    )
    with pytest.raises(ValueError, match=pattern):
        Amplitude().check_data({"y": jnp.array([1.0, 0.0, -0.25])})


def test_weighted_sums_and_loss_sums_check_every_term():
    y = {"y": jnp.array([1.0, -1.0]), "z": jnp.array([1.0, np.nan])}
    assert L2("y").check_data(y) is None
    with pytest.raises(ValueError, match=r"Poisson: data\['y'\] must be >= 0"):
        (3.0 * Poisson("y")).check_data(y)
    with pytest.raises(ValueError, match=r"Poisson: data\['y'\] must be >= 0"):
        (L2("y") + 0.5 * Poisson("y")).check_data(y)
    with pytest.raises(ValueError, match=r"L2: data\['z'\] must hold finite values"):
        (L2("y") + 2.0 * L2("z")).check_data(y)
    with pytest.raises(KeyError, match=r"Amplitude reads batch\['v'\], but the batch has"):
        (L2("y") + Amplitude("v")).check_data(y)


def test_traced_data_is_not_checked():
    @jax.jit
    def checked(y):
        (L2() + Poisson()).check_data({"y": y})
        return jnp.sum(y)

    assert float(checked(jnp.array([-1.0, 2.0]))) == 1.0


def test_weights_of_the_wrong_shape_name_both_shapes():
    pattern = (
        r"WeightedL2: the weights of shape \(3,\) do not broadcast to the shape \(2, 4\) of "
        r"data\['y'\]"
    )
    with pytest.raises(ValueError, match=pattern):
        WeightedL2("y", jnp.ones(3)).check_data({"y": jnp.zeros((2, 4))})
    pattern = r"the weights data\['w'\] of shape \(2, 2, 4\) do not broadcast to the shape \(2, 4\)"
    with pytest.raises(ValueError, match=pattern):  # broadcasts, but would enlarge the loss
        WeightedL2("y", "w").check_data({"y": jnp.zeros((2, 4)), "w": jnp.ones((2, 2, 4))})
    for weights in (jnp.ones(4), jnp.ones((2, 1)), jnp.ones(())):  # these broadcast
        assert WeightedL2("y", weights).check_data({"y": jnp.zeros((2, 4))}) is None
    # evaluating the loss (eagerly or traced) gives the same error instead of a JAX one
    pattern = r"the weights of shape \(3,\) do not broadcast to the shape \(4,\) of batch\['y'\]"
    with pytest.raises(ValueError, match=pattern):
        WeightedL2("y", jnp.ones(3))(jnp.ones(4), {"y": jnp.zeros(4)})
    with pytest.raises(ValueError, match=pattern):
        _value(WeightedL2("y", jnp.ones(3)), jnp.ones(4), {"y": jnp.zeros(4)})


def test_negative_or_non_finite_weights_are_rejected():
    y = jnp.zeros(3)
    pattern = (
        r"WeightedL2: the weights data\['w'\] must be >= 0 \(weights are inverse noise "
        r"variances\), but has 1 negative value \(of 3; smallest -1, the first at index \(1,\)"
    )
    with pytest.raises(ValueError, match=pattern):
        WeightedL2("y", "w").check_data({"y": y, "w": jnp.array([1.0, -1.0, 0.0])})
    with pytest.raises(ValueError, match=r"the weights must hold finite values, but has 1 inf"):
        WeightedL2("y", np.array([1.0, np.inf, 0.0])).check_data({"y": y})

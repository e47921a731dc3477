"""PDHG: TV deconvolution reaches FISTA's minimum, a least-absolute-deviations fit is the
median, Poisson counts and a constraint on a transformed variable against closed forms,
and the errors for what it cannot split."""

import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize

import calcil as cc
from calcil.priors import L2, L21, TV, NonNegative
from tests.solvers.test_admm import LAM, D, N, deconvolution_data, objective


def test_tv_deconvolution_reaches_the_fista_minimum():
    data, init = deconvolution_data(), {"x": jnp.zeros((N, N))}
    reference = objective(LAM * TV(prox_iterations=200))
    fista = cc.ProximalGradient(reference).run(init, data, iterations=400, log_every=400)
    pdhg = cc.PDHG(objective(LAM * (L21() @ D))).run(init, data, iterations=600, log_every=600)
    best = float(reference(fista.params, data)[0])
    got = float(reference(pdhg.params, data)[0])
    assert abs(got - best) <= 3e-3 * best, (got, best)
    steps = pdhg.history["pdhg/primal_step"]
    assert np.all(steps == steps[0]) and 0 < steps[0] < 1


def test_least_absolute_deviations_give_the_median():
    y = jnp.array([0.3, -1.0, 7.0, 0.5, 100.0, 0.4, -2.0])  # outliers do not pull it
    obj = cc.Objective(lambda p, b: jnp.broadcast_to(p["x"], (7,)), cc.losses.L1("y"))
    result = cc.PDHG(obj).run({"x": jnp.zeros(())}, {"y": y}, iterations=3000, log_every=3000)
    assert float(result.params["x"]) == pytest.approx(0.4, abs=2e-3)


def test_poisson_counts_with_a_tikhonov_prior_match_the_closed_form():
    """min sum(x - y log x) + lam/2 |x|^2 per pixel: lam x^2 + x - y = 0."""
    lam = 0.5
    y = jnp.array([0.0, 1.0, 4.0, 10.0])
    obj = cc.Objective(lambda p, b: p["x"], cc.losses.Poisson("y"), priors={"x": lam * L2()})
    result = cc.PDHG(obj).run({"x": jnp.ones(4)}, {"y": y}, iterations=500)
    want = (-1 + np.sqrt(1 + 4 * lam * np.asarray(y))) / (2 * lam)
    np.testing.assert_allclose(result.params["x"], want, atol=1e-3)


def test_a_constraint_on_a_transformed_variable():
    """min 0.5 |x - y|^2 subject to w x >= 0 (w > 0): x = max(y, 0), the constraint dualised."""
    y = jnp.array([1.0, -2.0, 0.5, -0.1])
    W = cc.operators.Diagonal(jnp.array([1.0, 3.0, 0.5, 2.0]))
    obj = cc.Objective(lambda p, b: p["x"], cc.losses.L2("y"), priors={"x": NonNegative() @ W})
    result = cc.PDHG(obj).run({"x": jnp.zeros(4)}, {"y": y}, iterations=400)
    np.testing.assert_allclose(result.params["x"], np.maximum(y, 0), atol=1e-3)
    assert result.history["pdhg/infeasibility"][-1] < 1e-3
    assert np.all(result.history["prior/x/nonnegative"] == 0)


@pytest.mark.parametrize("loss", ["l2", "weighted", "l1", "poisson"])
def test_loss_proxes_match_a_scalar_minimisation(loss):
    """Each loss is a sum over pixels, so its prox is a scalar problem per pixel, solved
    here by SciPy in double precision on the loss written again in NumPy."""
    rng = np.random.default_rng(5)
    y = rng.uniform(0, 3, 6)
    w = rng.uniform(0.5, 2, 6)
    v, step = rng.uniform(-1, 4, 6), 0.7
    term, elementwise = {
        "l2": (cc.losses.L2("y"), lambda u, i: 0.5 * (u - y[i]) ** 2),
        "weighted": (cc.losses.WeightedL2("y", w), lambda u, i: 0.5 * w[i] * (u - y[i]) ** 2),
        "l1": (cc.losses.L1("y", reduction="mean"), lambda u, i: abs(u - y[i]) / 6),
        "poisson": (2.0 * cc.losses.Poisson("y"), lambda u, i: 2 * (u - y[i] * np.log(u))),
    }[loss]
    batch = {"y": jnp.asarray(y, jnp.float32)}
    got = np.asarray(term.prox(jnp.asarray(v, jnp.float32), step, batch), float)
    for i in range(6):
        want = scipy.optimize.minimize_scalar(
            lambda u, i=i: 0.5 * (u - v[i]) ** 2 + step * elementwise(u, i),
            bounds=(1e-12 if loss == "poisson" else -10, 10),
            method="bounded",
            options={"xatol": 1e-10},
        ).x
        assert got[i] == pytest.approx(want, abs=1e-5), (i, got[i], want)


def test_what_pdhg_cannot_split_is_a_clear_error():
    amplitude = cc.Objective(lambda p, b: p["x"], cc.losses.Amplitude("y"))
    with pytest.raises(ValueError, match="has none"):
        cc.PDHG(amplitude)
    with pytest.raises(ValueError, match="step_ratio"):
        cc.PDHG(objective(L2()), step_ratio=0)
    nonlinear = cc.Objective(lambda p, b: p["x"] ** 2, cc.losses.L2("y"))
    with pytest.raises(ValueError, match=r"not linear"):
        cc.PDHG(nonlinear).run({"x": jnp.ones(3)}, {"y": jnp.ones(3)}, iterations=2)

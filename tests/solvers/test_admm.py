"""ADMM: TV deconvolution by splitting reaches FISTA's minimum, constraints and sparsity
against closed forms and SciPy, residual balancing, and the errors for what it cannot split."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize

import calcil as cc
from calcil.priors import L1, L21, TV, NonNegative

N, LAM = 32, 0.02
A = cc.operators.Convolve(jnp.ones((5, 5)) / 25, (N, N))
D = cc.operators.FiniteDifference((N, N), boundary="neumann")


def deconvolution_data():
    x = np.zeros((N, N), np.float32)
    x[8:24, 10:22] = 1
    x[12:16, 4:28] = 0.5
    noise = 0.02 * np.random.default_rng(0).standard_normal((N, N)).astype(np.float32)
    return {"y": A(jnp.asarray(x)) + noise}


def objective(prior):
    return cc.Objective(lambda p, b: A(p["x"]), cc.losses.L2("y"), priors={"x": prior})


def test_tv_deconvolution_by_splitting_reaches_the_fista_minimum():
    data, init = deconvolution_data(), {"x": jnp.zeros((N, N))}
    reference = objective(LAM * TV(prox_iterations=200))
    fista = cc.ProximalGradient(reference).run(init, data, iterations=400, log_every=400)
    split = objective(LAM * (L21() @ D))
    admm = cc.ADMM(split, rho=0.1).run(init, data, iterations=150, log_every=50)
    best = float(reference(fista.params, data)[0])
    got = float(reference(admm.params, data)[0])
    assert abs(got - best) <= 5e-4 * best, (got, best)  # 1.5e-4 at 150 iterations
    assert admm.fast_path.startswith("used")
    r = admm.history["admm/primal_residual"]
    assert r[-1] < 1e-2 * r[:5].max()
    # loss/total: the data term at x plus the prior at the split variable z = D x
    assert set(admm.history) >= {"loss/l2", "prior/x/l21", "admm/dual_residual", "admm/rho"}


def test_non_negative_least_squares_matches_scipy():
    rng = np.random.default_rng(1)
    M = rng.standard_normal((12, 8))
    y = rng.standard_normal(12)
    obj = cc.Objective(
        lambda p, b: jnp.dot(b["M"], p["x"], precision=jax.lax.Precision.HIGHEST),
        cc.losses.L2("y"),
        priors={"x": NonNegative()},
    )
    data = {"M": jnp.asarray(M, jnp.float32), "y": jnp.asarray(y, jnp.float32)}
    result = cc.ADMM(obj, relaxation=1.6).run({"x": jnp.zeros(8)}, data, iterations=300)
    want, _ = scipy.optimize.nnls(M, y)
    np.testing.assert_allclose(result.params["x"], want, atol=2e-3)
    assert want.min() == 0 and np.asarray(result.params["x"]).min() > -2e-3  # active set


def test_residual_balancing_moves_a_poor_rho():
    y = jnp.array([3.0, 0.5, -2.0, 0.0])
    obj = cc.Objective(lambda p, b: p["x"], cc.losses.L2("y"), priors={"x": L1()})
    fixed = cc.ADMM(obj, rho=1e-3, adaptive=False).run({"x": jnp.zeros(4)}, {"y": y}, iterations=40)
    balanced = cc.ADMM(obj, rho=1e-3).run({"x": jnp.zeros(4)}, {"y": y}, iterations=40)
    assert np.all(fixed.history["admm/rho"] == np.float32(1e-3))
    assert balanced.history["admm/rho"][-1] > 0.1
    np.testing.assert_allclose(balanced.params["x"], [2.0, 0.0, -1.0, 0.0], atol=1e-4)
    assert np.abs(np.asarray(fixed.params["x"]) - [2.0, 0.0, -1.0, 0.0]).max() > 1e-2


def test_what_admm_cannot_split_is_a_clear_error():
    with pytest.raises(ValueError, match="rho must be a positive number"):
        cc.ADMM(objective(L1()), rho=0.0)
    with pytest.raises(ValueError, match="relaxation alpha must lie in"):
        cc.ADMM(objective(L1()), relaxation=2.0)
    poisson = cc.Objective(lambda p, b: p["x"], cc.losses.Poisson("y"), priors={"x": L1()})
    with pytest.raises(ValueError, match=r"must be a\s+convex quadratic"):
        cc.ADMM(poisson)

    class NoProx(cc.priors.Prior):
        def __init__(self):
            super().__init__("noprox")

        def value(self, x):
            return jnp.sum(x**4)

    with pytest.raises(ValueError, match="has none"):
        cc.ADMM(objective(NoProx() @ D))
    nonlinear = cc.Objective(lambda p, b: p["x"] ** 2, cc.losses.L2("y"), priors={"x": L1()})
    with pytest.raises(ValueError, match=r"not\s+linear"):
        cc.ADMM(nonlinear).run({"x": jnp.ones(3)}, {"y": jnp.ones(3)}, iterations=2)


def test_wavelet_sparsity_by_admm_is_soft_thresholding_of_the_coefficients():
    """min 0.5 ||x - y||^2 + lam ||W x||_1 with W orthonormal: x = W^H soft(W y, lam)."""
    lam = 0.3
    W = cc.operators.Wavelet((16, 16), "db2", levels=2)
    y = jnp.asarray(np.random.default_rng(6).standard_normal((16, 16)), jnp.float32)
    obj = cc.Objective(lambda p, b: p["x"], cc.losses.L2("y"), priors={"x": lam * (L1() @ W)})
    result = cc.ADMM(obj).run({"x": jnp.zeros((16, 16))}, {"y": y}, iterations=100)
    c = np.asarray(W(y))
    want = W.H(jnp.asarray(np.sign(c) * np.maximum(np.abs(c) - lam, 0), jnp.float32))
    np.testing.assert_allclose(result.params["x"], want, atol=1e-4)


def test_plug_and_play_admm_with_a_denoiser():
    """A denoiser that is the prox of lam/rho ||.||_1 (soft thresholding at sigma) turns
    PnP-ADMM (fixed rho) into ADMM with that L1 prior."""
    y = jnp.array([3.0, 0.5, -2.0, 0.1])
    rho, lam = 1.0, 1.0
    soft = cc.priors.Denoiser(lambda x, s: L1().prox(x, s), sigma=lam / rho)
    pnp = cc.Objective(lambda p, b: p["x"], cc.losses.L2("y"), priors={"x": soft})
    result = cc.ADMM(pnp, rho=rho, adaptive=False).run({"x": jnp.zeros(4)}, {"y": y}, iterations=80)
    np.testing.assert_allclose(result.params["x"], [2.0, 0.0, -1.0, 0.0], atol=1e-4)


def test_circulant_problems_solve_the_x_update_exactly_by_fft():
    """Periodic differences and a circular blur: the x-update is one FFT pair and the run
    equals ADMM whose CG x-update is run to convergence; Neumann differences are not
    circulant (CG, and an error when the FFT is forced)."""
    data, init = deconvolution_data(), {"x": jnp.zeros((N, N))}
    periodic = cc.operators.FiniteDifference((N, N), boundary="periodic")
    split = objective(LAM * (L21() @ periodic))
    exact = cc.ADMM(split, rho=0.1, adaptive=False).run(init, data, iterations=30)
    cg = cc.ADMM(split, rho=0.1, adaptive=False, x_update="cg", cg_iterations=200)
    iterative = cg.run(init, data, iterations=30)
    assert exact.fast_path.endswith("x-update by FFT") and iterative.fast_path.endswith("by CG")
    np.testing.assert_allclose(exact.params["x"], iterative.params["x"], atol=1e-4)
    neumann = cc.ADMM(objective(LAM * (L21() @ D))).run(init, data, iterations=1)
    assert neumann.fast_path.endswith("x-update by CG")
    with pytest.raises(ValueError, match="sum C\\^H C is not a Fourier multiplier"):
        cc.ADMM(objective(LAM * (L21() @ D)), x_update="fft").run(init, data, iterations=1)

"""ProximalGradient (FISTA): closed forms, exact sparsity, step rules, errors, run features."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import calcil as cc
from calcil.logs import read_scalars
from tests.helpers import randn


def run(obj, init, data, iterations, solver_kwargs=None, **kwargs):
    kwargs.setdefault("log_every", iterations)
    solver = cc.ProximalGradient(obj, **(solver_kwargs or {}))
    return solver.run(init, data, iterations, progress=False, **kwargs)


def soft(x, t):
    """Soft thresholding of the modulus (complex: the phase is kept)."""
    a = np.abs(x)
    return np.where(a > t, x * (1 - t / np.maximum(a, 1e-30)), 0)


def gaussian_psf(size, width):
    r = np.arange(size) - size // 2
    k = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / width)
    return (k / k.sum()).astype(np.float32)


def sparse_problem(seed=0, m=96, n=128, k=6):
    rng = np.random.default_rng(seed)
    M = (rng.standard_normal((m, n)) / np.sqrt(m)).astype(np.float32)
    x_true = np.zeros(n, np.float32)
    support = rng.choice(n, k, replace=False)
    x_true[support] = rng.choice([-1, 1], k) * (1 + rng.random(k))
    y = (M @ x_true + 0.01 * rng.standard_normal(m)).astype(np.float32)
    Mj = jnp.asarray(M)
    A = cc.operators.from_function(lambda x: Mj @ x, (n,), linear=True)
    return M, A, x_true, y, support


# ---------------------------------------------------------------------- closed forms
@pytest.mark.parametrize("dtype", [np.float32, np.complex64])
def test_identity_forward_gives_the_soft_threshold_of_the_data(dtype):
    """min 0.5||x - y||^2 + lam ||x||_1 is soft(y, lam): exact zeros, real or complex."""
    y = randn(np.random.default_rng(0), 50, dtype)
    lam = 0.8
    obj = cc.Objective(lambda p, b: p["x"], cc.losses.L2("y"), priors={"x": lam * cc.priors.L1()})
    result = run(obj, {"x": jnp.zeros(50, dtype)}, {"y": jnp.asarray(y)}, 30)
    x, want = np.asarray(result.params["x"]), soft(y, lam)
    assert x.dtype == dtype
    np.testing.assert_array_equal(x == 0, want == 0)
    np.testing.assert_allclose(x, want, atol=1e-6)
    assert 0 < np.count_nonzero(want) < 50


def test_diagonal_forward_matches_the_elementwise_closed_form():
    """min 0.5||d x - y||^2 + lam ||x||_1: x = soft(d y, lam) / d^2 per element."""
    rng = np.random.default_rng(1)
    d = rng.uniform(0.5, 2.0, 64).astype(np.float32)
    y = rng.standard_normal(64).astype(np.float32)
    lam = 0.3
    A = cc.operators.Diagonal(jnp.asarray(d))
    obj = cc.Objective(
        lambda p, b: A(p["x"]), cc.losses.L2("y"), priors={"x": lam * cc.priors.L1()}
    )
    result = run(obj, {"x": jnp.zeros(64)}, {"y": jnp.asarray(y)}, 150)
    want = soft(d * y, lam) / d**2
    x = np.asarray(result.params["x"])
    np.testing.assert_array_equal(x == 0, want == 0)
    np.testing.assert_allclose(x, want, atol=1e-5)
    # the step comes from the Lipschitz constant max d^2 (power iteration, safety 1.05)
    step = result.history["fista/step_size"][0]
    assert 1 / (1.05 * d.max() ** 2) <= step < 1.001 / (1.05 * d.max() ** 2)


def test_lipschitz_step_of_a_circular_blur_is_one_over_the_largest_squared_gain():
    n = 64
    psf = gaussian_psf(9, 4.0)
    A = cc.operators.Convolve(jnp.asarray(psf), (n, n))
    h = np.zeros((n, n))
    h[:9, :9] = psf
    L = np.abs(np.fft.fft2(h)).max() ** 2  # |K|^2 is the spectrum of A^T A
    obj = cc.Objective(lambda p, b: A(p["x"]), cc.losses.L2("y"))
    data = {"y": jnp.zeros((n, n))}
    result = run(obj, {"x": jnp.zeros((n, n))}, data, 1)
    step = result.history["fista/step_size"][0]
    assert 1.0 <= step * 1.05 * L < 1.01


def test_sparse_recovery_has_exact_zeros_and_satisfies_the_lasso_optimality_conditions():
    M, A, x_true, y, support = sparse_problem()
    lam = 0.05
    obj = cc.Objective(
        lambda p, b: A(p["x"]), cc.losses.L2("y"), priors={"x": lam * cc.priors.L1()}
    )
    result = run(obj, {"x": jnp.zeros(128)}, {"y": jnp.asarray(y)}, 200)
    x = np.asarray(result.params["x"])
    assert np.count_nonzero(x) == len(support)
    assert set(np.flatnonzero(x)) == set(support)
    assert np.all(np.sign(x[support]) == np.sign(x_true[support]))
    # KKT: A^T (A x - y) = -lam sign(x) on the support, |.| <= lam off it
    g = M.astype(np.float64).T @ (M @ x - y)
    on = x != 0
    np.testing.assert_allclose(g[on], -lam * np.sign(x[on]), atol=5e-6)
    assert np.abs(g[~on]).max() <= lam + 5e-6


def test_fista_beats_plain_proximal_gradient_for_the_same_iterations():
    _, A, _, y, _ = sparse_problem(seed=1)
    obj = cc.Objective(
        lambda p, b: A(p["x"]), cc.losses.L2("y"), priors={"x": 0.05 * cc.priors.L1()}
    )
    init, data = {"x": jnp.zeros(128)}, {"y": jnp.asarray(y)}
    best = run(obj, init, data, 500).history["loss/total"][-1]
    gap = {}
    for name, kwargs in {
        "fista": {},
        "fista-norestart": {"restart": False},
        "ista": {"accelerated": False},
    }.items():
        gap[name] = run(obj, init, data, 40, kwargs).history["loss/total"][-1] - best
    assert gap["fista"] < 0.05 * gap["ista"]
    assert gap["fista-norestart"] < 0.5 * gap["ista"]


@pytest.mark.parametrize(
    ("prior", "want"),
    [
        (cc.priors.NonNegative(), lambda u: np.maximum(u, 0)),
        (cc.priors.Box(-0.5, 0.25), lambda u: np.clip(u, -0.5, 0.25)),
    ],
)
def test_constraints_are_applied_by_projection(prior, want):
    """A separable quadratic under a box: the projection of the unconstrained minimiser."""
    rng = np.random.default_rng(2)
    d = rng.uniform(0.5, 2.0, 40).astype(np.float32)
    y = rng.standard_normal(40).astype(np.float32)
    A = cc.operators.Diagonal(jnp.asarray(d))
    obj = cc.Objective(lambda p, b: A(p["x"]), cc.losses.L2("y"), priors={"x": prior})
    result = run(obj, {"x": jnp.zeros(40)}, {"y": jnp.asarray(y)}, 150)
    np.testing.assert_allclose(result.params["x"], want(y / d), atol=1e-5)
    assert np.all(np.isfinite(result.history["loss/total"]))
    assert np.all(result.history[f"prior/x/{prior.name}"] == 0)


def test_tv_deconvolution_improves_on_the_measurement():
    rng = np.random.default_rng(3)
    n = 64
    x_true = np.zeros((n, n), np.float32)
    x_true[10:30, 12:40] = 1.0
    x_true[35:55, 20:50] = 0.5
    A = cc.operators.Convolve(jnp.asarray(gaussian_psf(9, 4.0)), (n, n))
    y = np.asarray(A(jnp.asarray(x_true))) + 0.05 * rng.standard_normal((n, n)).astype(np.float32)
    obj = cc.Objective(
        lambda p, b: A(p["x"]), cc.losses.L2("y"), priors={"x": 0.02 * cc.priors.TV()}
    )
    result = run(obj, {"x": jnp.asarray(y)}, {"y": jnp.asarray(y)}, 60)

    def error(x):
        return np.linalg.norm(np.asarray(x) - x_true) / np.linalg.norm(x_true)

    assert error(result.params["x"]) < 0.4 * error(y)
    assert set(result.history) >= {"loss/l2", "prior/x/tv", "fista/step_size", "fista/momentum"}


# ---------------------------------------------------------------------- backtracking
def test_poisson_with_a_diagonal_forward_reaches_y_over_d_with_backtracking():
    """min sum(d x - y log(d x)) over x >= 0: x = y / d (0 where no photon was counted)."""
    rng = np.random.default_rng(4)
    d = rng.uniform(0.5, 2.0, 200).astype(np.float32)
    y = rng.poisson(d * rng.uniform(0, 20, 200)).astype(np.float32)
    A = cc.operators.Diagonal(jnp.asarray(d))
    obj = cc.Objective(
        lambda p, b: A(p["x"]), cc.losses.Poisson("y"), priors={"x": cc.priors.NonNegative()}
    )
    result = run(obj, {"x": jnp.ones(200)}, {"y": jnp.asarray(y)}, 300)
    x = np.asarray(result.params["x"])
    assert "fista/backtracks" in result.history  # chosen automatically for a Poisson loss
    np.testing.assert_array_equal(x[y == 0], 0)
    assert np.abs(x - y / d).max() < 1e-3 * (y / d).max()


def test_poisson_deconvolution_decreases_and_reaches_a_long_gradient_descent_run():
    rng = np.random.default_rng(5)
    n = 32
    x_true = np.full((n, n), 2.0)
    x_true[8:20, 6:14] += 40
    x_true[14:26, 16:28] += 15
    psf = jnp.array([[0.0, 0.1, 0.0], [0.1, 0.6, 0.1], [0.0, 0.1, 0.0]])
    A = cc.operators.Convolve(psf, (n, n))
    y = rng.poisson(np.asarray(A(jnp.asarray(x_true, jnp.float32)))).astype(np.float32)
    data, init = {"y": jnp.asarray(y)}, {"x": jnp.full((n, n), float(y.mean()))}
    nonneg = cc.priors.NonNegative()
    obj = cc.Objective(lambda p, b: A(p["x"]), cc.losses.Poisson("y"), priors={"x": nonneg})
    values = run(obj, init, data, 300).history["loss/total"]
    reference = cc.GradientSolver(obj, groups={"x": cc.Group(optax.adam(0.5), project=nonneg)})
    best = reference.run(init, data, 3000, log_every=3000, progress=False).history["loss/total"]
    scale = abs(best[-1])
    assert np.diff(values).max() < 1e-5 * scale  # increases at rounding level only
    assert values[-1] < best[-1] + 1e-5 * scale
    assert values[60] < best[-1] + 1e-4 * scale


def test_backtracking_can_be_forced_and_shrinks_a_too_large_step():
    obj = cc.Objective(lambda p, b: 3.0 * p["x"], cc.losses.L2("y"), priors={"x": cc.priors.L1()})
    y = jnp.array([6.0, 0.5, -9.0])
    result = run(obj, {"x": jnp.zeros(3)}, {"y": y}, 40, {"step": 1.0, "backtracking": True})
    steps = result.history["fista/step_size"]
    assert steps[0] <= 1 / 9 and result.history["fista/backtracks"][0] >= 3
    np.testing.assert_allclose(result.params["x"], soft(3 * y, 1.0) / 9, atol=1e-6)


# ---------------------------------------------------------------------- errors
def test_objectives_it_cannot_solve_are_refused():
    obj = cc.Objective(
        lambda p, b: p["x"], cc.losses.L2("y"), priors={"x": 0.1 * cc.priors.TV() + cc.priors.L1()}
    )
    with pytest.raises(ValueError, match=r"prior on 'x', 0\.1 \* TV.* has none.*GradientSolver"):
        cc.ProximalGradient(obj)


def test_run_errors_name_the_problem():
    obj = cc.Objective(
        lambda p, b: p["net"]["a"] + p["net"]["b"],
        cc.losses.L2("y"),
        priors={"net": cc.priors.L1(), "net/b": cc.priors.NonNegative()},
    )
    init = {"net": {"a": jnp.zeros(2), "b": jnp.zeros(2)}}
    solver = cc.ProximalGradient(obj)
    with pytest.raises(ValueError, match="'net/b' is covered by two priors"):
        solver.run(init, {"y": jnp.ones(2)}, progress=False)
    obj = cc.Objective(lambda p, b: p["x"], cc.losses.L2("y"), priors={"x": cc.priors.Simplex()})
    with pytest.raises(ValueError, match="'prior/x/simplex' is inf at init"):
        cc.ProximalGradient(obj).run({"x": jnp.zeros(2)}, {"y": jnp.ones(2)}, progress=False)
    with pytest.raises(ValueError, match=r"batch_size=1.*cc.GradientSolver"):
        cc.ProximalGradient(obj).run(
            {"x": jnp.full(2, 0.5)}, {"y": jnp.ones(2)}, batch_size=1, progress=False
        )
    with pytest.raises(ValueError, match="the prior on 'z' matches no parameter"):
        obj = cc.Objective(lambda p, b: p["x"], cc.losses.L2("y"), priors={"z": cc.priors.L1()})
        cc.ProximalGradient(obj).run({"x": jnp.zeros(2)}, {"y": jnp.ones(2)}, progress=False)
    with pytest.raises(ValueError, match="step must be positive"):
        cc.ProximalGradient(obj, step=0.0)


# ---------------------------------------------------------------------- run features
def test_nonlinear_forward_model_defaults_to_backtracking():
    """Phase retrieval-like |x|^2 with an L2 loss: backtracking, and the objective goes down."""
    obj = cc.Objective(lambda p, b: p["x"] ** 2, cc.losses.L2("y"))
    y = jnp.array([4.0, 1.0, 9.0])
    result = run(obj, {"x": jnp.ones(3)}, {"y": y}, 60)
    assert "fista/backtracks" in result.history
    np.testing.assert_allclose(result.params["x"], [2.0, 1.0, 3.0], rtol=1e-4)


def test_log_dir_history_and_exact_resume(tmp_path):
    _, A, _, y, _ = sparse_problem(seed=2)
    obj = cc.Objective(
        lambda p, b: A(p["x"]), cc.losses.L2("y"), priors={"x": 0.05 * cc.priors.L1()}
    )
    data, init = {"y": jnp.asarray(y)}, {"x": jnp.zeros(128)}
    solver = cc.ProximalGradient(obj, backtracking=True)
    full = solver.run(init, data, 12, log_dir=tmp_path / "a", log_every=4, progress=False)
    assert full.history["loss/total"].shape == (12,)
    assert set(full.history) >= {"loss/l2", "prior/x/l1", "fista/backtracks", "step"}
    steps, values = read_scalars(tmp_path / "a")["loss/total"]
    assert steps.tolist() == [3, 7, 11]
    np.testing.assert_allclose(values, full.history["loss/total"][[3, 7, 11]], rtol=1e-6)

    kwargs = dict(log_dir=tmp_path / "b", log_every=4, checkpoint_every=4, progress=False)
    solver.run(init, data, 8, **kwargs)
    resumed = cc.ProximalGradient(obj, backtracking=True).run(init, data, 12, resume=True, **kwargs)
    assert resumed.steps == 12
    np.testing.assert_array_equal(resumed.params["x"], full.params["x"])
    for name in ("loss/total", "fista/step_size", "fista/momentum", "step"):
        np.testing.assert_array_equal(resumed.history[name], full.history[name])


def test_complex_variables_with_a_circular_blur_and_l1():
    """Complex data through a real blur: FISTA's fixed point satisfies prox optimality."""
    n = 16
    psf = jnp.array([[0.0, 0.1, 0.0], [0.1, 0.6, 0.1], [0.0, 0.1, 0.0]])
    A = cc.operators.Convolve(psf, (n, n), input_dtype=jnp.complex64)
    y = jnp.asarray(randn(np.random.default_rng(6), (n, n), np.complex64))
    obj = cc.Objective(
        lambda p, b: A(p["x"]), cc.losses.L2("y"), priors={"x": 0.3 * cc.priors.L1()}
    )
    result = run(obj, {"x": jnp.zeros((n, n), jnp.complex64)}, {"y": y}, 100)
    x = result.params["x"]
    assert x.dtype == jnp.complex64 and 0 < np.count_nonzero(np.asarray(x)) < n * n
    step = 0.5
    fixed = cc.priors.L1().prox(x - step * A.H(A(x) - y), 0.3 * step)  # x = prox(x - s grad)
    np.testing.assert_allclose(fixed, x, atol=2e-5)
    assert jax.tree_util.tree_structure(result.params) == jax.tree_util.tree_structure({"x": x})


def test_warm_started_tv_prox_reaches_the_minimum_and_resumes_exactly(tmp_path):
    """FISTA carries TV's dual from one outer iteration to the next: 5 FGP steps each reach
    the minimum of a long run with 200 cold FGP steps, and a resumed run (the dual is in the
    checkpoint) equals the uninterrupted one."""
    from tests.solvers.test_admm import LAM, N, deconvolution_data, objective

    data, init = deconvolution_data(), {"x": jnp.zeros((N, N))}
    reference = objective(LAM * cc.priors.TV(prox_iterations=200))
    cold = cc.ProximalGradient(reference, warm_start=False, prox_iterations=None)
    best = float(reference(cold.run(init, data, iterations=300).params, data)[0])
    warm = cc.ProximalGradient(objective(LAM * cc.priors.TV()))
    assert warm.prox_iterations == 5
    result = warm.run(init, data, iterations=300, log_every=100)
    assert float(reference(result.params, data)[0]) <= best * (1 + 1e-4)
    common = {"log_every": 10, "checkpoint_every": 20, "progress": False}
    whole = warm.run(init, data, iterations=40, log_dir=tmp_path / "whole", **common)
    warm.run(init, data, iterations=20, log_dir=tmp_path / "split", **common)
    resumed = warm.run(init, data, iterations=40, log_dir=tmp_path / "split", resume=True, **common)
    np.testing.assert_array_equal(resumed.params["x"], whole.params["x"])

"""ConjugateGradient: closed-form Tikhonov solutions, finite termination, errors, run features."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import calcil as cc
from calcil.logs import read_scalars
from tests.helpers import randn, x64


def gaussian_psf(dtype, size=7, width=3.0):
    r = np.arange(size) - size // 2
    k = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / width)
    return (k / k.sum()).astype(dtype)


def circular_spectrum(psf, n):
    """The DFT of the PSF as a circular kernel whose centre (index size // 2) is the origin."""
    h = np.zeros((n, n))
    h[: psf.shape[0], : psf.shape[1]] = psf
    return np.fft.fft2(np.roll(h, (-(psf.shape[0] // 2), -(psf.shape[1] // 2)), (0, 1)))


def dense_operator(m):
    m = jnp.asarray(m)
    return cc.operators.from_function(lambda x: m @ x, (m.shape[1],), m.dtype, linear=True)


def run(obj, init, data, iterations, tol=None, **kwargs):
    kwargs.setdefault("log_every", iterations)
    solver = cc.ConjugateGradient(obj, tol=tol)
    return solver.run(init, data, iterations, progress=False, **kwargs)


@pytest.mark.parametrize(
    ("dtype", "n", "iterations", "tol"),
    [
        (np.float32, 64, 300, 2e-5),
        (np.complex64, 64, 2000, 2e-5),
        (np.float64, 32, 300, 1e-11),
        (np.complex128, 32, 2000, 1e-11),
    ],
)
def test_tikhonov_deconvolution_matches_the_fourier_closed_form(dtype, n, iterations, tol):
    """min 0.5||k * x - y||^2 + lam/2 ||x||^2: X = conj(K) Y / (|K|^2 + lam) per frequency.

    Run far past convergence (300 and 2000 steps): CG stops as converged once the relative
    residual is below its tolerance, and the answer is the closed form.
    """
    lam = 1e-2
    real = np.finfo(dtype).dtype
    with x64(dtype):
        psf = gaussian_psf(real)
        A = cc.operators.Convolve(jnp.asarray(psf), (n, n), input_dtype=dtype)
        y = randn(np.random.default_rng(0), (n, n), dtype)
        K = circular_spectrum(psf, n)
        blurred = np.fft.ifft2(K * np.fft.fft2(y))
        blurred = blurred if np.iscomplexobj(y) else blurred.real
        np.testing.assert_allclose(A(jnp.asarray(y)), blurred, atol=1e-5)
        want = np.fft.ifft2(np.conj(K) * np.fft.fft2(y) / (np.abs(K) ** 2 + lam))
        want = want if np.iscomplexobj(y) else want.real
        obj = cc.Objective(
            lambda p, b: A(p["x"]), cc.losses.L2("y"), priors={"x": lam * cc.priors.L2()}
        )
        cg_tol = 1e-6 if real == np.float32 else 1e-12
        init, data = {"x": jnp.zeros((n, n), dtype)}, {"y": jnp.asarray(y)}
        result = run(obj, init, data, iterations, tol=cg_tol)
        got = np.asarray(result.params["x"])
        assert got.dtype == dtype
        assert np.linalg.norm(got - want) / np.linalg.norm(want) < tol
        assert result.status == "converged" and 20 < result.steps < 150, result.message
        relative = result.history["cg/relative_residual"]
        assert relative.shape == (result.steps + 1,)
        assert relative[-1] <= cg_tol < relative[-2]
        c_norm = np.linalg.norm(blurred)  # |A^H y|: the PSF is symmetric
        np.testing.assert_allclose(result.history["cg/residual"][0], c_norm, rtol=1e-5)


def tikhonov_float32(n=64, lam=1e-2):
    """A 64^2 float32 Tikhonov deconvolution and its Fourier closed form."""
    psf = gaussian_psf(np.float32, size=9, width=4.0)
    A = cc.operators.Convolve(jnp.asarray(psf), (n, n))
    rng = np.random.default_rng(0)
    y = (rng.random((n, n)) + 0.01 * rng.standard_normal((n, n))).astype(np.float32)
    K = circular_spectrum(psf, n)
    want = np.fft.ifft2(np.conj(K) * np.fft.fft2(y) / (np.abs(K) ** 2 + lam)).real
    obj = cc.Objective(
        lambda p, b: A(p["x"]), cc.losses.L2("y"), priors={"x": lam * cc.priors.L2()}
    )
    return obj, {"x": jnp.zeros((n, n))}, {"y": jnp.asarray(y)}, want


@pytest.mark.parametrize("iterations", [300, 2000])
def test_iterating_past_convergence_stops_as_converged_at_the_closed_form(iterations):
    """Without a stopping rule, float32 CG left the solution after ~60 steps and reached
    |x| ~ 1e16 by step 300 with status max_iterations. The default tol (1e-6) stops it."""
    obj, init, data, want = tikhonov_float32()
    result = run(obj, init, data, iterations, log_every=50)
    got = np.asarray(result.params["x"])
    assert result.status == "converged" and result.steps < 100, result.message
    assert np.linalg.norm(got - want) / np.linalg.norm(want) < 1e-4
    assert result.history["cg/relative_residual"][-1] <= 1e-6


def test_an_unreachable_tolerance_never_amplifies_rounding_noise():
    """tol below float32 rounding: CG runs until the curvature is rounding noise, then stops
    as "stalled" at the closed form instead of diverging."""
    obj, init, data, want = tikhonov_float32()
    result = run(obj, init, data, 2000, tol=1e-12, log_every=100)
    got = np.asarray(result.params["x"])
    assert result.status == "stalled" and "rounding" in result.message
    assert result.steps < 300
    assert np.linalg.norm(got - want) / np.linalg.norm(want) < 1e-5
    objective = result.history["loss/total"]
    assert np.all(np.diff(objective[30:]) <= 1e-6 * objective[-1])  # never increases


def test_vanishing_curvature_is_never_divided_by():
    """H = diag(1, 1e-30): after one step the search direction lies where the curvature is
    below float32 resolution; the step is not rs / curvature (huge) but a stop."""
    A = cc.operators.Diagonal(jnp.array([1.0, 1e-15]))
    obj = cc.Objective(lambda p, b: A(p["x"]), cc.losses.L2("y"))
    result = run(obj, {"x": jnp.zeros(2)}, {"y": jnp.ones(2)}, 50, tol=1e-30)
    assert result.status == "stalled" and result.steps < 50
    assert np.all(np.isfinite(result.params["x"]))
    np.testing.assert_allclose(result.params["x"][0], 1.0, rtol=1e-6)


@pytest.mark.parametrize("tol", [0, -1e-6, 1.5, "1e-6"])
def test_tol_must_be_a_relative_residual(tol):
    obj = cc.Objective(lambda p, b: p["x"], cc.losses.L2("y"))
    with pytest.raises(ValueError, match=r"relative residual .* in \(0, 1\)"):
        cc.ConjugateGradient(obj, tol=tol)


def test_a_converged_run_resumes_exactly(tmp_path):
    obj, init, data, _ = tikhonov_float32(n=32)
    full = run(obj, init, data, 500, log_every=10)
    assert full.status == "converged"
    part = run(obj, init, data, 20, log_every=10, log_dir=tmp_path, checkpoint_every=10)
    assert part.status == "max_iterations"
    resumed = run(
        obj, init, data, 500, log_every=10, log_dir=tmp_path, checkpoint_every=10, resume=True
    )
    assert resumed.status == "converged" and resumed.steps == full.steps
    np.testing.assert_array_equal(resumed.params["x"], full.params["x"])
    np.testing.assert_array_equal(resumed.history["cg/residual"], full.history["cg/residual"])


def test_weighted_l2_with_several_variables_matches_a_dense_solve_in_n_steps():
    """Two variables, weighted loss, two priors: the exact answer after n = 12 CG steps."""
    rng = np.random.default_rng(1)
    with jax.enable_x64(True):
        m1, m2 = rng.standard_normal((20, 7)), rng.standard_normal((20, 5))
        w, y = rng.uniform(0.5, 2.0, 20), rng.standard_normal(20)
        A1, A2 = dense_operator(m1), dense_operator(m2)
        obj = cc.Objective(
            lambda p, b: A1(p["a"]) + A2(p["b"]),
            cc.losses.WeightedL2("y", w),
            priors={"a": 0.3 * cc.priors.L2(), "b": 2.0 * cc.priors.L2()},
        )
        init = {"a": jnp.zeros(7), "b": jnp.zeros(5)}
        result = run(obj, init, {"y": jnp.asarray(y)}, iterations=20, tol=1e-14)
        m = np.hstack([m1, m2])
        lam = np.diag([0.3] * 7 + [2.0] * 5)
        want = np.linalg.solve(m.T @ (w[:, None] * m) + lam, m.T @ (w * y))
        got = np.concatenate([result.params["a"], result.params["b"]])
        assert np.linalg.norm(got - want) < 1e-14 * np.linalg.norm(want)
        # finite termination: the residual after n = 12 steps is at rounding level
        residual = result.history["cg/residual"]
        assert residual[12] < 1e-9 * residual[0] < residual[11]
        final, _ = obj(result.params, {"y": jnp.asarray(y)})
        assert result.history["loss/total"][0] > float(final)


def test_affine_forward_model_and_a_weighted_sum_of_losses():
    """forward A x + b, loss 2 * L2: the minimiser solves (2 A^T A + I) x = 2 A^T (y - b)."""
    rng = np.random.default_rng(2)
    with jax.enable_x64(True):
        m, b, y = rng.standard_normal((9, 6)), rng.standard_normal(9), rng.standard_normal(9)
        A = dense_operator(m)
        obj = cc.Objective(
            lambda p, batch: A(p["x"]) + b,
            2.0 * cc.losses.L2("y"),
            priors={"x": cc.priors.L2()},
        )
        result = run(obj, {"x": jnp.ones(6)}, {"y": jnp.asarray(y)}, iterations=6)
        want = np.linalg.solve(2 * m.T @ m + np.eye(6), 2 * m.T @ (y - b))
        np.testing.assert_allclose(result.params["x"], want, rtol=1e-10)


def test_zero_residual_takes_no_step_and_makes_no_nan():
    obj = cc.Objective(lambda p, b: p["x"], cc.losses.L2("y"))
    y = jnp.array([1.0, -2.0, 3.0])
    result = run(obj, {"x": y}, {"y": y}, iterations=3)
    np.testing.assert_array_equal(result.params["x"], y)
    assert result.status == "converged" and result.steps == 0
    np.testing.assert_array_equal(result.history["cg/residual"], 0)
    np.testing.assert_array_equal(result.history["cg/alpha"], 0)


L2 = cc.losses.L2("y")


@pytest.mark.parametrize(
    ("loss", "priors", "match"),
    [
        (L2, {"x": 0.1 * cc.priors.TV()}, r"prior 0\.1 \* TV\(.*\) on 'x' is not a convex"),
        (L2, {"x": cc.priors.Huber(1.0)}, r"\(Huber is not quadratic\)"),
        (L2, {"x": cc.priors.L2() + cc.priors.NonNegative()}, "NonNegative is not quad"),
        (L2, {"x": -1.0 * cc.priors.L2()}, "weight -1 is negative"),
        (cc.losses.Poisson("y"), {}, r"loss Poisson\(.*not a convex.*cc.ProximalGradient"),
        (L2 + cc.losses.Amplitude("y"), {}, "Amplitude is not quadratic"),
    ],
)
def test_objectives_that_are_not_quadratic_are_refused(loss, priors, match):
    obj = cc.Objective(lambda p, b: p["x"], loss, priors=priors)
    with pytest.raises(ValueError, match=match):
        cc.ConjugateGradient(obj)


def test_nonlinear_forward_model_is_refused_when_the_run_starts():
    obj = cc.Objective(lambda p, b: cc.operators.Intensity()(p["x"]), cc.losses.L2("y"))
    solver = cc.ConjugateGradient(obj)
    with pytest.raises(ValueError, match="forward model is not linear"):
        solver.run({"x": jnp.ones(4)}, {"y": jnp.ones(4)}, iterations=2, progress=False)


def test_run_argument_errors():
    obj = cc.Objective(lambda p, b: p["x"], cc.losses.L2("y"), priors={"z": cc.priors.L2()})
    solver = cc.ConjugateGradient(obj)
    data = {"y": jnp.ones((4, 2))}
    with pytest.raises(ValueError, match=r"batch_size=2.*GradientSolver"):
        solver.run({"x": jnp.ones((4, 2))}, data, batch_size=2, progress=False)
    with pytest.raises(KeyError, match="no parameter at path 'z'"):
        solver.run({"x": jnp.ones((4, 2))}, data, progress=False)
    with pytest.raises(ValueError, match=r"not: x \(int32\)"):
        cc.ConjugateGradient(cc.Objective(lambda p, b: p["x"], cc.losses.L2("y"))).run(
            {"x": jnp.ones(2, jnp.int32)}, {"y": jnp.ones(2)}, progress=False
        )


def test_log_dir_history_and_exact_resume(tmp_path):
    rng = np.random.default_rng(3)
    A = dense_operator(jnp.asarray(rng.standard_normal((30, 20)), jnp.float32))
    obj = cc.Objective(
        lambda p, b: A(p["x"]), cc.losses.L2("y"), priors={"x": 0.1 * cc.priors.L2()}
    )
    data, init = {"y": jnp.asarray(rng.standard_normal(30), jnp.float32)}, {"x": jnp.zeros(20)}
    solver = cc.ConjugateGradient(obj)
    full = solver.run(init, data, 12, log_dir=tmp_path / "a", log_every=4, progress=False)
    assert full.history["loss/total"].shape == (12,)
    assert set(full.history) >= {"step", "loss/l2", "prior/x/l2", "cg/residual", "cg/alpha"}
    steps, values = read_scalars(tmp_path / "a")["cg/residual"]
    assert steps.tolist() == [3, 7, 11]
    np.testing.assert_allclose(values, full.history["cg/residual"][[3, 7, 11]], rtol=1e-6)

    kwargs = dict(log_dir=tmp_path / "b", log_every=4, checkpoint_every=4, progress=False)
    solver.run(init, data, 8, **kwargs)
    resumed = cc.ConjugateGradient(obj).run(init, data, 12, resume=True, **kwargs)
    assert resumed.steps == 12
    np.testing.assert_array_equal(resumed.params["x"], full.params["x"])
    for name in ("loss/total", "cg/residual", "step"):
        np.testing.assert_array_equal(resumed.history[name], full.history[name])

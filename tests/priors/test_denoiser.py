"""Denoiser priors: plug-and-play FISTA equals FISTA with the prior whose prox is the
denoiser, iterate for iterate; RED's gradient is x - fn(x) and, for a linear symmetric
denoiser, the GradientSolver reaches the solution of the normal equations; bad denoisers."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import calcil as cc
from calcil.priors import TV, Denoiser

N = 16
A = cc.operators.Convolve(jnp.ones((3, 3)) / 9, (N, N))


def blurred_square():
    x = np.zeros((N, N), np.float32)
    x[4:12, 5:11] = 1
    noise = 0.05 * np.random.default_rng(0).standard_normal((N, N)).astype(np.float32)
    return {"y": A(jnp.asarray(x)) + noise}


def test_pnp_fista_with_a_tv_prox_denoiser_is_fista_with_tv():
    """FISTA's prox of lam TV at step s is TV().prox(., s lam): the same denoiser."""
    data, lam, step = blurred_square(), 0.05, 0.9
    tv = TV(prox_iterations=30)
    denoiser = Denoiser(lambda x, sigma: tv.prox(x, sigma), sigma=step * lam)

    def run(prior, iterations):
        obj = cc.Objective(lambda p, b: A(p["x"]), cc.losses.L2("y"), priors={"x": prior})
        # restart compares objective values; the denoiser starts its FGP from zero each time
        solver = cc.ProximalGradient(
            obj, step=step, restart=False, warm_start=False, prox_iterations=None
        )
        return solver.run({"x": jnp.zeros((N, N))}, data, iterations=iterations, log_every=1)

    fista, pnp = run(lam * tv, 25), run(denoiser, 25)
    np.testing.assert_allclose(pnp.params["x"], fista.params["x"], rtol=1e-5, atol=1e-6)
    # the data term at every iterate, and the momentum
    np.testing.assert_allclose(pnp.history["loss/l2"], fista.history["loss/l2"], rtol=1e-5)
    np.testing.assert_allclose(pnp.history["fista/momentum"], fista.history["fista/momentum"])
    assert pnp.history["loss/l2"][-1] < 0.2 * pnp.history["loss/l2"][0]


@pytest.mark.parametrize("complex_", [False, True], ids=["real", "complex"])
def test_red_gradient_is_x_minus_the_denoised_image(complex_):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6, 5))
    if complex_:
        x = x + 1j * rng.standard_normal((6, 5))
    x = jnp.asarray(x, jnp.complex64 if complex_ else jnp.float32)
    prior = Denoiser(lambda x, s: TV(prox_iterations=20).prox(x, s), sigma=0.3)
    ascent = np.conj(np.asarray(jax.grad(prior)(x)))  # calcil's convention for complex
    np.testing.assert_allclose(ascent, x - prior.prox(x, 1.0), rtol=1e-5, atol=1e-6)
    value = 0.5 * float(np.sum(np.real(np.conj(x) * (x - prior.prox(x, 1.0)))))
    assert float(prior(x)) == pytest.approx(value, rel=1e-5)


def test_red_with_a_linear_symmetric_denoiser_solves_the_normal_equations():
    """fn(x) = W x with W a symmetric circular blur: RED is 0.5 x^T (I - W) x, so the
    minimiser of 0.5 ||A x - y||^2 + lam RED solves (A^T A + lam (I - W)) x = A^T y."""
    n, lam = 32, 2.0
    rng = np.random.default_rng(2)
    smooth = cc.operators.Convolve(jnp.array([0.25, 0.5, 0.25]), (n,))
    Am = np.eye(n)[::2]  # every second sample: the prior fills the gaps
    y = jnp.asarray(Am @ np.sin(np.linspace(0, 3, n)) + 0.01 * rng.standard_normal(n // 2))
    obj = cc.Objective(
        lambda p, b: p["x"][::2],
        cc.losses.L2("y"),
        priors={"x": lam * Denoiser(lambda x, s: smooth(x), sigma=0.0)},
    )
    solver = cc.GradientSolver(obj, optimizer=optax.adam(0.05))
    result = solver.run({"x": jnp.zeros(n)}, {"y": y.astype(jnp.float32)}, iterations=3000)
    W = np.asarray(jax.vmap(smooth)(jnp.eye(n))).T
    want = np.linalg.solve(Am.T @ Am + lam * (np.eye(n) - W), Am.T @ np.asarray(y))
    np.testing.assert_allclose(result.params["x"], want, atol=2e-3)


def test_bad_denoisers_are_clear_errors():
    with pytest.raises(TypeError, match="fn\\(x, sigma\\)"):
        Denoiser("tv", 1.0)
    wrong = Denoiser(lambda x, s: x[None], 1.0)
    with pytest.raises(ValueError, match=r"must return an array of x's shape \(4,\)"):
        wrong.prox(jnp.ones(4), 1.0)
    with pytest.raises(ValueError, match="must return an array of x's shape"):
        jax.grad(wrong)(jnp.ones(4))

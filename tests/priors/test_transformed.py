"""L21 (group sparsity) and priors of transformed variables, prior @ C: values against NumPy,
the closed-form group prox and its optimality, gradients, the identity L21 @ D = TV, and the
solvers' handling (GradientSolver minimises it, CG solves L2 @ D exactly, FISTA refuses it)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import calcil as cc
from calcil.priors import L1, L2, L21, TV
from tests.helpers import randn
from tests.priors.helpers import DTYPES, value
from tests.priors.test_norms import _prox, assert_grad_matches_fd, assert_prox_optimal


def np_l21(x, axis):
    return np.sum(np.sqrt(np.sum(np.abs(x) ** 2, axis=axis)))


@pytest.mark.parametrize("complex_", [False, True], ids=["real", "complex"])
@pytest.mark.parametrize("axis", [0, 1, (0, 2)])
def test_l21_value_and_group_prox_match_numpy(axis, complex_):
    rng = np.random.default_rng(0)
    x = randn(rng, (3, 4, 5), DTYPES[complex_])
    x[:, 0] = 0  # a zero group (axis 0): its prox is 0 and its gradient finite
    with jax.enable_x64(True):
        np.testing.assert_allclose(value(L21(axis), x), np_l21(x, axis), rtol=1e-12)
        for step in (0.0, 0.5, 2.0):
            n = np.sqrt(np.sum(np.abs(x) ** 2, axis=axis, keepdims=True))
            want = x * np.maximum(0, 1 - step / np.where(n > 0, n, 1)) * (n > 0)
            np.testing.assert_allclose(_prox(L21(axis), x, step), want, atol=1e-14)
        assert_prox_optimal(L21(axis), x, 0.7, rng)
        assert np.all(np.isfinite(np.asarray(jax.grad(L21(axis))(x))))
        x[:, 0] += 0.1  # away from the kink: gradient = finite differences
        assert_grad_matches_fd(L21(axis), x)


@pytest.mark.parametrize("shape", [(6, 7), (3, 4, 5)])
def test_l21_of_neumann_differences_is_isotropic_tv(shape):
    rng = np.random.default_rng(1)
    x = randn(rng, shape, np.float64)
    with jax.enable_x64(True):
        D = cc.operators.FiniteDifference(shape, boundary="neumann")
        np.testing.assert_allclose(value(L21() @ D, x), value(TV(), x), rtol=1e-12)
        g_tv = jax.grad(TV(eps=1e-3))(x)
        g_l21 = jax.grad(lambda x: jnp.sum(jnp.sqrt(jnp.sum(D(x) ** 2, 0) + 1e-6)))(x)
        np.testing.assert_allclose(g_l21, g_tv, rtol=1e-10)


def test_transformed_value_gradient_and_weights():
    rng = np.random.default_rng(2)
    x = randn(rng, (8,), np.complex128)
    with jax.enable_x64(True):
        F = cc.operators.FFT((8,), input_dtype=jnp.complex128)
        prior = 0.5 * (L1() @ F)
        np.testing.assert_allclose(
            value(prior, x), 0.5 * np.sum(np.abs(np.fft.fft(x, norm="ortho"))), rtol=1e-12
        )
        assert_grad_matches_fd(prior, x)
        assert prior.terms(jnp.asarray(x)).keys() == {"l1"} and not prior.has_prox
    assert repr(L1() @ F).startswith("L1() @ FFT(")
    assert (L2() @ F).not_quadratic() is None and (L1() @ F).not_quadratic() is not None


def test_bad_operands_are_clear_errors():
    with pytest.raises(TypeError, match="for a calcil operator C"):
        L1() @ jnp.eye(3)
    with pytest.raises(ValueError, match="needs a linear operator"):
        L1() @ cc.operators.Intensity()


def test_conjugate_gradient_solves_smoothness_regularised_least_squares():
    """min 0.5 ||x - y||^2 + 0.5 lam ||D x||^2: (I + lam D^T D) x = y, solved by NumPy."""
    n, lam = 12, 3.0
    D = cc.operators.FiniteDifference((n,), boundary="neumann")
    y = jnp.asarray(np.random.default_rng(3).standard_normal(n), jnp.float32)
    obj = cc.Objective(lambda p, b: p["x"], cc.losses.L2("y"), priors={"x": lam * (L2() @ D)})
    result = cc.ConjugateGradient(obj).run({"x": jnp.zeros(n)}, {"y": y}, iterations=50)
    Dm = np.diff(np.eye(n), axis=0, append=np.zeros((1, n)))  # last row 0 (Neumann)
    Dm[-1] = 0
    want = np.linalg.solve(np.eye(n) + lam * Dm.T @ Dm, np.asarray(y, float))
    assert result.status == "converged"
    np.testing.assert_allclose(result.params["x"], want, rtol=1e-4, atol=1e-5)


def test_gradient_solver_minimises_and_fista_refuses_a_transformed_prior():
    x_true = np.zeros((16, 16), np.float32)
    x_true[4:12, 4:12] = 1
    y = jnp.asarray(x_true + 0.1 * np.random.default_rng(4).standard_normal((16, 16)), jnp.float32)
    D = cc.operators.FiniteDifference((16, 16), boundary="neumann")
    as_l21 = cc.Objective(lambda p, b: p["x"], cc.losses.L2("y"), priors={"x": 0.2 * (L21() @ D)})
    as_tv = cc.Objective(lambda p, b: p["x"], cc.losses.L2("y"), priors={"x": 0.2 * TV()})
    init = {"x": jnp.zeros((16, 16))}
    a = cc.GradientSolver(as_l21, optimizer=optax.adam(0.05)).run(init, {"y": y}, iterations=60)
    b = cc.GradientSolver(as_tv, optimizer=optax.adam(0.05)).run(init, {"y": y}, iterations=60)
    # the same objective; the kink at zero differences lets the paths part by rounding later
    np.testing.assert_allclose(
        a.history["loss/total"][:20], b.history["loss/total"][:20], rtol=1e-4
    )
    np.testing.assert_allclose(a.history["loss/total"][-1], b.history["loss/total"][-1], rtol=1e-2)
    assert a.history["loss/total"][-1] < 0.5 * a.history["loss/total"][0]
    assert "prior/x/l21" in a.history
    with pytest.raises(ValueError, match=r"transformed variable.*Use cc.ADMM or\s+cc.PDHG"):
        cc.ProximalGradient(as_l21)

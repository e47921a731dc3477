"""L1, L2 and Huber: values, closed-form proxes, prox optimality and gradients vs NumPy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from calcil.priors import L1, L2, Huber
from tests.helpers import fd_grad, randn
from tests.priors.helpers import DTYPES, _grad, _value, _values, value


@jax.jit
def _prox(prior, x, step):
    return prior.prox(x, step)


@jax.jit
def _prox_objectives(prior, zs, x, step):
    """``0.5 ||z - x||^2 + step R(z)`` for each ``z`` in ``zs``."""
    return jax.vmap(lambda z: 0.5 * jnp.sum(jnp.abs(z - x) ** 2) + step * prior(z))(zs)


def assert_grad_matches_fd(prior, x, rtol=1e-6):
    """``jax.grad`` (conjugated for complex inputs, JAX's convention) vs central differences."""
    got = np.asarray(_grad(prior, x))
    if np.iscomplexobj(x):
        got = np.conj(got)
    want = fd_grad(lambda xs: _values(prior, xs), x, batched=True)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * np.abs(want).max())


def assert_prox_optimal(prior, x, step, rng, tol=1e-12, n=30):
    """prox(x, step) beats random and coordinate perturbations on 0.5||z - x||^2 + step R(z)."""
    x = np.asarray(x)
    z = np.asarray(_prox(prior, x, step))
    complex_ = np.iscomplexobj(x)
    signs = (1.0, -1.0, 1j, -1j) if complex_ else (1.0, -1.0)
    eye = np.eye(x.size).reshape((x.size, *x.shape))
    candidates = [np.zeros((1, *x.shape))]  # the prox itself first
    for scale in (1e-4, 1e-2, 1e-1, 1.0):
        candidates += [scale * randn(rng, (n, *x.shape), DTYPES[complex_])]
        candidates += [scale * s * eye for s in signs]
    values = np.asarray(_prox_objectives(prior, z + np.concatenate(candidates), x, step))
    base = values[0]
    assert np.all(values[1:] >= base - tol * max(1.0, abs(base))), (values.min(), base)


def np_huber(x, delta):
    a = np.abs(x)
    return np.sum(np.where(a <= delta, 0.5 * a**2, delta * (a - delta / 2)))


# ---------------------------------------------------------------------------- values


@pytest.mark.parametrize("complex_", [False, True], ids=["real", "complex"])
@pytest.mark.parametrize("shape", [(7,), (4, 5), (2, 3, 4)])
def test_values_match_numpy(shape, complex_):
    rng = np.random.default_rng(0)
    x = randn(rng, shape, DTYPES[complex_])
    with jax.enable_x64(True):
        np.testing.assert_allclose(value(L1(), x), np.sum(np.abs(x)), rtol=1e-12)
        np.testing.assert_allclose(value(L2(), x), 0.5 * np.sum(np.abs(x) ** 2), rtol=1e-12)
        for delta in (0.3, 1.0, 5.0):
            np.testing.assert_allclose(value(Huber(delta), x), np_huber(x, delta), rtol=1e-12)


def test_values_by_hand():
    x = jnp.array([-3.0, 0.5, 0.0, 2.0])
    assert value(L1(), x) == pytest.approx(5.5)
    assert value(L2(), x) == pytest.approx(0.5 * (9 + 0.25 + 4))
    # delta = 1: 0.125 (quadratic) + 0 + 1 * (3 - 0.5) + 1 * (2 - 0.5)
    assert value(Huber(1.0), x) == pytest.approx(0.125 + 2.5 + 1.5)
    # complex modulus: |3 + 4i| = 5
    z = jnp.array([3 + 4j])
    assert value(L1(), z) == pytest.approx(5.0)
    assert value(L2(), z) == pytest.approx(12.5)
    assert value(Huber(2.0), z) == pytest.approx(2.0 * (5 - 1))
    assert float(Huber(2.0)(z)) == pytest.approx(2.0 * (5 - 1))  # eager


def test_values_are_real_scalars_in_input_precision():
    x = jnp.ones((3, 3), jnp.complex64)
    for prior in (L1(), L2(), Huber(0.5)):
        v = _value(prior, x)
        assert v.shape == ()
        assert v.dtype == jnp.float32


def test_huber_is_continuous_at_delta():
    delta, h = 0.7, 1e-4
    with jax.enable_x64(True):
        below = float(Huber(delta)(jnp.array([delta - h])))
        above = float(Huber(delta)(jnp.array([delta + h])))
    # 0.5 (delta - h)^2 below, delta (delta + h - delta / 2) above
    assert above - below == pytest.approx(2 * delta * h - 0.5 * h**2, rel=1e-8)


# ---------------------------------------------------------------------------- proxes


def np_soft_threshold(x, t):
    a = np.abs(x)
    return np.where(a > t, x * (1 - t / np.where(a > 0, a, 1)), 0)


def np_huber_prox(x, step, delta):
    a = np.abs(x)
    unit = x / np.where(a > 0, a, 1)
    return np.where(a <= delta * (1 + step), x / (1 + step), x - step * delta * unit)


@pytest.mark.parametrize("complex_", [False, True], ids=["real", "complex"])
@pytest.mark.parametrize("step", [0.0, 0.3, 1.0, 4.0])
def test_closed_form_proxes(step, complex_):
    rng = np.random.default_rng(1)
    x = 2 * randn(rng, (5, 6), DTYPES[complex_])
    x[0, 0] = 0  # prox of 0 is 0
    prox = _prox
    with jax.enable_x64(True):
        np.testing.assert_allclose(prox(L1(), x, step), np_soft_threshold(x, step), atol=1e-14)
        np.testing.assert_allclose(prox(L2(), x, step), x / (1 + step), atol=1e-14)
        for delta in (0.2, 1.0, 10.0):
            np.testing.assert_allclose(
                prox(Huber(delta), x, step), np_huber_prox(x, step, delta), atol=1e-14
            )


def test_l1_prox_by_hand():
    got = _prox(L1(), jnp.array([-3.0, 0.5, -0.5, 2.0, 0.0]), 1.0)
    np.testing.assert_allclose(got, [-2.0, 0.0, 0.0, 1.0, 0.0])
    got = _prox(L1(), jnp.array([3 + 4j, 0.3j]), 1.0)  # modulus 5 -> 4, phase kept
    np.testing.assert_allclose(got, [2.4 + 3.2j, 0.0], atol=1e-6)


def test_huber_prox_by_hand():
    # delta = 1, step = 1: |x| <= 2 -> x / 2, else x -/+ 1
    got = _prox(Huber(1.0), jnp.array([-5.0, -2.0, 1.0, 3.0]), 1.0)
    np.testing.assert_allclose(got, [-4.0, -1.0, 0.5, 2.0])


@pytest.mark.parametrize("complex_", [False, True], ids=["real", "complex"])
@pytest.mark.parametrize(
    "prior", [L1(), L2(), Huber(0.5), Huber(3.0)], ids=["l1", "l2", "huber0.5", "huber3"]
)
def test_prox_optimality(prior, complex_):
    rng = np.random.default_rng(2)
    with jax.enable_x64(True):
        x = 2 * randn(rng, (3, 4), DTYPES[complex_])
        for step in (0.1, 0.8, 2.5):
            assert_prox_optimal(prior, x, step, rng)


def test_prox_optimality_check_catches_a_wrong_prox():
    """The optimality check has teeth: a shrinkage in place of soft thresholding fails."""

    class WrongL1(L1):
        def prox(self, x, step):
            return x / (1 + step)

    rng = np.random.default_rng(3)
    with jax.enable_x64(True), pytest.raises(AssertionError):
        assert_prox_optimal(WrongL1(), randn(rng, (3, 4)), 0.5, rng)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.complex64])
def test_proxes_keep_dtype_and_shape(dtype):
    x = jnp.ones((2, 3), dtype)
    for prior in (L1(), L2(), Huber(0.5)):
        z = _prox(prior, x, 0.1)
        assert z.dtype == dtype and z.shape == (2, 3)


def test_prox_jits_with_traced_step_and_prior_as_argument():
    rng = np.random.default_rng(4)
    x = jnp.asarray(randn(rng, (4, 4)), jnp.float32)
    for prior in (L1(), L2(), Huber(0.4)):  # jitted vs eager
        np.testing.assert_allclose(_prox(prior, x, 0.7), prior.prox(x, 0.7), rtol=1e-6, atol=1e-7)


# ---------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("complex_", [False, True], ids=["real", "complex"])
@pytest.mark.parametrize(
    "prior", [L1(), L2(), Huber(0.6), Huber(4.0)], ids=["l1", "l2", "huber0.6", "huber4"]
)
def test_gradients_match_finite_differences(prior, complex_):
    rng = np.random.default_rng(5)
    x = randn(rng, (3, 4), DTYPES[complex_])
    x = np.where(np.abs(x) < 0.05, 0.5, x)  # keep away from the kink of |x| at 0
    with jax.enable_x64(True):
        assert_grad_matches_fd(prior, x)


def test_gradients_by_hand():
    x = jnp.array([-2.0, 0.5, 3.0])
    np.testing.assert_allclose(_grad(L1(), x), [-1.0, 1.0, 1.0])
    np.testing.assert_allclose(_grad(L2(), x), x)
    np.testing.assert_allclose(_grad(Huber(1.0), x), [-1.0, 0.5, 1.0])


@pytest.mark.parametrize("prior", [L1(), Huber(1.0)], ids=["l1", "huber"])
def test_gradient_finite_at_zero(prior):
    for x in (jnp.zeros(3), jnp.zeros(3, jnp.complex64)):
        g = _grad(prior, x)
        assert np.all(np.isfinite(np.asarray(g)))


# ---------------------------------------------------------------------------- names, errors


def test_names_repr_and_has_prox():
    assert (L1().name, L2().name, Huber().name) == ("l1", "l2", "huber")
    assert repr(L1()) == "L1()"
    assert repr(L2()) == "L2()"
    assert repr(Huber(0.5)) == "Huber(delta=0.5)"
    assert L1().has_prox and L2().has_prox and Huber().has_prox
    assert L1().terms(jnp.array([1.0, -2.0])).keys() == {"l1"}


@pytest.mark.parametrize("delta", [0.0, -1.0, float("nan")])
def test_bad_huber_delta(delta):
    with pytest.raises(ValueError, match=r"Huber delta must be positive, got"):
        Huber(delta)

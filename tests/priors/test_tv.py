"""Total variation: values vs numpy.diff with Neumann boundaries, gradients, and the FGP prox
checked against an independent Chambolle-Pock solver certified by its duality gap."""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from calcil.priors import TV
from tests.helpers import fd_grad, randn
from tests.priors.helpers import DTYPES, _grad, _values, value

# ---------------------------------------------------------------------------- references


@partial(jax.jit, static_argnums=3)
def _prox(tv, x, step, iterations):
    return tv.prox(x, step, iterations=iterations)


def prox(tv, x, step, iterations=None):
    """``tv.prox`` under ``jax.jit`` (eager dispatch is ten times slower to warm up)."""
    return np.asarray(_prox(tv, x, step, iterations))


def np_grad(x, axes):
    """Forward differences with a zero last difference (Neumann), stacked on axis 0."""
    return np.stack([np.diff(x, axis=a, append=np.take(x, [-1], axis=a)) for a in axes])


def np_grad_adjoint(p, axes):
    """The adjoint of :func:`np_grad` (the last entry of each difference does not enter)."""
    out = np.zeros(p.shape[1:], p.dtype)
    for pa, a in zip(p, axes, strict=True):
        q = np.moveaxis(pa, a, 0).copy()
        q[-1] = 0
        r = np.empty_like(q)
        r[0] = -q[0]
        r[1:] = q[:-1] - q[1:]
        out += np.moveaxis(r, 0, a)
    return out


def np_tv(x, axes=None, isotropic=True, eps=0.0):
    axes = tuple(range(x.ndim)) if axes is None else tuple(a % x.ndim for a in axes)
    sq = np.abs(np_grad(x, axes)) ** 2
    if isotropic:
        return np.sum(np.sqrt(sq.sum(axis=0) + eps**2))
    return np.sum(np.sqrt(sq))


def project_dual(p, isotropic):
    mag = np.sqrt((np.abs(p) ** 2).sum(axis=0, keepdims=True)) if isotropic else np.abs(p)
    return p / np.maximum(1, mag)


def primal(z, x, lam, isotropic):
    return 0.5 * np.sum(np.abs(z - x) ** 2) + lam * np_tv(z, isotropic=isotropic)


def dual(p, x, lam):
    """The dual of the prox problem: a lower bound on ``primal`` for every feasible ``p``."""
    axes = tuple(range(x.ndim))
    return 0.5 * np.sum(np.abs(x) ** 2) - 0.5 * np.sum(
        np.abs(x - lam * np_grad_adjoint(p, axes)) ** 2
    )


def chambolle_pock_tv_prox(x, lam, isotropic, iterations=1000):
    """``argmin_z 0.5||z - x||^2 + lam TV(z)`` by Chambolle-Pock (a different algorithm from
    calcil's FGP); returns ``(z, p)`` with ``p`` dual feasible, so ``primal - dual`` bounds
    ``0.5 ||z - z*||^2`` for any ``z``."""
    axes = tuple(range(x.ndim))
    tau = sigma = 1 / np.sqrt(4 * len(axes))
    z, z_bar = x.copy(), x.copy()
    p = np.zeros((len(axes), *x.shape), x.dtype)
    for _ in range(iterations):
        p = project_dual(p + (sigma / lam) * np_grad(z_bar, axes), isotropic)
        z_new = (z - tau * lam * np_grad_adjoint(p, axes) + tau * x) / (1 + tau)
        z_bar, z = 2 * z_new - z, z_new
    return z, p


def test_reference_adjoint_is_an_adjoint():
    rng = np.random.default_rng(0)
    x, p = randn(rng, (4, 5, 3)), randn(rng, (3, 4, 5, 3))
    axes = (0, 1, 2)
    assert np.vdot(np_grad(x, axes), p) == pytest.approx(np.vdot(x, np_grad_adjoint(p, axes)))


# ---------------------------------------------------------------------------- values

CASES = [
    pytest.param((6, 7), None, id="2d"),
    pytest.param((4, 5, 6), None, id="3d"),
    pytest.param((4, 5, 6), (-2, -1), id="3d-last-two-axes"),
    pytest.param((5, 6), (0,), id="2d-axis0"),
]


@pytest.mark.parametrize("complex_", [False, True], ids=["real", "complex"])
@pytest.mark.parametrize("isotropic", [True, False], ids=["iso", "aniso"])
@pytest.mark.parametrize("shape, axes", CASES)
def test_value_matches_numpy(shape, axes, isotropic, complex_):
    rng = np.random.default_rng(1)
    x = randn(rng, shape, DTYPES[complex_])
    with jax.enable_x64(True):
        for eps in (0.0, 0.1):
            got = value(TV(axes=axes, isotropic=isotropic, eps=eps), x)
            want = np_tv(x, axes, isotropic, eps if isotropic else 0.0)
            np.testing.assert_allclose(got, want, rtol=1e-12)


def test_value_float32_matches_numpy():
    rng = np.random.default_rng(2)
    x = randn(rng, (8, 9)).astype(np.float32)
    v = TV()(x)
    assert v.dtype == jnp.float32 and v.shape == ()
    np.testing.assert_allclose(float(v), np_tv(x.astype(np.float64)), rtol=1e-5)


def test_values_by_hand():
    x = jnp.array([[0.0, 1.0], [2.0, 4.0]])
    # Neumann: D_y = [[2, 3], [0, 0]], D_x = [[1, 0], [2, 0]]
    assert value(TV(), x) == pytest.approx(np.sqrt(5) + 3 + 2)
    assert value(TV(isotropic=False), x) == pytest.approx(2 + 3 + 1 + 2)
    assert value(TV(axes=(1,)), x) == pytest.approx(3.0)
    # eps enters every pixel, the corner too (4 pixels)
    want = np.sqrt(5 + 0.25) + np.sqrt(9.25) + np.sqrt(4.25) + 0.5
    assert value(TV(eps=0.5), x) == pytest.approx(want)
    # complex: the modulus of the difference
    assert value(TV(), jnp.array([[0.0, 3 + 4j]])) == pytest.approx(5.0)


def test_value_of_constant_is_zero_and_value_is_shift_invariant():
    rng = np.random.default_rng(3)
    x = randn(rng, (5, 6))
    assert value(TV(), jnp.full((4, 5, 3), 2.5)) == 0.0
    with jax.enable_x64(True):
        assert value(TV(), x + 7.0) == pytest.approx(value(TV(), x), rel=1e-12)


def test_bad_eps():
    with pytest.raises(ValueError, match=r"TV eps must be non-negative, got -0\.1"):
        TV(eps=-0.1)


def test_name_repr_has_prox():
    tv = TV(axes=(0, 1), isotropic=False, eps=0.01)
    assert tv.name == "tv" and tv.has_prox
    assert repr(tv) == "TV(axes=(0, 1), isotropic=False, eps=0.01, prox_iterations=50)"


# ---------------------------------------------------------------------------- gradients


GRAD_CASES = [
    pytest.param(TV(), (4, 5), False, id="2d-iso"),
    pytest.param(TV(isotropic=False), (4, 5), False, id="2d-aniso"),
    pytest.param(TV(eps=0.3), (4, 5), True, id="2d-eps-complex"),
    pytest.param(TV(axes=(0,)), (4, 5), True, id="2d-axis0-complex"),
    pytest.param(TV(), (3, 3, 4), False, id="3d-iso"),
    pytest.param(TV(), (3, 3, 4), True, id="3d-iso-complex"),
    pytest.param(TV(isotropic=False), (3, 3, 4), True, id="3d-aniso-complex"),
    pytest.param(TV(axes=(2, 1), eps=0.1), (3, 3, 4), False, id="3d-axes21-eps"),
]


@pytest.mark.parametrize("tv, shape, complex_", GRAD_CASES)
def test_gradient_matches_finite_differences(tv, shape, complex_):
    rng = np.random.default_rng(4)
    x = randn(rng, shape, DTYPES[complex_])
    with jax.enable_x64(True):
        got = np.asarray(_grad(tv, x))
        got = np.conj(got) if complex_ else got
        np.testing.assert_allclose(
            got, fd_grad(partial(_values, tv), x, batched=True), rtol=1e-6, atol=1e-7
        )


def test_smoothed_gradient_on_flat_regions_matches_finite_differences():
    x = np.zeros((4, 5))
    x[1:3, 1:4] = 1.0  # flat regions: |D x| = 0 at many pixels
    tv = TV(eps=0.2)
    with jax.enable_x64(True):
        np.testing.assert_allclose(
            _grad(tv, x), fd_grad(partial(_values, tv), x, batched=True), rtol=1e-6, atol=1e-8
        )


def test_gradient_finite_on_constant_image():
    for x, tv in (
        (jnp.ones((4, 5)), TV()),
        (jnp.ones((3, 3, 4), jnp.complex64), TV(isotropic=False)),
    ):
        g = np.asarray(_grad(tv, x))
        np.testing.assert_array_equal(g, np.zeros_like(g))  # 0 is a subgradient at a minimum


def np_subgradient(x, axes, isotropic, eps):
    """``D^T w`` with ``w = D x / r`` (``r`` the pixel norm, or ``|D_a x|`` anisotropic) and
    ``w = 0`` where ``r == 0``: the gradient away from kinks, the minimal-norm choice at them."""
    d = np_grad(x, axes)
    if isotropic:
        r = np.sqrt((np.abs(d) ** 2).sum(axis=0, keepdims=True) + eps**2)
    else:
        r = np.abs(d)
    w = np.divide(d, r, out=np.zeros_like(d), where=r > 0)
    return np_grad_adjoint(w, axes)


FLAT_CASES = [
    pytest.param(TV(), (6, 7), False, id="2d-iso"),
    pytest.param(TV(), (5, 6), True, id="2d-iso-complex"),
    pytest.param(TV(eps=0.1), (6, 7), True, id="2d-eps-complex"),
    pytest.param(TV(isotropic=False), (6, 7), False, id="2d-aniso"),
    pytest.param(TV(isotropic=False), (5, 6), True, id="2d-aniso-complex"),
    pytest.param(TV(), (4, 5, 6), False, id="3d-iso"),
    pytest.param(TV(axes=(0, 2), isotropic=False), (4, 5, 6), True, id="3d-axes02-aniso"),
]


@pytest.mark.parametrize("tv, shape, complex_", FLAT_CASES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_gradient_on_piecewise_constant_images_matches_numpy(tv, shape, complex_, dtype):
    """Rounded values: most differences are exactly 0, where the gradient must take the
    subgradient 0 per pixel (isotropic) or per difference (anisotropic), not NaN."""
    rng = np.random.default_rng(7)
    x = np.round(1.5 * randn(rng, shape, DTYPES[complex_]))
    axes = tuple(range(x.ndim)) if tv.axes is None else tv.axes
    want = np_subgradient(x, axes, tv.isotropic, tv.eps if tv.isotropic else 0.0)
    ctype = {"float32": "complex64", "float64": "complex128"}[dtype]
    with jax.enable_x64(dtype == "float64"):
        got = np.asarray(_grad(tv, jnp.asarray(x, ctype if complex_ else dtype)))
    assert got.dtype == (ctype if complex_ else dtype)
    got = np.conj(got) if complex_ else got
    tol = 1e-6 if dtype == "float32" else 1e-13
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


@pytest.mark.parametrize("complex_", [False, True], ids=["real", "complex"])
def test_second_derivative_matches_finite_differences_of_the_gradient(complex_):
    """``jax.jvp`` of the gradient (what CG's ``jax.linearize`` uses) against central
    differences of the gradient along a random direction."""
    rng = np.random.default_rng(5)
    x, v = randn(rng, (4, 5, 3), DTYPES[complex_]), randn(rng, (4, 5, 3), DTYPES[complex_])
    tv, h = TV(eps=0.3), 1e-6
    with jax.enable_x64(True):
        grad = jax.grad(tv)
        _, got = jax.jvp(grad, (jnp.asarray(x),), (jnp.asarray(v),))
        want = (grad(jnp.asarray(x + h * v)) - grad(jnp.asarray(x - h * v))) / (2 * h)
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-8)


def test_gradient_under_vmap_and_jit_matches_one_at_a_time():
    rng = np.random.default_rng(6)
    xs = jnp.asarray(randn(rng, (3, 8, 9)))
    for tv in (TV(), TV(isotropic=False), TV(eps=0.1, axes=(1,))):
        batched = jax.jit(jax.vmap(jax.grad(tv)))(xs)
        for x, g in zip(xs, batched, strict=True):
            np.testing.assert_allclose(g, _grad(tv, x), rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------------------- prox

PROX_CASES = [
    pytest.param((6, 7), True, False, 0.3, id="2d-iso"),
    pytest.param((6, 7), False, False, 0.3, id="2d-aniso"),
    pytest.param((5, 6), True, True, 0.4, id="2d-iso-complex"),
    pytest.param((5, 6), False, True, 0.2, id="2d-aniso-complex"),
    pytest.param((3, 4, 5), True, False, 0.2, id="3d-iso"),
    pytest.param((3, 4, 5), False, False, 0.2, id="3d-aniso"),
]


@pytest.mark.parametrize("shape, isotropic, complex_, lam", PROX_CASES)
def test_prox_matches_certified_reference(shape, isotropic, complex_, lam):
    rng = np.random.default_rng(5)
    x = randn(rng, shape, DTYPES[complex_])
    z_ref, p_ref = chambolle_pock_tv_prox(x, lam, isotropic)
    # the reference certifies itself: primal - dual >= 0.5 ||z_ref - z*||^2
    assert primal(z_ref, x, lam, isotropic) - dual(p_ref, x, lam) < 1e-10
    with jax.enable_x64(True):
        z = prox(TV(isotropic=isotropic), x, lam, 3000)
    assert z.dtype == x.dtype
    assert primal(z, x, lam, isotropic) - dual(p_ref, x, lam) < 1e-9
    np.testing.assert_allclose(z, z_ref, atol=1e-5)


@pytest.mark.parametrize("isotropic", [True, False], ids=["iso", "aniso"])
def test_prox_converges_as_iterations_grow(isotropic):
    rng = np.random.default_rng(6)
    x, lam = randn(rng, (6, 7)), 0.5
    z_ref, p_ref = chambolle_pock_tv_prox(x, lam, isotropic, iterations=4000)
    lower = dual(p_ref, x, lam)
    assert primal(z_ref, x, lam, isotropic) - lower < 1e-10
    gaps, errors = [], []
    with jax.enable_x64(True):
        for n in (10, 100, 5000):
            z = prox(TV(isotropic=isotropic), x, lam, n)
            gaps.append(primal(z, x, lam, isotropic) - lower)
            errors.append(np.linalg.norm(z - z_ref))
    assert gaps[0] > gaps[1] > gaps[2] >= -1e-12
    assert errors[0] > errors[1] > errors[2]
    assert gaps[1] > 1e-6  # 100 iterations are visibly short of the solution here
    assert gaps[2] < 1e-10 and errors[2] < 1e-6


@pytest.mark.parametrize("complex_", [False, True], ids=["real", "complex"])
@pytest.mark.parametrize("isotropic", [True, False], ids=["iso", "aniso"])
def test_prox_optimality_against_perturbations(isotropic, complex_):
    rng = np.random.default_rng(7)
    tv = TV(isotropic=isotropic, prox_iterations=3000)

    @jax.jit
    @jax.vmap
    def objective(v, x, step):
        return 0.5 * jnp.sum(jnp.abs(v - x) ** 2) + step * tv(v)

    with jax.enable_x64(True):
        x = randn(rng, (4, 5), DTYPES[complex_])
        eye = np.eye(x.size).reshape((x.size, *x.shape))
        for step in (0.1, 0.7):
            z = prox(tv, x, step)
            d = [s * randn(rng, (40, *x.shape), DTYPES[complex_]) for s in (1e-3, 0.1, 1)]
            d = np.concatenate([np.zeros((1, *x.shape)), *d, 1e-3 * eye, -1e-3 * eye])
            values = np.asarray(objective(z + d, np.stack([x] * len(d)), np.full(len(d), step)))
            assert values[1:].min() >= values[0] - 1e-9


def test_prox_keeps_the_mean_and_constants():
    rng = np.random.default_rng(8)
    x = randn(rng, (3, 4, 5))
    with jax.enable_x64(True):
        # z = x - lam D^T p and D^T p sums to zero, whatever the iteration count
        z = prox(TV(), x, 0.8, 3)
        assert z.mean() == pytest.approx(x.mean(), abs=1e-12)
        c = np.full((4, 5), 1.5)
        np.testing.assert_allclose(prox(TV(), c, 2.0), c, atol=1e-12)
        np.testing.assert_array_equal(prox(TV(), x, 0.0), x)


def test_prox_with_a_large_step_is_the_mean():
    rng = np.random.default_rng(9)
    x = randn(rng, (4, 4))
    with jax.enable_x64(True):
        z = prox(TV(), x, 100.0, 3000)
    np.testing.assert_allclose(z, np.full_like(x, x.mean()), atol=1e-4)


def test_prox_on_axes_acts_slice_by_slice():
    rng = np.random.default_rng(10)
    x = randn(rng, (3, 4, 5))
    with jax.enable_x64(True):
        got = prox(TV(axes=(1, 2)), x, 0.5, 200)
        want = np.stack([prox(TV(), s, 0.5, 200) for s in x])
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_prox_iterations_argument_and_default():
    rng = np.random.default_rng(11)
    x = jnp.asarray(randn(rng, (4, 5)), jnp.float32)
    default = prox(TV(), x, 0.5)  # the default iteration count (50)
    np.testing.assert_array_equal(default, prox(TV(), x, 0.5, 50))
    np.testing.assert_allclose(
        prox(TV(prox_iterations=7), x, 0.5), prox(TV(), x, 0.5, 7), rtol=1e-6, atol=1e-7
    )
    assert np.abs(prox(TV(), x, 0.5, 7) - default).max() > 1e-3  # the count matters


def test_prox_single_precision_keeps_dtype_and_matches_double():
    rng = np.random.default_rng(12)
    x = randn(rng, (3, 4, 5), np.complex128)
    z = prox(TV(), x.astype(np.complex64), 0.3, 20)  # jitted, the step traced
    assert z.dtype == np.complex64
    with jax.enable_x64(True):
        np.testing.assert_allclose(z, prox(TV(), x, 0.3, 20), rtol=1e-5, atol=1e-5)
    assert prox(TV(), np.ones((4, 5), np.float32), 0.3).dtype == np.float32

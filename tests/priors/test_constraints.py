"""Constraints: projections against NumPy formulas (Simplex against a bisection on the threshold),
membership, nearest-point optimality, indicator values and error messages."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from calcil.priors import Box, NonNegative, Simplex, Support


@jax.jit
def _project(c, x):
    return c.project(x)


@jax.jit
def _prox(c, x, step):
    return c.prox(x, step)


@jax.jit
def _value(c, x):
    return c(x)


def project(c, x):
    return np.asarray(_project(c, x))


def np_simplex(x, total=1.0):
    """Projection onto {z >= 0, sum z = total} by bisection on theta in max(x - theta, 0)."""
    v = x.ravel()
    lo, hi = v.min() - total, v.max()  # mass(lo) >= total > mass(hi) = 0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if np.maximum(v - mid, 0).sum() > total:
            lo = mid
        else:
            hi = mid
    return np.maximum(x - 0.5 * (lo + hi), 0)


SHAPE = (4, 5)
MASK = np.arange(20).reshape(SHAPE) % 3 != 0
LO = np.linspace(-1.0, 0.0, 20).reshape(SHAPE)
HI = LO + np.linspace(0.1, 2.0, 20).reshape(SHAPE)


def cases():
    """(constraint, numpy projection, numpy membership, sampler of random feasible points)."""
    return [
        (
            NonNegative(),
            lambda x: np.maximum(x, 0),
            lambda z: np.all(z >= 0),
            lambda rng, n: (
                np.abs(rng.standard_normal((n, *SHAPE))) * (rng.random((n, *SHAPE)) > 0.3)
            ),
        ),
        (
            Box(-0.5, 0.7),
            lambda x: np.clip(x, -0.5, 0.7),
            lambda z: np.all((z >= -0.5) & (z <= 0.7)),
            lambda rng, n: rng.uniform(-0.5, 0.7, (n, *SHAPE)),
        ),
        (
            Box(LO, HI),
            lambda x: np.clip(x, LO, HI),
            lambda z: np.all((z >= LO) & (z <= HI)),
            lambda rng, n: LO + (HI - LO) * rng.random((n, *SHAPE)),
        ),
        (
            Simplex(),
            np_simplex,
            lambda z: np.all(z >= 0) and abs(z.sum() - 1) < 1e-12,
            lambda rng, n: rng.dirichlet(np.full(20, 0.5), n).reshape((n, *SHAPE)),
        ),
        (
            Simplex(2.5),
            lambda x: np_simplex(x, 2.5),
            lambda z: np.all(z >= 0) and abs(z.sum() - 2.5) < 1e-12,
            lambda rng, n: 2.5 * rng.dirichlet(np.ones(20), n).reshape((n, *SHAPE)),
        ),
        (
            Support(MASK),
            lambda x: np.where(MASK, x, 0),
            lambda z: np.all(z[~MASK] == 0),
            lambda rng, n: rng.standard_normal((n, *SHAPE)) * MASK,
        ),
    ]


IDS = ["nonnegative", "box", "box-arrays", "simplex", "simplex2.5", "support"]


@pytest.fixture(params=range(len(IDS)), ids=IDS)
def case(request):
    with jax.enable_x64(True):  # array bounds and masks built in double precision
        yield cases()[request.param]


def test_projection_matches_numpy_and_lands_in_the_set(case):
    constraint, reference, inside, _ = case
    rng = np.random.default_rng(0)
    for scale in (0.1, 1.0, 5.0):
        x = scale * rng.standard_normal(SHAPE)
        z = project(constraint, x)
        np.testing.assert_allclose(z, reference(x), rtol=1e-12, atol=1e-12)
        assert inside(z)
        assert float(_value(constraint, z)) == 0.0


def test_projection_is_the_nearest_feasible_point(case):
    """||x - P(x)|| <= ||x - q|| and <x - P(x), q - P(x)> <= 0 for feasible q, far and near."""
    constraint, _, inside, sample = case
    rng = np.random.default_rng(1)
    x = 2 * rng.standard_normal(SHAPE)
    z = project(constraint, x)
    far = sample(rng, 50)
    t = np.array([1e-3, 1e-2, 0.1, 0.5])[:, None, None, None]
    near = ((1 - t) * z + t * far[:4, None]).reshape((-1, *SHAPE))  # convex combinations
    for q in np.concatenate([far, near]):
        assert inside(q)
        assert np.linalg.norm(x - z) <= np.linalg.norm(x - q) + 1e-12
        assert np.vdot(x - z, q - z) <= 1e-12


def test_projection_fixes_feasible_points(case):
    constraint, _, _, sample = case
    for q in sample(np.random.default_rng(2), 5):
        np.testing.assert_allclose(project(constraint, q), q, atol=1e-15)
        assert float(_value(constraint, q)) == 0.0


def test_prox_is_the_projection_for_any_step(case):
    constraint, reference, _, _ = case
    x = 3 * np.random.default_rng(3).standard_normal(SHAPE)
    for step in (1e-3, 1.0, 100.0):
        np.testing.assert_allclose(_prox(constraint, x, step), reference(x), atol=1e-12)
        np.testing.assert_allclose(_prox(0.01 * constraint, x, step), reference(x), atol=1e-12)
    assert constraint.has_prox and (2.0 * constraint).has_prox


def test_value_is_zero_inside_and_inf_outside():
    with jax.enable_x64(True):
        assert float(_value(NonNegative(), np.array([0.0, 2.0]))) == 0.0
        assert float(_value(NonNegative(), np.array([-1e-9, 2.0]))) == np.inf
        assert float(_value(Box(0.0, 1.0), np.array([0.0, 1.0]))) == 0.0
        assert float(_value(Box(0.0, 1.0), np.array([0.5, 1.0 + 1e-9]))) == np.inf
        assert float(_value(Simplex(), np.array([0.25, 0.75]))) == 0.0
        assert float(_value(Simplex(), np.array([0.25, 0.80]))) == np.inf
        assert float(_value(Simplex(), np.array([-0.25, 1.25]))) == np.inf
        assert float(_value(Support(np.array([1, 0])), np.array([3.0, 0.0]))) == 0.0
        assert float(_value(Support(np.array([1, 0])), np.array([3.0, 1e-9]))) == np.inf
        assert float(_value(Support(np.array([1, 0])), np.array([3j, 1e-9j]))) == np.inf


def test_simplex_value_tolerates_single_precision_rounding():
    z = np.random.default_rng(4).dirichlet(np.ones(1000)).astype(np.float32)
    assert abs(float(z.sum(dtype=np.float64)) - 1) < 1e-5
    assert float(_value(Simplex(), z)) == 0.0


def test_simplex_by_hand():
    np.testing.assert_allclose(project(Simplex(), np.array([2.0, 0.0])), [1.0, 0.0])
    np.testing.assert_allclose(
        project(Simplex(), np.array([0.3, 0.3, 0.3])), [1 / 3] * 3, rtol=1e-6
    )
    # theta = 1: [2, 1, -1] -> [1, 0, 0]; total 3: theta = 0 -> [2, 1, 0]
    np.testing.assert_allclose(project(Simplex(), np.array([2.0, 1.0, -1.0])), [1.0, 0.0, 0.0])
    np.testing.assert_allclose(project(Simplex(3.0), np.array([2.0, 1.0, -1.0])), [2.0, 1.0, 0.0])
    # all elements of a 2D array form one simplex: theta = 0.5
    z = project(Simplex(), np.array([[1.0, 0.0], [1.0, 0.0]]))
    np.testing.assert_allclose(z, [[0.5, 0.0], [0.5, 0.0]])


def test_simplex_single_precision_matches_reference():
    x = np.random.default_rng(5).standard_normal((16, 16)).astype(np.float32)
    z = project(Simplex(), x)
    assert z.dtype == np.float32
    assert np.all(z >= 0) and abs(float(z.sum(dtype=np.float64)) - 1) < 1e-5
    np.testing.assert_allclose(z, np_simplex(x.astype(np.float64)), atol=1e-6)


def test_support_is_complex_and_broadcasts():
    x = np.array([[1 + 2j, 3j], [4.0, -1j]], np.complex64)
    mask = np.array([True, False])  # broadcast along rows
    z = project(Support(mask), x)
    assert z.dtype == np.complex64
    np.testing.assert_array_equal(z, [[1 + 2j, 0], [4, 0]])


def test_box_with_array_bounds_broadcasts():
    lo, hi = np.array([0.0, -1.0, 0.5]), np.array([1.0, 0.0, 0.5])
    x = np.array([[-2.0, 3.0, 0.0], [0.5, -0.5, 9.0]], np.float32)
    z = project(Box(lo, hi), x)
    np.testing.assert_array_equal(z, [[0.0, 0.0, 0.5], [0.5, -0.5, 0.5]])


@pytest.mark.parametrize(
    "constraint", [NonNegative(), Box(0.0, 1.0), Simplex()], ids=["nonneg", "box", "simplex"]
)
def test_single_precision_is_kept_with_x64_on(constraint):
    x = np.random.default_rng(6).standard_normal(SHAPE).astype(np.float32)
    with jax.enable_x64(True):
        assert project(constraint, x).dtype == np.float32
        assert constraint.prox(x, 1.0).dtype == np.float32


def test_value_gradient_is_zero_at_feasible_points():
    """The indicator is constant (0) around an interior point: jax.grad and central differences
    both give 0; at boundary points jax.grad stays finite."""
    x = np.array([0.2, 0.5, 0.9])
    h = 1e-6
    for c in (NonNegative(), Box(0.0, 1.0)):
        g = np.asarray(jax.grad(c)(x))
        np.testing.assert_array_equal(g, np.zeros(3))
        fd = [(float(c(x + h * e)) - float(c(x - h * e))) / (2 * h) for e in np.eye(3)]
        np.testing.assert_array_equal(fd, np.zeros(3))
    for c, z in ((Simplex(), np.array([0.0, 0.25, 0.75])), (Support([1, 0, 1]), x * [1, 0, 1])):
        assert np.all(np.isfinite(np.asarray(jax.grad(c)(z))))


# ---------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "constraint", [NonNegative(), Box(0.0, 1.0), Simplex()], ids=["nonneg", "box", "simplex"]
)
def test_complex_input_is_rejected(constraint):
    x = jnp.ones(3, jnp.complex64)
    name = type(constraint).__name__
    pattern = rf"{name} constrains real arrays, got complex64"
    with pytest.raises(TypeError, match=pattern):
        constraint(x)
    with pytest.raises(TypeError, match=pattern):
        constraint.project(x)
    with pytest.raises(TypeError, match=pattern):
        constraint.prox(x, 1.0)


def test_box_lo_above_hi():
    with pytest.raises(ValueError, match=r"Box needs lo <= hi, got lo=2\.0 and hi=1\.0"):
        Box(2.0, 1.0)
    with pytest.raises(ValueError, match=r"Box needs lo <= hi"):
        Box(np.zeros(3), np.array([1.0, -1.0, 1.0]))
    Box(1.0, 1.0)  # a single point is a valid box


@pytest.mark.parametrize("total", [0.0, -1.0])
def test_simplex_total_must_be_positive(total):
    with pytest.raises(ValueError, match=r"Simplex total must be positive, got"):
        Simplex(total)


def test_support_shape_mismatch():
    with pytest.raises(ValueError, match=r"Support mask of shape \(3,\) does not broadcast with x"):
        Support(np.ones(3)).project(jnp.ones((2, 4)))
    with pytest.raises(ValueError, match=r"\(2, 4\)"):
        Support(np.ones(3))(jnp.ones((2, 4)))


def test_names_and_repr():
    assert [c.name for c in (NonNegative(), Box(), Simplex(), Support([1]))] == [
        "nonnegative",
        "box",
        "simplex",
        "support",
    ]
    assert repr(NonNegative()) == "NonNegative()"
    assert repr(Box(0.0, 1.0)) == "Box(lo=0, hi=1)"
    assert repr(Simplex(2.0)) == "Simplex(total=2)"
    assert repr(Support(np.ones((3, 4)))) == "Support(mask=b1[3,4])"

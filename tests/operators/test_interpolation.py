"""Shift against jnp.roll and band-limited signals, Interpolate against SciPy's
map_coordinates; gradients with respect to the shift and the coordinates against finite
differences."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy.ndimage import map_coordinates

import calcil as cc
from tests.helpers import fd_grad

O = cc.operators


@pytest.mark.parametrize("dtype", [np.float32, np.complex64])
def test_integer_shifts_equal_roll(dtype):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 6, 7)).astype(dtype)
    if np.iscomplexobj(x):
        x = x + 1j * rng.standard_normal(x.shape).astype(np.float32)
    for shift, axes in (([2, -3], (1, 2)), (5.0, None), ([1, 1, -1], None)):
        got = O.Shift(x.shape, shift, axes=axes)(x)
        n = np.size(shift)
        want = np.roll(
            x, np.atleast_1d(shift).astype(int), axes if axes else tuple(range(3 - n, 3))
        )
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_band_limited_signals_shift_exactly():
    """A sum of sinusoids below the Nyquist frequency, shifted by fractions of a pixel."""
    n = (16, 15)
    y, x = np.meshgrid(np.arange(n[0]), np.arange(n[1]), indexing="ij")

    def signal(dy, dx):
        yy, xx = y - dy, x - dx
        return (
            np.cos(2 * np.pi * 3 * yy / n[0] + 0.4)
            + 0.5 * np.sin(2 * np.pi * (2 * yy / n[0] + 5 * xx / n[1]))
            + 0.25 * np.cos(2 * np.pi * 7 * xx / n[1])
        )

    with jax.enable_x64(True):
        got = O.Shift(n, [0.37, -2.81])(signal(0, 0))
        np.testing.assert_allclose(got, signal(0.37, -2.81), atol=1e-12)


def test_adjoint_shifts_back_and_odd_sizes_are_unitary():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 9)) + 1j * rng.standard_normal((5, 9))
    with jax.enable_x64(True):
        S = O.Shift((5, 9), [0.4, 1.3])
        np.testing.assert_allclose(S.H(x), O.Shift((5, 9), [-0.4, -1.3])(x), atol=1e-12)
        np.testing.assert_allclose(S.H(S(x)), x, atol=1e-12)
        assert S.unitary_factorization() is not None
        # even axis, fractional shift: the Nyquist row is scaled by cos(pi s), not unitary
        assert O.Shift((6, 9), [0.4, 1.3]).unitary_factorization() is None
        assert O.Shift((6, 9), [2.0, 1.0]).unitary_factorization() is not None


def test_gradient_with_respect_to_the_shift():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((8, 7))
    w = rng.standard_normal((8, 7))
    with jax.enable_x64(True):

        def loss(s):
            return jnp.sum(w * O.Shift((8, 7), s)(x))

        s = np.array([0.3, -1.2])
        np.testing.assert_allclose(jax.grad(loss)(s), fd_grad(loss, s), rtol=1e-6)


@pytest.mark.parametrize(
    ("shape", "coordinate_shape"),
    [((9,), (1, 7)), ((6, 7), (2, 4, 5)), ((4, 5, 6), (3, 11)), ((3, 6, 7), (2, 5))],
)
def test_interpolate_equals_scipy_grid_constant(shape, coordinate_shape):
    rng = np.random.default_rng(3)
    x = rng.standard_normal(shape)
    ndim = coordinate_shape[0]
    grid = shape[len(shape) - ndim :]
    # inside, across the border and beyond it on every side
    coordinates = np.stack([rng.uniform(-1.7, n + 0.7, coordinate_shape[1:]) for n in grid])
    coordinates[..., 0] = -0.5  # half a pixel before the first: half of x[0]
    with jax.enable_x64(True):
        got = np.asarray(O.Interpolate(shape, coordinates)(jnp.asarray(x)))
    batch = shape[: len(shape) - ndim]
    for index in np.ndindex(*batch):
        want = map_coordinates(x[index], coordinates, order=1, mode="grid-constant")
        np.testing.assert_allclose(got[index], want, atol=1e-12)


def test_gradient_with_respect_to_the_coordinates():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((6, 7))
    w = rng.standard_normal((3, 4))
    with jax.enable_x64(True):

        def loss(c):
            return jnp.sum(w * O.Interpolate((6, 7), c)(x))

        c = rng.uniform(0.1, 5.0, (2, 3, 4))
        c = np.where(np.abs(c - np.round(c)) < 0.05, c + 0.1, c)  # away from the kinks
        np.testing.assert_allclose(jax.grad(loss)(c), fd_grad(loss, c), rtol=1e-6)


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: O.Shift((4, 4), [1.0, 2.0, 3.0]), "3 shifts for a 2-d"),
        (lambda: O.Shift((4, 4), [1.0, 2.0], axes=0), "one shift per axis"),
        (lambda: O.Shift((4, 4), np.nan), "must be finite"),
        (lambda: O.Interpolate((4, 4), np.zeros((3, 5))), r"coordinates must have shape"),
        (lambda: O.Interpolate((4, 4), np.zeros((2, 5)), order=3), "order=1"),
        (lambda: O.Interpolate((4, 4), [[np.inf, 1.0]]), "must be finite"),
    ],
)
def test_bad_arguments(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_a_unitary_shift_takes_the_least_squares_fast_path():
    """Registration-free denoising through a known whole-pixel shift: ``U = Shift``, ``B = I``,
    so each step costs no FFT; the result equals the autodiff run."""
    rng = np.random.default_rng(5)
    S = O.Shift((8, 9), [3.0, -2.0])
    y = S(jnp.asarray(rng.standard_normal((8, 9)), jnp.float32))
    objective = cc.Objective(forward=lambda p, b: S(p["x"]), loss=cc.losses.L2(target="y"))
    runs = [
        cc.GradientSolver(objective, optimizer=optax.adam(0.1), fast_path=fast).run(
            {"x": jnp.zeros((8, 9))}, {"y": y}, iterations=30, progress=False
        )
        for fast in (True, False)
    ]
    assert runs[0].fast_path.startswith("used: loss/l2"), runs[0].fast_path
    np.testing.assert_allclose(runs[0].params["x"], runs[1].params["x"], atol=1e-5)

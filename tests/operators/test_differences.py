"""FiniteDifference against numpy.diff / np.roll and the backward-difference divergence."""

import jax
import numpy as np
import pytest

import calcil as cc
from calcil.operators import FiniteDifference
from tests.helpers import assert_close, randn, x64

# real single and complex double precision (with x64)
DTYPES = [
    pytest.param(np.float32, 1e-5, id="f32"),
    pytest.param(np.complex128, 1e-12, id="c128"),
]
SHAPES_AXES = [
    ((7,), None),
    ((5, 6), None),
    ((5, 6), (0,)),
    ((5, 6), (-1,)),
    ((5, 6), (1, 0)),  # the stack follows the order of axes
    ((3, 4, 5), None),
    ((3, 4, 5), (0, 2)),
    ((3, 4, 5), (-2,)),
]


def axes_of(axes, ndim):
    return tuple(range(ndim)) if axes is None else tuple(a % ndim for a in axes)


def forward_reference(x, axes, boundary):
    """np.diff with a zero last difference (neumann), or np.roll(x, -1) - x (periodic)."""
    out = []
    for a in axes:
        if boundary == "periodic":
            out.append(np.roll(x, -1, axis=a) - x)
        else:
            out.append(np.diff(x, axis=a, append=np.take(x, [-1], axis=a)))
    return np.stack(out)


def divergence(p, axis, boundary):
    """Backward-difference divergence, the negative adjoint of the forward difference.

    periodic: div[i] = p[i] - p[i-1] (wrapping); neumann: p[0] at i = 0, p[i] - p[i-1] inside,
    -p[n-2] at i = n - 1 (the last forward difference is zero, so p[n-1] does not enter).
    """
    p = np.moveaxis(p, axis, 0)
    d = np.empty_like(p)
    n = p.shape[0]
    if boundary == "periodic":
        for i in range(n):
            d[i] = p[i] - p[i - 1]
    else:
        d[0] = p[0]
        for i in range(1, n - 1):
            d[i] = p[i] - p[i - 1]
        d[n - 1] = -p[n - 2]
    return np.moveaxis(d, 0, axis)


@pytest.mark.parametrize("dtype, rtol", DTYPES)
@pytest.mark.parametrize("boundary", ["periodic", "neumann"])
@pytest.mark.parametrize("shape, axes", SHAPES_AXES)
def test_matches_numpy(dtype, rtol, boundary, shape, axes):
    rng = np.random.default_rng(0)
    ax = axes_of(axes, len(shape))
    x = randn(rng, shape, dtype)
    want = forward_reference(x.astype(np.complex128), ax, boundary)
    y = randn(rng, want.shape, dtype)
    want_adj = -sum(divergence(y[i].astype(np.complex128), a, boundary) for i, a in enumerate(ax))
    if not np.iscomplexobj(x):
        want, want_adj = want.real, want_adj.real
    with x64(dtype):
        op = FiniteDifference(shape, axes=axes, boundary=boundary, input_dtype=dtype)
        fx, hy = jax.jit(lambda op, x, y: (op(x), op.H(y)))(op, x, y)
    assert op.output_shape == (len(ax), *shape)
    assert fx.dtype == dtype and hy.dtype == dtype
    assert_close(fx, want, rtol)
    assert_close(hy, want_adj, rtol)


def test_by_hand():
    x = np.array([0.0, 1.0, 3.0, 6.0], np.float32)
    np.testing.assert_array_equal(FiniteDifference((4,), boundary="neumann")(x), [[1, 2, 3, 0]])
    np.testing.assert_array_equal(FiniteDifference((4,))(x), [[1, 2, 3, -6]])
    y = np.array([[1.0, 2.0, 3.0, 4.0]], np.float32)
    # neumann adjoint: -[p0, p1 - p0, p2 - p1, -p2]
    np.testing.assert_array_equal(FiniteDifference((4,), boundary="neumann").H(y), [-1, -1, -1, 3])
    # periodic adjoint: p[i-1] - p[i]
    np.testing.assert_array_equal(FiniteDifference((4,)).H(y), [3, -1, -1, -1])


def test_2d_stack_order():
    """(ny, nx) input: output[0] differentiates along y (axis 0), output[1] along x."""
    x = np.add.outer(10 * np.arange(4.0), np.arange(5.0)).astype(np.float32)  # 10 y + x
    d = np.asarray(FiniteDifference((4, 5), boundary="neumann")(x))
    np.testing.assert_array_equal(d[0, :-1], 10)
    np.testing.assert_array_equal(d[0, -1], 0)
    np.testing.assert_array_equal(d[1, :, :-1], 1)
    np.testing.assert_array_equal(d[1, :, -1], 0)


@pytest.mark.parametrize("boundary", ["periodic", "neumann"])
def test_constant_is_in_the_null_space(boundary):
    op = FiniteDifference((3, 4, 5), boundary=boundary)
    np.testing.assert_array_equal(op(np.full((3, 4, 5), 2.5, np.float32)), 0)


@pytest.mark.parametrize("boundary", ["periodic", "neumann"])
def test_gram_is_minus_laplacian(boundary):
    """1-D D^H D is the matrix tridiag(-1, 2, -1) with the boundary rows of each condition."""
    n = 6
    lap = 2 * np.eye(n) - np.eye(n, k=1) - np.eye(n, k=-1)
    if boundary == "periodic":
        lap[0, -1] = lap[-1, 0] = -1
    else:
        lap[0, 0] = lap[-1, -1] = 1
    with x64(np.float64):
        op = FiniteDifference((n,), boundary=boundary)
        cols = np.stack([np.asarray(op.gram(e)) for e in np.eye(n)], axis=1)
        cc.testing.check_adjoint(op)
    assert_close(cols, lap, 1e-12)


@pytest.mark.parametrize(("boundary", "mode"), [("periodic", "wrap"), ("neumann", "nearest")])
def test_gram_equals_scipy_laplace_without_stacking(boundary, mode):
    """D^H D = -laplace(x) of scipy.ndimage (edge-replicating mode: zero flux), in 2-D and
    3-D; the gram never builds the stacked differences (no concatenate in its program)."""
    from scipy import ndimage

    rng = np.random.default_rng(3)
    for shape in [(6, 7), (4, 5, 6)]:
        x = rng.standard_normal(shape)
        with x64(np.float64):
            op = FiniteDifference(shape, boundary=boundary)
            got = np.asarray(op.gram(x))
            primitives = {e.primitive.name for e in jax.make_jaxpr(op.gram)(x).eqns}
        assert_close(got, -ndimage.laplace(x, mode=mode), 1e-12)
        assert "concatenate" not in primitives, primitives


def test_default_dtype():
    assert FiniteDifference((4,)).input_dtype == np.float32
    with x64(np.float64):
        assert FiniteDifference((4,)).input_dtype == np.float64


def test_errors():
    with pytest.raises(ValueError, match="boundary must be one of"):
        FiniteDifference((4, 4), boundary="reflect")
    with pytest.raises(ValueError, match="out of range for a 2-d input"):
        FiniteDifference((4, 4), axes=(2,))
    with pytest.raises(ValueError, match="repeats an axis"):
        FiniteDifference((4, 4), axes=(1, -1))

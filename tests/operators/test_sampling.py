"""Crop, Pad, Subsample, Bin, Gather and Mask against NumPy slicing, padding and np.add.at."""

import jax
import numpy as np
import pytest

import calcil as cc
from calcil.operators import Bin, Crop, Gather, Mask, Pad, Subsample
from tests.helpers import assert_close, randn, x64

# (dtype of the data, relative tolerance): real single and complex double precision (with x64)
DTYPES = [
    pytest.param(np.float32, 1e-5, id="f32"),
    pytest.param(np.complex128, 1e-12, id="c128"),
]


def apply_both(op, x, y):
    """Forward and adjoint (one compiled call), checking the declared dtypes."""
    fx, hy = jax.jit(lambda op, x, y: (op(x), op.H(y)))(op, x, y)
    assert fx.dtype == x.dtype and hy.dtype == y.dtype
    assert fx.shape == op.output_shape and hy.shape == op.input_shape
    return np.asarray(fx), np.asarray(hy)


# ---------------------------------------------------------------------------------- Crop
@pytest.mark.parametrize("dtype, rtol", DTYPES)
@pytest.mark.parametrize(
    "in_shape, out_shape, start, window",
    [
        ((7, 9), (4, 4), None, np.s_[1:5, 2:6]),  # centred: (in - out) // 2
        ((8,), (3,), None, np.s_[2:5]),
        ((8, 6), (8, 1), None, np.s_[0:8, 2:3]),
        ((7, 9), (4, 4), (0, 3), np.s_[0:4, 3:7]),  # explicit start
        ((7, 9), (4, 4), (3, 5), np.s_[3:7, 5:9]),  # window touching the far edges
        ((7, 9), (2, 3), 1, np.s_[1:3, 1:4]),  # an int start applies to every axis
        ((2, 7, 9), (4, 5), None, np.s_[:, 1:5, 2:7]),  # trailing axes; batch axis kept
        ((2, 7, 9), (4, 5), (2, 0), np.s_[:, 2:6, 0:5]),
        ((3, 2, 5), (1, 5), None, np.s_[:, 0:1, :]),
    ],
)
def test_crop(dtype, rtol, in_shape, out_shape, start, window):
    rng = np.random.default_rng(0)
    x = randn(rng, in_shape, dtype)
    want = x[window]
    y = randn(rng, want.shape, dtype)
    embedded = np.zeros(in_shape, dtype)  # Crop^H: zero embedding at the window
    embedded[window] = y
    with x64(dtype):
        op = Crop(in_shape, out_shape, start=start, input_dtype=dtype)
        assert op.output_shape == want.shape
        fx, hy = apply_both(op, x, y)
    np.testing.assert_array_equal(fx, want)
    np.testing.assert_array_equal(hy, embedded)


def test_crop_default_dtype():
    op = Crop((4, 4), (2, 2))
    assert op.input_dtype == np.float32 and op.output_dtype == np.float32
    with x64(np.float64):
        assert Crop((4, 4), (2, 2)).input_dtype == np.float64


def test_crop_errors():
    with pytest.raises(ValueError, match="has more axes than input_shape"):
        Crop((4, 4), (1, 2, 2))
    with pytest.raises(ValueError, match="is larger than input_shape"):
        Crop((4, 4), (5, 2))
    with pytest.raises(ValueError, match="does not fit"):
        Crop((7, 9), (4, 4), start=(4, 0))
    with pytest.raises(ValueError, match="does not fit"):
        Crop((7, 9), (4, 4), start=(0, -1))
    with pytest.raises(ValueError, match="Crop start needs 2 values"):
        Crop((7, 9), (4, 4), start=(0, 1, 2))
    with pytest.raises(ValueError, match=r"expects input of shape \(7, 9\), got \(9, 7\)"):
        Crop((7, 9), (4, 4))(np.zeros((9, 7), np.float32))


# ----------------------------------------------------------------------------------- Pad
@pytest.mark.parametrize("dtype, rtol", DTYPES)
@pytest.mark.parametrize(
    "in_shape, pad_width",
    [
        ((5,), 2),
        ((4, 3), 1),
        ((4, 3), (1, 3)),  # (before, after) on every axis
        ((4, 3), ((1, 3),)),
        ((4, 3), ((0, 2), (3, 1))),  # one pair per axis
        ((2, 4, 3), ((0, 0), (2, 0), (0, 1))),
        ((4, 3), 0),
        ((4, 3), (2,)),
    ],
)
def test_pad(dtype, rtol, in_shape, pad_width):
    rng = np.random.default_rng(1)
    x = randn(rng, in_shape, dtype)
    want = np.pad(x, pad_width)
    y = randn(rng, want.shape, dtype)
    # Pad^H: the window of y where x went, found by padding an index array the same way
    where = np.pad(np.ones(in_shape, bool), pad_width)
    with x64(dtype):
        op = Pad(in_shape, pad_width, input_dtype=dtype)
        assert op.output_shape == want.shape
        fx, hy = apply_both(op, x, y)
    np.testing.assert_array_equal(fx, want)
    np.testing.assert_array_equal(hy, y[where].reshape(in_shape))


def test_pad_is_crop_adjoint():
    """Pad((4, 3), ((1, 2), (0, 3))) and Crop((7, 6), (4, 3), start=(1, 0)) are adjoints."""
    rng = np.random.default_rng(2)
    x, y = randn(rng, (4, 3), np.float32), randn(rng, (7, 6), np.float32)
    pad, crop = Pad((4, 3), ((1, 2), (0, 3))), Crop((7, 6), (4, 3), start=(1, 0))
    np.testing.assert_array_equal(pad(x), crop.H(x))
    np.testing.assert_array_equal(pad.H(y), crop(y))


def test_pad_errors():
    with pytest.raises(ValueError, match="pad_width must be non-negative"):
        Pad((4,), (-1, 2))
    with pytest.raises(ValueError, match="does not fit a 2-d input"):
        Pad((4, 3), ((1, 2), (3, 4), (5, 6)))
    with pytest.raises(ValueError, match="does not fit a 1-d input"):
        Pad((4,), (1, 2, 3))


# ----------------------------------------------------------------------------- Subsample
@pytest.mark.parametrize("dtype, rtol", DTYPES)
@pytest.mark.parametrize(
    "in_shape, factors, offset, window",
    [
        ((10,), 3, 0, np.s_[0::3]),
        ((10,), 3, 2, np.s_[2::3]),
        ((7, 9), 2, 1, np.s_[1::2, 1::2]),  # int factor and offset: every axis
        ((7, 9), (2, 3), (1, 2), np.s_[1::2, 2::3]),
        ((3, 8, 9), 2, 0, np.s_[0::2, 0::2, 0::2]),  # int factor: all axes, batch included
        ((3, 8, 9), (2, 3), (1, 0), np.s_[:, 1::2, 0::3]),  # tuple: trailing axes
        ((3, 8, 9), (4,), 3, np.s_[:, :, 3::4]),
        ((4, 5), (1, 5), (0, 4), np.s_[:, 4::5]),
    ],
)
def test_subsample(dtype, rtol, in_shape, factors, offset, window):
    rng = np.random.default_rng(3)
    x = randn(rng, in_shape, dtype)
    want = x[window]
    y = randn(rng, want.shape, dtype)
    embedded = np.zeros(in_shape, dtype)  # Subsample^H: samples back on a zero grid
    embedded[window] = y
    with x64(dtype):
        op = Subsample(in_shape, factors, offset, input_dtype=dtype)
        assert op.output_shape == want.shape
        fx, hy = apply_both(op, x, y)
    np.testing.assert_array_equal(fx, want)
    np.testing.assert_array_equal(hy, embedded)


def test_subsample_errors():
    with pytest.raises(ValueError, match="must be positive"):
        Subsample((8,), 0)
    with pytest.raises(ValueError, match="must be positive, one per trailing axis"):
        Subsample((8,), (2, 2))
    with pytest.raises(ValueError, match="is outside the axes"):
        Subsample((8, 6), 2, offset=(0, 6))
    with pytest.raises(ValueError, match="is outside the axes"):
        Subsample((8, 6), 2, offset=-1)
    with pytest.raises(ValueError, match="Subsample offset needs 2 values"):
        Subsample((8, 6), 2, offset=(0, 1, 0))


# ----------------------------------------------------------------------------------- Bin
def _binned(x, factors):
    """Block sums with reshape: (..., n0, n1) -> (..., n0 / f0, f0, n1 / f1, f1) -> sum."""
    lead = x.ndim - len(factors)
    shape = list(x.shape[:lead])
    for n, f in zip(x.shape[lead:], factors, strict=True):
        shape += [n // f, f]
    return x.reshape(shape).sum(axis=tuple(lead + 2 * i + 1 for i in range(len(factors))))


def _spread(y, factors):
    """Each block value repeated over its block (the adjoint of a block sum)."""
    lead = y.ndim - len(factors)
    for i, f in enumerate(factors):
        y = np.repeat(y, f, axis=lead + i)
    return y


@pytest.mark.parametrize("dtype, rtol", DTYPES)
@pytest.mark.parametrize("reduce", ["sum", "mean"])
@pytest.mark.parametrize(
    "in_shape, factors, full",
    [
        ((8,), 2, (2,)),
        ((6, 8), 2, (2, 2)),  # an int bins every axis
        ((6, 8), (3, 4), (3, 4)),
        ((3, 6, 8), (2, 4), (2, 4)),  # a tuple bins the trailing axes
        ((4, 6, 8), 2, (2, 2, 2)),
        ((6, 8), (1, 8), (1, 8)),
    ],
)
def test_bin(dtype, rtol, reduce, in_shape, factors, full):
    rng = np.random.default_rng(4)
    x = randn(rng, in_shape, dtype)
    norm = 1.0 if reduce == "sum" else 1.0 / np.prod(full)
    want = norm * _binned(x.astype(np.complex128), full)
    y = randn(rng, want.shape, dtype)
    want_adj = norm * _spread(y.astype(np.complex128), full)
    with x64(dtype):
        op = Bin(in_shape, factors, reduce=reduce, input_dtype=dtype)
        fx, hy = apply_both(op, x, y)
    assert_close(fx, want if np.iscomplexobj(x) else want.real, rtol)
    assert_close(hy, want_adj if np.iscomplexobj(x) else want_adj.real, rtol)


def test_bin_by_hand():
    x = np.arange(24.0, dtype=np.float32).reshape(4, 6)
    np.testing.assert_array_equal(Bin((4, 6), (2, 3))(x), [[24, 42], [96, 114]])
    np.testing.assert_array_equal(Bin((4, 6), (2, 3), reduce="mean")(x), [[4, 7], [16, 19]])


def test_bin_errors():
    with pytest.raises(ValueError, match="must divide the binned axes"):
        Bin((6, 8), 3)
    with pytest.raises(ValueError, match="must divide the binned axes"):
        Bin((6, 8), (2, 3))
    with pytest.raises(ValueError, match="Bin reduce must be 'sum' or 'mean'"):
        Bin((6, 8), 2, reduce="max")
    with pytest.raises(ValueError, match="do not fit input_shape"):
        Bin((8,), (2, 2))
    with pytest.raises(ValueError, match="do not fit input_shape"):
        Bin((8,), 0)


# -------------------------------------------------------------------------------- Gather
@pytest.mark.parametrize("dtype, rtol", DTYPES)
@pytest.mark.parametrize(
    "in_shape, indices",
    [
        ((10,), np.array([3, 0, 3, 9, 3])),  # repeated indices
        ((10,), np.array([-1, 0, -10, 9])),  # negative indices, NumPy semantics
        ((5, 4), np.array([4, 1, 1])),  # a 1-D array indexes the first axis
        ((10,), np.array([[1, 2], [2, 7]])),  # a 2-D index array
        ((5, 4), (np.array([0, 2, 4, 2]), np.array([1, 1, 3, 1]))),  # tuple of arrays
        ((5, 4), (np.array([[0], [3], [3]]), np.array([[1, 2, 1]]))),  # broadcast together
        ((3, 5, 4), (np.array([2, 0, 2]), np.array([4, 4, 4]))),  # leading axes only
        ((5, 4), np.array([[True, False, True, True]] * 2 + [[False] * 4] * 3)),  # bool mask
        ((5, 4), np.array([True, False, True, True, False])),  # mask of the leading axis
    ],
)
def test_gather(dtype, rtol, in_shape, indices):
    rng = np.random.default_rng(5)
    x = randn(rng, in_shape, dtype)
    want = x[indices]
    y = randn(rng, want.shape, dtype)
    want_adj = np.zeros(in_shape, np.complex128)
    np.add.at(want_adj, indices, y)  # scatter-add: repeated indices accumulate
    with x64(dtype):
        op = Gather(in_shape, indices, input_dtype=dtype)
        assert op.output_shape == want.shape
        fx, hy = apply_both(op, x, y)
    np.testing.assert_array_equal(fx, want)
    assert_close(hy, want_adj if np.iscomplexobj(x) else want_adj.real, rtol)


def test_gather_adjoint_by_hand():
    op = Gather((4,), np.array([3, 0, 3, 3]))
    np.testing.assert_array_equal(op.H(np.array([1, 2, 4, 8], np.float32)), [2, 0, 0, 13])
    cc.testing.check_adjoint(op)


def test_gather_errors():
    with pytest.raises(ValueError, match=r"must lie in \[-5, 5\)"):
        Gather((5,), np.array([0, 5]))
    with pytest.raises(ValueError, match=r"must lie in \[-5, 5\)"):
        Gather((5,), np.array([-6, 0]))
    with pytest.raises(ValueError, match=r"along axis 1 must lie in \[-4, 4\)"):
        Gather((5, 4), (np.array([0]), np.array([4])))
    with pytest.raises(TypeError, match="Gather indices must be integers"):
        Gather((5,), np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="does not match input_shape"):
        Gather((5, 4), np.ones((4, 5), bool))
    with pytest.raises(ValueError, match="got 3 index arrays for a 2-d input"):
        Gather((5, 4), (np.array([0]), np.array([0]), np.array([0])))


# ---------------------------------------------------------------------------------- Mask
@pytest.mark.parametrize("dtype, rtol", DTYPES)
@pytest.mark.parametrize(
    "mask_shape, in_shape",
    [
        ((4, 5), None),
        ((5,), (4, 5)),  # mask broadcast over the input
        ((4, 1), (4, 5)),
        ((2, 4, 5), (4, 5)),  # mask broadcasts the input: the adjoint sums over axis 0
        ((2, 1, 5), (1, 4, 5)),
    ],
)
def test_mask(dtype, rtol, mask_shape, in_shape):
    rng = np.random.default_rng(6)
    m = rng.random(mask_shape) < 0.5
    shape = mask_shape if in_shape is None else in_shape
    x = randn(rng, shape, dtype)
    want = m * x
    y = randn(rng, want.shape, dtype)
    want_adj = (m * y).astype(np.complex128)
    lead = want_adj.ndim - len(shape)
    want_adj = want_adj.sum(axis=tuple(range(lead)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and want_adj.shape[i] != 1)
    want_adj = want_adj.sum(axis=axes, keepdims=True)
    with x64(dtype):
        op = Mask(m, in_shape, input_dtype=dtype)
        assert op.input_shape == shape and op.output_shape == want.shape
        fx, hy = apply_both(op, x, y)
    np.testing.assert_array_equal(fx, want)
    assert_close(hy, want_adj if np.iscomplexobj(x) else want_adj.real, rtol)


def test_mask_from_zeros_and_ones():
    x = np.arange(1.0, 5.0, dtype=np.float32)
    op = Mask(np.array([1.0, 0.0, 1.0, 0.0]))
    np.testing.assert_array_equal(op(x), [1, 0, 3, 0])
    np.testing.assert_array_equal(op.H(x), [1, 0, 3, 0])
    np.testing.assert_array_equal(op.gram(x), [1, 0, 3, 0])


def test_mask_errors():
    with pytest.raises(ValueError, match=r"Mask of shape \(3,\) does not broadcast"):
        Mask(np.ones(3, bool), (4, 5))

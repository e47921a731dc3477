"""Small helpers shared by the test modules."""

import jax
import numpy as np


def x64(dtype):
    """``jax.enable_x64`` on exactly when ``dtype`` is a 64-bit (float64/complex128) dtype."""
    return jax.enable_x64(np.finfo(dtype).dtype == np.float64)


def complex_of(real):
    """The complex dtype of the precision of the real dtype ``real``."""
    return np.result_type(real, np.complex64)


def randn(rng, shape, dtype=np.float64):
    """Standard normal samples of ``dtype`` (complex: independent real and imaginary parts,
    the real ones drawn first), a NumPy array."""
    x = rng.standard_normal(shape)
    if np.issubdtype(dtype, np.complexfloating):
        x = x + 1j * rng.standard_normal(shape)
    return x.astype(dtype)


def fd_grad(f, x, h=1e-6, *, batched=False):
    """Central differences of a real scalar function ``f`` at ``x``, an array or a pytree of
    arrays: ``(f(x + h e) - f(x - h e)) / (2 h)`` for every entry ``e``, and for a complex
    entry ``a + ib`` both slopes as ``df/da + i df/db`` (the conjugate of ``jax.grad``).

    ``batched``: ``f`` takes a stack of points (along a new leading axis; ``x`` an array) and
    returns their values, so that one call (a jitted ``vmap``) evaluates them all.
    """
    leaves, treedef = jax.tree_util.tree_flatten(x)
    leaves = [np.asarray(leaf) for leaf in leaves]
    grads = []
    for i, leaf in enumerate(leaves):
        directions = (1.0, 1j) if np.iscomplexobj(leaf) else (1.0,)
        eye = np.eye(leaf.size).reshape((leaf.size, *leaf.shape))
        steps = np.concatenate([h * d * eye for d in directions])
        points = np.concatenate([leaf + steps, leaf - steps])
        if batched:
            assert len(leaves) == 1, "batched: x is one array"
            values = np.asarray(f(points))
        else:
            tree = [treedef.unflatten([*leaves[:i], p, *leaves[i + 1 :]]) for p in points]
            values = np.array([float(f(t)) for t in tree])
        slopes = (values[: len(steps)] - values[len(steps) :]) / (2 * h)
        parts = np.split(slopes, len(directions))
        grads.append(sum(d * p for d, p in zip(directions, parts, strict=True)).reshape(leaf.shape))
    return treedef.unflatten(grads)


def assert_close(got, want, rtol):
    """Equal shapes and values within ``rtol`` (absolute floor: ``rtol`` times the max)."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * np.abs(want).max())

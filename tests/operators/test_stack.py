"""Stack and BlockDiagonal against the members applied one by one."""

import jax.numpy as jnp
import numpy as np
import pytest

import calcil as cc

O = cc.operators


def test_stack_and_block_diagonal_apply_their_members():
    rng = np.random.default_rng(0)
    psf = jnp.asarray(rng.uniform(size=(3, 3)), jnp.float32)
    members = [O.Shift((5, 6), [0.5, 1.0]), O.Convolve(psf, (5, 6)), O.Identity((5, 6))]
    x = jnp.asarray(rng.standard_normal((5, 6)), jnp.float32)
    stacked = O.Stack(members)(x)
    assert stacked.shape == (3, 5, 6)
    for i, op in enumerate(members):
        np.testing.assert_allclose(stacked[i], op(x), atol=1e-6)
    y = jnp.asarray(rng.standard_normal((3, 5, 6)), jnp.float32)
    want = sum(op.H(y[i]) for i, op in enumerate(members))
    np.testing.assert_allclose(O.Stack(members).H(y), want, atol=1e-5)
    blocks = O.BlockDiagonal(members)
    np.testing.assert_allclose(
        blocks(y), jnp.stack([op(y[i]) for i, op in enumerate(members)]), atol=1e-6
    )


def test_members_must_agree():
    with pytest.raises(ValueError, match=r"member 1 is Crop"):
        O.Stack([O.Identity((4,)), O.Crop((4,), (2,))])
    with pytest.raises(ValueError, match="at least one operator"):
        O.BlockDiagonal([])
    with pytest.raises(TypeError, match="member 0 is Intensity"):
        O.Stack([O.Intensity()])

"""Small array helpers shared by the operators and the priors."""

import jax.numpy as jnp


def pad_axis(x, axis: int, width: tuple[int, int]):
    """``x`` zero-padded by ``width = (before, after)`` along ``axis`` only."""
    widths = [(0, 0)] * x.ndim
    widths[axis] = width
    return jnp.pad(x, widths)

"""Prior benchmarks: the TV prox (FGP) against the same algorithm written by hand in JAX.

Group ``tv-prox-<iterations>it-<n>``: isotropic TV prox of an ``n x n`` float32 image with
``step = 0.1`` and a fixed number of FGP iterations. ``impl="calcil"`` jits
``TV().prox(x, step, iterations)``; ``impl="jax"`` jits a hand-written FGP (Beck-Teboulle)
with Neumann forward differences. Outputs are checked to agree before timing. A published
reference point: SCICO's TV prox takes 26 ms at 1024^2.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import calcil as cc

STEP = 0.1
SIZES = (256, 1024)
ITERATIONS = 50


def _grad(x):
    """Neumann forward differences stacked on a leading axis."""
    dy = jnp.concatenate([x[1:] - x[:-1], jnp.zeros_like(x[:1])], axis=0)
    dx = jnp.concatenate([x[:, 1:] - x[:, :-1], jnp.zeros_like(x[:, :1])], axis=1)
    return jnp.stack([dy, dx])


def _grad_adjoint(p):
    """``D^T p``: minus the divergence with the matching boundary."""
    py, px = p[0][:-1], p[1][:, :-1]
    out_y = jnp.pad(py, ((1, 0), (0, 0))) - jnp.pad(py, ((0, 1), (0, 0)))
    out_x = jnp.pad(px, ((0, 0), (1, 0))) - jnp.pad(px, ((0, 0), (0, 1)))
    return out_y + out_x


def _fgp_by_hand(x, step, iterations):
    def body(_, state):
        p_old, r, t = state
        p = r + _grad(x - step * _grad_adjoint(r)) / (8.0 * step)
        # p[0]^2 + p[1]^2, not jnp.sum(p * p, axis=0): XLA:CPU in jaxlib 0.10.2 compiles the
        # stacked-axis sum into a library fusion about 8x slower (benchmarks/README.md).
        p = p / jnp.maximum(1, jnp.sqrt(p[0] * p[0] + p[1] * p[1]))
        t_new = (1 + jnp.sqrt(1 + 4 * t * t)) / 2
        return p, p + ((t - 1) / t_new) * (p - p_old), t_new

    p0 = jnp.zeros((2, *x.shape), x.dtype)
    p, _, _ = jax.lax.fori_loop(0, iterations, body, (p0, p0, jnp.ones((), x.dtype)))
    return x - step * _grad_adjoint(p)


@jax.jit
def _calcil_prox(prior, x):
    return prior.prox(x, STEP, iterations=ITERATIONS)


@jax.jit
def _jax_prox(x):
    return _fgp_by_hand(x, STEP, ITERATIONS)


@pytest.mark.parametrize("impl", ["calcil", "jax"])
@pytest.mark.parametrize("n", SIZES)
def test_tv_prox(run_jitted, inputs, n, impl):
    x = inputs.real_image(n)
    prior = cc.priors.TV()
    want = np.asarray(_jax_prox(x))
    got = np.asarray(_calcil_prox(prior, x))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    fn, args = (_calcil_prox, (prior, x)) if impl == "calcil" else (_jax_prox, (x,))
    run_jitted(
        fn,
        args,
        group=f"tv-prox-{ITERATIONS}it-{n}",
        impl=impl,
        size=n,
        rounds=40 if n <= 256 else 8,
        iterations=ITERATIONS,
    )

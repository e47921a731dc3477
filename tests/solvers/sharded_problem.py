"""A small structured-illumination deconvolution shared by the multi-device tests.

``M`` measurements ``y_m = A(p_m * x) + noise`` with known illumination patterns ``p_m`` and a
circular blur ``A``; the forward model maps one batch of patterns to its images, so it works
on any block of measurements (what each device sees in a sharded run).
"""

import jax
import jax.numpy as jnp
import numpy as np

import calcil as cc

N, M = 32, 8


def problem(reduction="sum", prior="tv"):
    """``(objective, init, data)``; ``data = {"y": (M, N, N), "pattern": (M, N, N)}``."""
    rng = np.random.default_rng(0)
    r = np.arange(7) - 3
    psf = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / 4.0)
    A = cc.operators.Convolve(jnp.asarray(psf / psf.sum(), jnp.float32), (N, N))
    x_true = jnp.asarray(rng.random((N, N)), jnp.float32)
    patterns = jnp.asarray(rng.random((M, N, N)), jnp.float32)
    noise = jnp.asarray(0.01 * rng.standard_normal((M, N, N)), jnp.float32)
    y = jax.vmap(lambda p: A(p * x_true))(patterns) + noise

    def forward(params, batch):
        return jax.vmap(lambda p: A(p * params["x"]))(batch["pattern"])

    priors = {
        "tv": {"x": 1e-3 * cc.priors.TV(eps=1e-3)},
        "l1": {"x": 1e-3 * cc.priors.L1()},
        "l2": {"x": 1e-2 * cc.priors.L2()},
    }[prior]
    objective = cc.Objective(forward, cc.losses.L2("y", reduction=reduction), priors=priors)
    init = {"x": jnp.zeros((N, N), jnp.float32)}
    return objective, init, {"y": np.asarray(y), "pattern": np.asarray(patterns)}

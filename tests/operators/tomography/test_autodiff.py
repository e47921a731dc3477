"""How the projections differentiate: gradients use the hand-written back-projector (never a
scatter-add for the parallel beam), forward mode and forward-over-reverse work (CG's Hessian
products), vmap batches images and geometries, and memory does not grow with the angles."""

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import pytest

import calcil as cc
from tests.operators.tomography import analytic

O = cc.operators


def _fan(shape, angles):
    return O.FanBeamProjection(shape, angles, 40.0, 20.0, 40, 1.2)


BUILDERS = {"parallel": lambda shape, a: O.ParallelProjection(shape, a), "fan": _fan}


def _ops(jaxpr):
    return {str(eqn.primitive) for eqn in jaxpr.eqns} | {
        name
        for eqn in jaxpr.eqns
        for sub in jax.extend.core.jaxprs_in_params(eqn.params)
        for name in _ops(sub)
    }


def test_the_gradient_back_projects_and_the_parallel_adjoint_is_a_gather():
    op = O.ParallelProjection((16, 16), np.linspace(0, 3, 7))
    y = jnp.ones(op.output_shape)
    grad = jax.make_jaxpr(jax.grad(lambda x: 0.5 * jnp.sum((op(x) - y) ** 2)))(jnp.zeros((16, 16)))
    assert "calcil_back_project" in _ops(grad.jaxpr)
    hlo = jax.jit(op.H).lower(y).compile().as_text()
    assert "scatter" not in hlo


@pytest.mark.parametrize("kind", list(BUILDERS))
def test_forward_mode_and_hessian_vector_products(kind):
    """``jvp`` of the projection is the projection; the Hessian of ``0.5 ||P x - y||^2``
    applied to ``v`` (forward over reverse, as in CG) is ``P^T P v``."""
    op = BUILDERS[kind]((12, 14), np.array([0.2, 1.1, 2.5, 3.3]))
    rng = np.random.default_rng(0)
    x, v = (jnp.asarray(rng.standard_normal((12, 14)), jnp.float32) for _ in range(2))
    y = jnp.asarray(rng.standard_normal(op.output_shape), jnp.float32)
    _, tangent = jax.jvp(op, (x,), (v,))
    np.testing.assert_allclose(tangent, op(v), rtol=1e-5, atol=1e-5)
    gradient = jax.grad(lambda z: 0.5 * jnp.sum((op(z) - y) ** 2))
    _, hvp = jax.linearize(gradient, x)
    np.testing.assert_allclose(hvp(v), op.H(op(v)), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kind", list(BUILDERS))
def test_vmap_over_images_and_over_geometries(kind):
    rng = np.random.default_rng(1)
    images = jnp.asarray(rng.standard_normal((3, 10, 12)), jnp.float32)
    angles = jnp.asarray(rng.uniform(0, 3, (3, 5)), jnp.float32)
    build = BUILDERS[kind]
    fixed = build((10, 12), angles[0])
    np.testing.assert_allclose(
        jax.vmap(fixed)(images), jnp.stack([fixed(im) for im in images]), rtol=1e-5, atol=1e-5
    )
    per_geometry = jax.vmap(lambda im, a: build((10, 12), a)(im))(images, angles)
    want = jnp.stack([build((10, 12), a)(im) for im, a in zip(images, angles, strict=True)])
    np.testing.assert_allclose(per_geometry, want, rtol=1e-5, atol=1e-5)
    sinograms = jnp.stack([fixed(im) for im in images])
    np.testing.assert_allclose(
        jax.vmap(fixed.H)(sinograms), jnp.stack([fixed.H(s) for s in sinograms]), atol=1e-4
    )

    def energy(a, im):
        return jnp.sum(build((10, 12), a)(im) ** 2)

    grads = jax.vmap(jax.grad(energy))(angles, images)
    want = jnp.stack([jax.grad(energy)(a, im) for a, im in zip(angles, images, strict=True)])
    np.testing.assert_allclose(grads, want, rtol=1e-4, atol=1e-3)


def _temp_bytes(fn, *args):
    return jax.jit(fn).lower(*args).compile().memory_analysis().temp_size_in_bytes


def _chunked(kind, shape, angles):
    if kind == "parallel":
        return O.ParallelProjection(shape, angles, angle_chunk=4)
    return O.FanBeamProjection(shape, angles, 40.0, 20.0, 40, 1.2, angle_chunk=4)


def footprint(kind, n_angles, shape=(48, 48)):
    """Temporary bytes of the forward, the adjoint and the gradient with respect to the image
    and the angles, and the sinogram's bytes, for ``n_angles`` angles."""
    image = jnp.asarray(analytic.blob(shape, 1.0, (2.0, 1.0), 5.0), jnp.float32)
    angles = jnp.linspace(0, 3, n_angles)
    op = _chunked(kind, shape, angles)
    y = jnp.zeros(op.output_shape)

    def loss(x, a):
        return 0.5 * jnp.sum((_chunked(kind, shape, a)(x) - y) ** 2)

    sizes = [
        _temp_bytes(op, image),
        _temp_bytes(op.H, y),
        _temp_bytes(jax.grad(loss, argnums=(0, 1)), image, angles),
    ]
    return sizes, 4 * int(np.prod(op.output_shape))


@pytest.mark.parametrize("kind", list(BUILDERS))
def test_memory_does_not_grow_with_the_number_of_angles(kind):
    """Forward, adjoint, and the gradient with respect to the image and the angles keep one
    chunk of samples in memory (``angle_chunk=4``): 8 times more angles cost no more
    temporary memory than a few copies of the larger sinogram (the samples of all angles
    would be 48 times the sinogram)."""
    small, small_sino = footprint(kind, 16)
    large, large_sino = footprint(kind, 128)
    for s, big in zip(small, large, strict=True):
        assert big <= s + 4 * (large_sino - small_sino) + 2**16, (small, large)

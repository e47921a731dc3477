"""Structured Gram operators and unitary factorizations ``A = U B``.

References: ``A.H(A(x))`` for the Gram; for the factorizations ``A(x)`` itself, ``U^H U = I``
and ``||A x - y|| = ||B x - U^H y||`` computed directly, on random real and complex inputs in
float32 and float64.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import calcil as cc
from calcil.operators import Identity
from calcil.operators.base import LinearComposition
from tests.helpers import randn

O = cc.operators
RTOL = {jnp.float32: 2e-6, jnp.float64: 1e-13}


def count_primitive(jaxpr, name: str) -> int:
    """How often primitive ``name`` runs in ``jaxpr``, counting inside nested jaxprs."""
    jaxpr = getattr(jaxpr, "jaxpr", jaxpr)
    n = 0
    for eqn in jaxpr.eqns:
        n += eqn.primitive.name == name
        for param in eqn.params.values():
            for sub in param if isinstance(param, tuple | list) else (param,):
                if hasattr(sub, "eqns") or hasattr(getattr(sub, "jaxpr", None), "eqns"):
                    n += count_primitive(sub, name)
    return n


def _psf(rng, shape, dtype):
    return jnp.asarray(rng.random(shape), dtype)


def _cases(real, cplx):
    """(name, operator) pairs with a unitary factorization: ``real``/``cplx`` are dtypes."""
    rng = np.random.default_rng(0)
    k = _psf(rng, (5, 5), real)
    d = _psf(rng, (16, 16), real)
    return [
        ("convolve-real-even", O.Convolve(k, (16, 16))),
        ("convolve-real-odd", O.Convolve(k, (15, 17))),
        ("convolve-complex-input", O.Convolve(k, (16, 15), input_dtype=cplx)),
        ("convolve-complex-kernel", O.Convolve(k * (1 - 0.5j), (12, 16))),
        ("convolve-batched", O.Convolve(k, (3, 16, 16), axes=(1, 2))),
        ("convolve-3d", O.Convolve(_psf(rng, (3, 3, 3), real), (6, 8, 10))),
        ("fft-ortho", O.FFT((8, 6), input_dtype=cplx)),
        ("fft-backward", O.FFT((8, 6), norm="backward", input_dtype=cplx)),
        ("fft-forward-centered", O.FFT((8, 6), norm="forward", centered=True, input_dtype=cplx)),
        ("ifft", O.FFT((8, 6), centered=True, input_dtype=cplx).H),
        (
            "fft@convolve",
            O.FFT((16, 16), input_dtype=cplx) @ O.Convolve(k, (16, 16), input_dtype=cplx),
        ),
        ("convolve@diagonal", O.Convolve(k, (16, 16)) @ O.Diagonal(d)),
        ("scaled-convolve", 2.5 * O.Convolve(k, (16, 16))),
        ("complex-scaled-fft", (1 - 2j) * O.FFT((8, 6), input_dtype=cplx)),
        ("angular-spectrum", O.AngularSpectrum((16, 16), 1.0, 0.5, 5.0, input_dtype=cplx)),
        (
            "angular-spectrum-z-stack",
            O.AngularSpectrum((16, 16), 1.0, 0.5, jnp.array([2.0, 5.0]), input_dtype=cplx),
        ),
        ("fresnel", O.Fresnel((16, 16), 1.0, 0.5, 5.0, input_dtype=cplx)),
        ("pupil", O.Pupil((16, 16), 0.5, 0.5, 0.4, zernike=[0, 0, 0, 0.3], input_dtype=cplx)),
        ("fraunhofer", O.Fraunhofer((16, 16), 1.0, 0.5, 1e4, phase=True, input_dtype=cplx)),
        ("phase-screen", O.Diagonal(jnp.exp(1j * d).astype(cplx))),
        (
            "phase-screen@pupil",
            O.Diagonal(jnp.exp(1j * d).astype(cplx)) @ O.Pupil((16, 16), 0.5, 0.5, 0.4),
        ),
    ]


DTYPES = [(jnp.float32, jnp.complex64), (jnp.float64, jnp.complex128)]


@pytest.mark.parametrize(("real", "cplx"), DTYPES, ids=["f32", "f64"])
def test_unitary_factorization_preserves_the_least_squares_residual(real, cplx):
    with jax.enable_x64(real == jnp.float64):
        rng = np.random.default_rng(1)
        for name, A in _cases(real, cplx):
            assert A.unitary_factorization() is not None, name
            cc.testing.check_unitary_factorization(A, rtol=10 * RTOL[real])
            for dtype in cc.testing.input_dtypes(A):
                U, B = A.unitary_factorization(dtype)
                x = randn(rng, A.input_shape, dtype)
                y = randn(rng, A.output_shape, A.result_dtype(dtype))
                # The gradient of 0.5||B x - U^H y||^2 is A^H (A x - y).
                uy = U.H(y)
                grad = jax.grad(lambda x, B=B, uy=uy: 0.5 * jnp.sum(jnp.abs(B(x) - uy) ** 2))(x)
                np.testing.assert_allclose(
                    jnp.conj(grad), A.H(A(x) - y), rtol=50 * RTOL[real], atol=50 * RTOL[real] * 30
                )


def test_no_factorization_where_it_would_not_be_exact_or_save_work():
    k = jnp.ones((3, 3)) / 9
    conv = O.Convolve(k, (16, 16))
    # A real input makes the unitary FFT an isometry onto a subspace: ||F x - y|| keeps a
    # part of y outside it, so no A = U B with U unitary on the output space and B cheaper.
    assert O.FFT((8,), input_dtype=jnp.float32).unitary_factorization() is None
    assert O.Convolve(k, (16, 16), mode="same").unitary_factorization() is None
    assert O.Diagonal(jnp.full(4, 2.0)).unitary_factorization() is None  # not unit modulus
    assert O.Diagonal(jnp.ones((3, 4)), (4,)).unitary_factorization() is None  # broadcasts
    assert O.Mask(jnp.arange(4) > 1).unitary_factorization() is None  # drops samples
    assert (O.Crop((16, 16), (8, 8)) @ conv).unitary_factorization() is None
    assert (O.Mask(jnp.ones((16, 16)) > 0) @ conv).unitary_factorization() is None
    padded = O.AngularSpectrum((16, 16), 1.0, 0.5, 5.0, pad_factor=2)  # the crop is not unitary
    assert padded.unitary_factorization() is None
    assert (conv + conv).unitary_factorization() is None


@pytest.mark.parametrize(("real", "cplx"), DTYPES, ids=["f32", "f64"])
def test_structured_grams_equal_the_adjoint_times_the_operator(real, cplx):
    with jax.enable_x64(real == jnp.float64):
        rng = np.random.default_rng(2)
        k = _psf(rng, (5, 5), real)
        w = randn(rng, (3, 8, 8), cplx)
        cases = {
            "convolve": (O.Convolve(k, (16, 16)), O.Convolve),
            "diagonal": (O.Diagonal(randn(rng, (8, 8), cplx)), O.Diagonal),
            "diagonal-broadcast": (O.Diagonal(w, (8, 8), input_dtype=real), O.Diagonal),
            "fft-ortho": (O.FFT((8, 8)), Identity),
            "fft-backward": (O.FFT((8, 8), norm="backward"), None),
            "mask": (O.Mask(_psf(rng, (8, 8), real) > 0.5), O.Mask),
            "fft@convolve": (
                O.FFT((16, 16), input_dtype=cplx) @ O.Convolve(k, (16, 16), input_dtype=cplx),
                O.Convolve,
            ),
            "convolve@diagonal": (
                O.Convolve(k, (16, 16)) @ O.Diagonal(_psf(rng, (16, 16), real)),
                LinearComposition,
            ),
            "scaled": (3.0 * O.Convolve(k, (16, 16)), None),
            "differences-periodic": (O.FiniteDifference((6, 7)), O.DifferenceGram),
            "differences-neumann-complex": (
                O.FiniteDifference((4, 5, 6), axes=(0, 2), boundary="neumann", input_dtype=cplx),
                O.DifferenceGram,
            ),
        }
        for name, (A, kind) in cases.items():
            g = A.gram
            if kind is not None:
                assert isinstance(g, kind), (name, g)
            x = randn(rng, A.input_shape, A.input_dtype)
            ref = A.H(A(x))
            np.testing.assert_allclose(g(x), ref, rtol=10 * RTOL[real], atol=10 * RTOL[real])
            cc.testing.check_adjoint(g)


def test_composed_gram_costs_one_fft_pair():
    """Gram(Convolve @ Diagonal) = D^H |K|^2-convolve D: two FFTs, where A^H A has four."""
    k = jnp.ones((5, 5)) / 25
    A = O.Convolve(k, (32, 32)) @ O.Diagonal(jnp.linspace(1, 2, 32 * 32).reshape(32, 32))
    assert isinstance(A.gram, LinearComposition)

    def ffts(fn):
        return count_primitive(jax.make_jaxpr(fn)(jnp.ones((32, 32))), "fft")

    assert ffts(A.gram) == 2
    assert ffts(lambda x: A.H(A(x))) == 4

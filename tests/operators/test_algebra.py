"""Operator algebra: composition, sums, scaling, adjoints, gram, norm, linearize, pytrees."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import calcil as cc
from calcil import operators as O
from tests.helpers import randn

KEY = jax.random.key(0)


def _rand(shape, dtype=jnp.float32, seed=0):
    return jnp.asarray(randn(np.random.default_rng(seed), shape, dtype))


def _matrix_operator(m):
    """A dense matrix as an operator, so results can be checked with numpy.linalg."""
    m = jnp.asarray(m)
    return O.from_function(lambda x: m @ x, (m.shape[1],), m.dtype, linear=True)


# ---------------------------------------------------------------------- algebra identities
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.complex64])
def test_composition_adjoint_reverses_order(dtype):
    A = O.Convolve(_rand((3, 3), dtype, 1), (8, 8), mode="same")
    B = O.Pad((6, 6), 1, input_dtype=A.input_dtype)
    y = _rand((8, 8), A.output_dtype, 2)
    np.testing.assert_allclose((A @ B).H(y), B.H(A.H(y)), rtol=1e-5, atol=1e-6)


def test_composition_matches_matrix_product():
    m1, m2 = _rand((4, 5), seed=1), _rand((5, 3), seed=2)
    A, B = _matrix_operator(m1), _matrix_operator(m2)
    x = _rand((3,), seed=3)
    np.testing.assert_allclose(
        (A @ B)(x), np.asarray(m1) @ np.asarray(m2) @ np.asarray(x), rtol=1e-5
    )
    np.testing.assert_allclose(
        (A @ B).H(_rand((4,), seed=4)), (m1 @ m2).T @ _rand((4,), seed=4), rtol=1e-5
    )


def test_adjoint_of_adjoint_is_the_operator():
    A = O.FFT((4, 4))
    assert A.H.H is A
    x = _rand((4, 4), jnp.complex64)
    np.testing.assert_allclose(A.H.H(x), A(x), rtol=1e-6)


def test_complex_adjoint_conjugates():
    """A complex matrix's adjoint is its conjugate transpose, not its transpose."""
    m = _rand((3, 4), jnp.complex64, 5)
    y = _rand((3,), jnp.complex64, 6)
    np.testing.assert_allclose(
        _matrix_operator(m).H(y), np.conj(np.asarray(m)).T @ np.asarray(y), rtol=1e-5
    )


@pytest.mark.parametrize("scalar", [2.5, -1.0, 0.5 - 2j])
def test_sum_difference_and_scaling(scalar):
    m1, m2 = _rand((4, 3), jnp.complex64, 1), _rand((4, 3), jnp.complex64, 2)
    A, B = _matrix_operator(m1), _matrix_operator(m2)
    x, y = _rand((3,), jnp.complex64, 3), _rand((4,), jnp.complex64, 4)
    want = scalar * np.asarray(m1) - np.asarray(m2)
    op = scalar * A - B
    assert op.linear
    np.testing.assert_allclose(op(x), want @ np.asarray(x), rtol=1e-5)
    np.testing.assert_allclose(op.H(y), np.conj(want).T @ np.asarray(y), rtol=1e-5)
    np.testing.assert_allclose((-A)(x), -np.asarray(m1) @ np.asarray(x), rtol=1e-6)
    np.testing.assert_allclose((A / 2)(x), np.asarray(m1) @ np.asarray(x) / 2, rtol=1e-6)
    np.testing.assert_allclose(
        (A + B)(x), (np.asarray(m1) + np.asarray(m2)) @ np.asarray(x), rtol=1e-5
    )


def test_complex_scalar_on_real_operator_has_right_adjoint():
    A = (1 - 2j) * O.Bin((6,), 2, input_dtype=jnp.float32)
    assert A.output_dtype == jnp.complex64 and A.input_dtype == jnp.float32
    cc.testing.check_adjoint(A)


def test_matmul_applies_to_arrays():
    A = O.Diagonal(jnp.array([1.0, 2.0]))
    np.testing.assert_array_equal(A @ jnp.array([3.0, 4.0]), [3.0, 8.0])


def test_gram_is_adjoint_times_forward():
    A = O.Convolve(_rand((5, 5), seed=1), (12, 12), mode="valid")
    x = _rand((12, 12), seed=2)
    np.testing.assert_allclose(A.gram(x), A.H(A(x)), rtol=1e-5, atol=1e-5)
    assert A.gram.input_shape == A.gram.output_shape == (12, 12)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.complex64])
def test_circular_convolution_gram_is_a_convolution_with_power_spectrum(dtype):
    A = O.Convolve(_rand((3, 4), dtype, 1), (2, 10, 12))
    G = A.gram
    assert isinstance(G, O.Convolve)
    x = _rand((2, 10, 12), dtype, 2)
    np.testing.assert_allclose(G(x), A.H(A(x)), rtol=1e-5, atol=1e-5)


def test_unitary_fft_gram_is_identity():
    G = O.FFT((8, 8)).gram
    assert isinstance(G, O.Identity)


# ---------------------------------------------------------------------- norm
def test_norm_of_unitary_fft_is_one():
    assert float(O.FFT((16, 16)).norm(KEY)) == pytest.approx(1.0, rel=1e-5)


def test_norm_of_diagonal_is_max_weight():
    w = _rand((10, 10), jnp.complex64, 7)
    assert float(O.Diagonal(w).norm(KEY, iterations=300)) == pytest.approx(
        np.abs(w).max(), rel=1e-3
    )


def test_norm_of_circular_convolution_is_max_of_spectrum():
    kernel = jnp.abs(_rand((5, 5), seed=8))
    A = O.Convolve(kernel, (32, 32))
    padded = np.zeros((32, 32))
    padded[:5, :5] = kernel
    want = np.abs(np.fft.fft2(padded)).max()
    assert float(A.norm(KEY)) == pytest.approx(want, rel=1e-4)


def test_norm_of_matrix_is_largest_singular_value():
    m = _rand((20, 12), seed=9)
    want = np.linalg.svd(np.asarray(m), compute_uv=False)[0]
    assert float(_matrix_operator(m).norm(KEY, iterations=500)) == pytest.approx(want, rel=1e-3)


# ---------------------------------------------------------------------- nonlinear operators
def test_linearize_intensity_is_two_re_conj_u_v():
    u = _rand((6,), jnp.complex64, 1)
    v = _rand((6,), jnp.complex64, 2)
    J = O.Intensity((6,), jnp.complex64).linearize(u)
    assert J.linear and J.input_dtype == jnp.complex64 and J.output_dtype == jnp.float32
    np.testing.assert_allclose(J(v), 2 * np.real(np.conj(u) * v), rtol=1e-5)
    # adjoint of v -> 2 Re(conj(u) v) under Re<.,.> is w -> 2 u w
    w = _rand((6,), seed=3)
    np.testing.assert_allclose(J.H(w), 2 * np.asarray(u) * np.asarray(w), rtol=1e-5)


def test_shape_polymorphic_intensity_takes_shapes_from_composition():
    op = O.Intensity() @ O.FFT((4, 6))
    assert op.input_shape == (4, 6) and op.output_shape == (4, 6)
    assert op.output_dtype == jnp.float32
    x = _rand((4, 6), jnp.complex64)
    np.testing.assert_allclose(
        op(x), np.abs(np.fft.fft2(np.asarray(x), norm="ortho")) ** 2, rtol=1e-4
    )


def test_from_function_with_custom_adjoint():
    A = O.from_function(lambda x: 3 * x, (4,), adjoint=lambda y: 3 * y)
    assert A.linear and A.has_custom_adjoint
    cc.testing.check_operator(A)
    np.testing.assert_allclose(A.H(jnp.ones(4)), 3 * np.ones(4))


def test_from_function_nonlinear():
    N = O.from_function(jnp.tanh, (3,))
    assert not N.linear
    np.testing.assert_allclose(N(jnp.array([0.0, 1.0, -2.0])), np.tanh([0.0, 1.0, -2.0]), rtol=1e-6)


# ---------------------------------------------------------------------- subclassing
class Scale2(O.LinearOperator):
    """The subclass pattern from the base module's docstring."""

    weight: jax.Array

    def __init__(self, weight, input_shape):
        self.weight = jnp.asarray(weight)
        super().__init__(input_shape, self.weight.dtype)

    def forward(self, x):
        return 2 * self.weight * x

    def adjoint(self, y):
        return 2 * jnp.conj(self.weight) * y


class BrokenAdjoint(Scale2):
    def adjoint(self, y):
        return 2 * self.weight * y  # forgets the conjugate


def test_user_subclass_passes_the_checks():
    op = Scale2(_rand((5,), jnp.complex64), (5,))
    assert op.has_custom_adjoint
    cc.testing.check_operator(op)


def test_check_adjoint_catches_a_missing_conjugate():
    with pytest.raises(AssertionError, match="adjoint test failed"):
        cc.testing.check_adjoint(BrokenAdjoint(_rand((50,), jnp.complex64), (50,)))


def test_check_operator_catches_hand_written_adjoint_mismatch():
    class WrongScale(Scale2):
        def adjoint(self, y):
            return 3 * jnp.conj(self.weight) * y

    with pytest.raises(AssertionError):
        cc.testing.check_operator(WrongScale(_rand((8,)), (8,)))


def test_autodiff_adjoint_uses_conjugate_transpose_for_fft():
    """Without a hand-written adjoint, the derived adjoint of fft is the inverse (ortho)."""
    A = O.from_function(lambda x: jnp.fft.fft(x, norm="ortho"), (8,), jnp.complex64, linear=True)
    y = _rand((8,), jnp.complex64, 3)
    np.testing.assert_allclose(
        A.H(y), np.fft.ifft(np.asarray(y), norm="ortho"), rtol=1e-5, atol=1e-6
    )


# ---------------------------------------------------------------------- pytrees and transforms
def test_operator_is_a_pytree_with_array_leaves_and_static_metadata():
    psf = _rand((3, 3))
    A = O.Convolve(psf, (8, 8), mode="same")
    leaves = jax.tree_util.tree_leaves(A)
    assert len(leaves) == 1 and leaves[0].shape == A.spectrum.shape
    B = O.Convolve(2 * psf, (8, 8), mode="same")
    assert jax.tree_util.tree_structure(A) == jax.tree_util.tree_structure(B)
    C = O.Convolve(psf, (8, 8), mode="full")
    assert jax.tree_util.tree_structure(A) != jax.tree_util.tree_structure(C)


def test_operator_built_from_traced_kernel_is_differentiable():
    """Blind deconvolution: gradient with respect to the PSF through Convolve."""
    x, y = _rand((10, 10), seed=1), _rand((10, 10), seed=2)

    def loss(psf):
        return 0.5 * jnp.sum((O.Convolve(psf, (10, 10))(x) - y) ** 2)

    psf = _rand((3, 3), seed=3)
    grad = jax.jit(jax.grad(loss))(psf)
    eps = 1e-2
    for idx in [(0, 0), (1, 2)]:
        e = jnp.zeros((3, 3)).at[idx].set(eps)
        fd = (loss(psf + e) - loss(psf - e)) / (2 * eps)
        assert float(grad[idx]) == pytest.approx(float(fd), rel=1e-2)


def test_vmap_over_operators_built_from_batched_weights():
    ws = _rand((4, 6), seed=1)
    x = _rand((6,), seed=2)
    out = jax.vmap(lambda w: O.Diagonal(w)(x))(ws)
    np.testing.assert_allclose(out, np.asarray(ws) * np.asarray(x), rtol=1e-6)


def test_jit_reuses_compilation_for_operators_with_new_leaves():
    traces = []

    @jax.jit
    def apply(op, x):
        traces.append(1)
        return op(x)

    x = _rand((8, 8))
    apply(O.Convolve(_rand((3, 3), seed=1), (8, 8)), x)
    apply(O.Convolve(_rand((3, 3), seed=2), (8, 8)), x)
    assert len(traces) == 1


def test_gather_with_traced_indices():
    """Sampling positions may be traced (e.g. estimated or drawn inside jit)."""
    x = jnp.arange(6.0)
    out = jax.jit(lambda i: O.Gather((6,), i)(x))(jnp.array([5, 1, 1]))
    np.testing.assert_array_equal(out, [5.0, 1.0, 1.0])


def test_operators_are_immutable():
    A = O.Diagonal(jnp.ones(3))
    with pytest.raises(dataclasses.FrozenInstanceError, match="immutable"):
        A.weights = jnp.zeros(3)
    with pytest.raises(AttributeError, match="no field"):
        A.other = 1

"""Bad input gets a clear error: what was expected, what was given, how to fix it."""

import jax
import jax.numpy as jnp
import pytest

from calcil import operators as O


def test_composition_shape_mismatch_names_both_operators_and_shapes():
    A, B = O.Crop((8, 8), (4, 4)), O.Pad((5, 5), 1)
    with pytest.raises(ValueError) as info:
        A @ B
    msg = str(info.value)
    assert "Crop" in msg and "Pad" in msg
    assert "(8, 8)" in msg and "(7, 7)" in msg


def test_composition_dtype_mismatch_refuses_to_drop_imaginary_part():
    with pytest.raises(ValueError, match=r"produces complex64 but the left one takes float32"):
        O.Bin((4,), 2, input_dtype=jnp.float32) @ O.FFT((4,))


def test_sum_shape_mismatch():
    with pytest.raises(
        ValueError, match=r"cannot add .*Identity.*Identity.*\(3,\) -> \(3,\).*\(4,\)"
    ):
        O.Identity((3,)) + O.Identity((4,))


def test_sum_dtype_mismatch():
    with pytest.raises(ValueError, match="input dtypes float32 and complex64 differ"):
        O.Identity((3,), jnp.float32) + O.Identity((3,), jnp.complex64)


def test_wrong_input_shape_says_expected_and_given():
    with pytest.raises(ValueError, match=r"expects input of shape \(8, 8\), got \(4, 4\)"):
        O.Convolve(jnp.ones((3, 3)), (8, 8))(jnp.ones((4, 4)))


def test_wrong_adjoint_input_shape():
    with pytest.raises(ValueError, match=r"expects input of shape \(4,\), got \(8,\)"):
        O.Crop((8,), (4,)).H(jnp.ones(8))


def test_complex_input_into_real_operator_is_refused():
    with pytest.raises(ValueError, match="expects input of dtype float32, got complex64"):
        O.Identity((3,), jnp.float32)(jnp.ones(3, jnp.complex64))


def test_real_input_into_complex_operator_is_embedded():
    y = O.FFT((4,))(jnp.ones(4, jnp.float32))
    assert y.dtype == jnp.complex64


def test_complex_input_into_unpinned_operator_follows():
    y = O.Identity((3,))(jnp.ones(3, jnp.complex64))
    assert y.dtype == jnp.complex64


def test_double_input_into_single_precision_operator_is_refused():
    op = O.Identity((3,))
    with jax.enable_x64(True):
        with pytest.raises(ValueError, match="input_dtype=float64"):
            op(jnp.ones(3, jnp.float64))


def test_operator_times_operator_is_a_type_error():
    with pytest.raises(TypeError, match="use A @ B to compose"):
        O.Identity((3,)) * O.Identity((3,))


def test_operator_times_array_is_a_type_error():
    with pytest.raises(TypeError, match="Diagonal"):
        jnp.ones(3) * O.Identity((3,))


def test_array_matmul_operator_is_a_type_error():
    with pytest.raises(TypeError, match="operators act from the left"):
        O.Identity((3,)).__rmatmul__(jnp.ones(3))


def test_field_shadowing_a_method_is_refused():
    with pytest.raises(TypeError, match=r"\['norm'\]"):

        class Bad(O.LinearOperator):
            norm: float


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: O.FFT((4,), norm="unitary"), "norm must be one of"),
        (lambda: O.FFT((4,), axes=(1,)), r"axes=\(1,\) is out of range for a 1-d input"),
        (lambda: O.FFT((4, 4), axes=(0, 0)), "repeats an axis"),
        (lambda: O.Convolve(jnp.ones(3), (4,), mode="wrap"), "mode must be one of"),
        (lambda: O.Convolve(jnp.ones(5), (4,)), "kernel no larger than the input"),
        (lambda: O.Convolve(jnp.ones(5), (4,), mode="valid"), "at least as large as the kernel"),
        (lambda: O.Convolve(jnp.ones((3, 3, 3)), (4, 4)), "more dimensions than the input"),
        (lambda: O.Crop((4, 4), (5, 4)), "larger than input_shape"),
        (lambda: O.Crop((4, 4), (2, 2), start=(3, 0)), "does not fit"),
        (lambda: O.Pad((4,), -1), "non-negative"),
        (lambda: O.Pad((4, 4), ((1, 2, 3),)), "does not fit a 2-d input"),
        (lambda: O.Subsample((4,), 0), "must be positive"),
        (lambda: O.Subsample((4,), 2, offset=4), "outside the axes"),
        (lambda: O.Bin((5, 4), 2), r"must divide the binned axes \(5, 4\)"),
        (lambda: O.Bin((4,), 2, reduce="max"), "reduce must be 'sum' or 'mean'"),
        (lambda: O.Gather((4,), jnp.array([0, 4])), r"must lie in \[-4, 4\)"),
        (lambda: O.Gather((4,), jnp.array([0.5])), "must be integers"),
        (lambda: O.Diagonal(jnp.ones(3), input_shape=(4,)), "do not broadcast"),
        (lambda: O.Mask(jnp.ones(3, bool), input_shape=(4,)), "does not broadcast"),
        (lambda: O.FiniteDifference((4,), boundary="reflect"), "boundary must be one of"),
        (lambda: O.Identity((-1,)), "non-negative"),
        (lambda: O.Identity((2.5,)), r"input_shape must be an integer .* got 2\.5"),
        (lambda: O.Subsample((4,), 1.5), "Subsample factors must be an integer"),
        (lambda: O.Convolve(jnp.zeros((3, 3)), (4, 4)), "is all zeros"),
        (lambda: O.Convolve(jnp.ones((0, 3)), (4, 4)), r"shape \(0, 3\) is empty"),
        (lambda: O.Mask(jnp.array([0.0, 0.3])), r"0/1 mask.*use cc\.operators\.Diagonal"),
    ],
)
def test_constructor_errors(build, match):
    with pytest.raises((ValueError, TypeError), match=match):
        build()

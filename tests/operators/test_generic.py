"""Generic tests run on every operator factory in the registry, in every dtype.

Entries built without ``input_dtype`` (``-follows-`` in their names) follow the data: the
checks run on real and on complex inputs of their precision.
"""

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import calcil as cc
from calcil import operators as O
from calcil._internal.dtypes import complex_dtype_of, real_dtype_of
from tests.operators.registry import LINEAR, NONLINEAR, build, follows, x64_for

# The operators whose dtype follows the data when built without input_dtype.
FOLLOWING = {
    "Identity",
    "Diagonal",
    "Mask",
    "Convolve",
    "Crop",
    "Pad",
    "Subsample",
    "Bin",
    "Gather",
    "FiniteDifference",
}


@pytest.mark.parametrize("name", sorted(LINEAR))
def test_adjoint_dot_product(name):
    entry = LINEAR[name]
    with x64_for(entry):
        op = build(entry)
        error = cc.testing.check_adjoint(op, jax.random.key(3))
    assert error < cc.testing.default_rtol(op.input_dtype)
    assert op.follows_dtype == follows(entry)
    want = (entry[1], complex_dtype_of(entry[1])) if follows(entry) else (entry[1],)
    assert cc.testing.input_dtypes(op) == want


@pytest.mark.parametrize("name", sorted(LINEAR))
def test_linear_operator_contract(name):
    with x64_for(LINEAR[name]):
        cc.testing.check_operator(build(LINEAR[name]), jax.random.key(4))


@pytest.mark.parametrize("name", sorted(NONLINEAR))
def test_nonlinear_operator_contract(name):
    with x64_for(NONLINEAR[name]):
        cc.testing.check_operator(build(NONLINEAR[name]), jax.random.key(5))


@pytest.mark.parametrize("name", sorted(LINEAR) + sorted(NONLINEAR))
def test_no_silent_upcast(name):
    """The output keeps the input's precision: complex64 in, complex64/float32 out."""
    entry = {**LINEAR, **NONLINEAR}[name]
    with x64_for(entry):
        op = build(entry)
        assert op.input_dtype == entry[1]
        assert real_dtype_of(op.output_dtype) == real_dtype_of(op.input_dtype)
        y = op(jnp.zeros(op.input_shape, op.input_dtype))
        assert y.dtype == op.output_dtype
        if op.linear:
            assert op.H(jnp.zeros(op.output_shape, op.output_dtype)).dtype == op.input_dtype


@pytest.mark.parametrize("name", sorted(n for n, e in LINEAR.items() if follows(e)))
def test_dtype_follows_the_data(name):
    """Real in, real out; complex in, complex out (same precision), for A and A^H; the
    complex result is A applied to the real and imaginary parts."""
    entry = LINEAR[name]
    real, cplx = entry[1], complex_dtype_of(entry[1])
    with x64_for(entry):
        op = build(entry)
        assert op.output_dtype == real and op.result_dtype(cplx) == cplx
        rng = np.random.default_rng(0)
        a, b = rng.standard_normal((2, *op.input_shape)).astype(real)
        y = op(a + 1j * b)
        assert y.dtype == cplx
        np.testing.assert_allclose(y.real, op(a), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(y.imag, op(b), rtol=1e-5, atol=1e-5)
        c, d = rng.standard_normal((2, *op.output_shape)).astype(real)
        x = op.H(c + 1j * d)
        assert x.dtype == cplx and op.H(c).dtype == real
        np.testing.assert_allclose(x.real, op.H(c), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(x.imag, op.H(d), rtol=1e-5, atol=1e-5)


def test_every_dtype_following_operator_is_registered_unpinned():
    """Each operator that follows the data has registry entries built without input_dtype
    in single and double precision, so its adjoint is tested on real and complex inputs."""
    for precision in ("float32", "float64"):
        built = set()
        for entry in LINEAR.values():
            if follows(entry) and entry[1].name == precision:
                with x64_for(entry):
                    op = build(entry)
                built |= _classes(op)
        assert FOLLOWING - built == set(), precision


def _classes(op):
    """Names of the operator classes in ``op`` (itself and the operators it wraps)."""
    found, stack = set(), [op]
    while stack:
        node = stack.pop()
        found.add(type(node).__name__)
        stack += [v for v in vars(node).values() if isinstance(v, O.Operator)]
    return found


def test_registry_covers_catalogue():
    """Every public operator class is built by some factory (register new ones)."""
    built = set()
    for entry in {**LINEAR, **NONLINEAR}.values():
        with x64_for(entry):
            op = build(entry)
        for leaf in jax.tree_util.tree_leaves(op, is_leaf=lambda n: isinstance(n, O.Operator)):
            built.add(type(leaf).__name__)
        stack = [op]
        while stack:
            node = stack.pop()
            built.add(type(node).__name__)
            stack += [v for v in vars(node).values() if isinstance(v, O.Operator)]
    public = {
        name
        for name, obj in vars(O).items()
        if inspect.isclass(obj)
        and issubclass(obj, O.Operator)
        and obj not in (O.Operator, O.LinearOperator)
    }
    assert public - built == set(), (
        f"operators missing from tests/operators/registry.py: {public - built}"
    )


def test_every_dtype_is_exercised():
    dtypes = {entry[1].name for entry in LINEAR.values()}
    assert dtypes == {"float32", "float64", "complex64", "complex128"}


def _family(name: str) -> str:
    """A registry entry's operator family: its name without the dtype suffix."""
    for suffix in ("float32", "float64", "complex64", "complex128"):
        name = name.removesuffix("-" + suffix)
    return name.removesuffix("-follows")


@pytest.mark.parametrize("name", sorted(LINEAR))
def test_declared_unitary_factorization_holds(name):
    """Every declared ``A = U B`` has ``U`` unitary, ``U B = A`` and preserves residuals."""
    with x64_for(LINEAR[name]):
        op = build(LINEAR[name])
        if op.unitary_factorization() is not None:  # which ones must: the test below
            cc.testing.check_unitary_factorization(op, jax.random.key(6))


# The structured operators of the catalogue: each must declare its factorization.
_MUST_FACTOR = {
    "convolve-circular",
    "convolve-complex-kernel",
    "fft",
    "fft-forward-norm",
    "angular-spectrum",
    "fresnel-stack",
    "pupil",
    "pupil-zernike-batch",
    "fraunhofer",
    "gram-of-circular-convolve",
    "composition-propagator-of-pad",
    "shift-odd-one-axis",
    "incoherent-imaging",
}


def test_structured_operators_declare_their_factorization():
    declared = set()
    for name, entry in LINEAR.items():
        with x64_for(entry):
            if build(entry).unitary_factorization() is not None:
                declared.add(_family(name))
    assert _MUST_FACTOR <= declared, sorted(_MUST_FACTOR - declared)

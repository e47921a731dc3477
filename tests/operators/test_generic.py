"""Generic tests run on every operator factory in the registry, in every dtype."""

import inspect

import jax
import jax.numpy as jnp
import pytest

import calcil as cc
from calcil import operators as O
from calcil.operators._dtypes import real_dtype_of
from tests.operators.registry import LINEAR, NONLINEAR, build, x64_for


@pytest.mark.parametrize("name", sorted(LINEAR))
def test_adjoint_dot_product(name):
    with x64_for(LINEAR[name]):
        op = build(LINEAR[name])
        error = cc.testing.check_adjoint(op, jax.random.key(3))
    assert error < cc.testing.default_rtol(op.input_dtype)


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

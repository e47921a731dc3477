"""Full-precision contractions: on GPUs a float32 dot/einsum/matmul with the default precision
may run in TF32 (10-bit mantissa), which changed vmapped Pupil images by 3e-4. Every
contraction in calcil asks for ``Precision.HIGHEST``; these tests read the lowered programs
(on any backend, CI's CPU included) and the source, so a new contraction cannot forget it.
"""

import ast
import re
from pathlib import Path

import jax
import jax.numpy as jnp
import optax
import pytest

import calcil as cc
from calcil.solvers._chunk import initial_state
from tests.operators.registry import LINEAR, NONLINEAR

CONTRACTION = re.compile(r"stablehlo\.(dot_general|convolution)\b")
HIGHEST = "precision = [HIGHEST, HIGHEST]"


def low_precision_contractions(fn, *args) -> list[str]:
    """The contractions in ``jax.jit(fn).lower(*args)`` that do not ask for HIGHEST."""
    text = jax.jit(fn).lower(*args).as_text()
    return [
        line.strip()
        for line in text.splitlines()
        if CONTRACTION.search(line) and HIGHEST not in line
    ]


def test_the_check_sees_a_default_precision_contraction():
    basis = jnp.ones((3, 8, 8))
    default = low_precision_contractions(lambda c: jnp.tensordot(c, basis, axes=1), jnp.ones(3))
    assert len(default) == 1 and "DEFAULT" in default[0]
    highest = lambda c: jnp.tensordot(c, basis, axes=1, precision=jax.lax.Precision.HIGHEST)  # noqa: E731
    assert low_precision_contractions(highest, jnp.ones(3)) == []


SINGLE = ("float32", "complex64")


@pytest.mark.parametrize(
    "name", [n for n in {**LINEAR, **NONLINEAR} if n.rsplit("-", 1)[1] in SINGLE]
)
def test_operators_lower_to_full_precision_contractions(name):
    factory, dtype = {**LINEAR, **NONLINEAR}[name]
    op = factory(dtype)
    x = jnp.zeros(op.input_shape, op.input_dtype or dtype)
    assert low_precision_contractions(lambda o, x: o(x), op, x) == []
    if isinstance(op, cc.operators.LinearOperator):
        y = jnp.zeros(op.output_shape, op.output_dtype or op(x).dtype)
        assert low_precision_contractions(lambda o, y: o.H(y), op, y) == []


def test_pupil_zernike_gradients_and_solver_steps_are_full_precision():
    """The Zernike sum forward, its transpose in the gradient, and a whole solver chunk."""
    shape = (32, 32)
    field = jnp.ones(shape, jnp.complex64)

    def image(coefficients):
        P = cc.operators.Pupil(shape, dx=0.5, wavelength=0.5, na=0.4, zernike=coefficients)
        return jnp.abs(P(field)) ** 2

    assert low_precision_contractions(jax.grad(lambda c: jnp.sum(image(c))), jnp.zeros(6)) == []

    obj = cc.Objective(
        lambda p, b: image(p["z"]),
        cc.losses.L2("y"),
        priors={"z": 1e-3 * cc.priors.L2()},
    )
    solver = cc.GradientSolver(obj, optimizer=optax.adam(1e-2))
    init, data = {"z": jnp.zeros(6)}, {"y": jnp.ones(shape)}
    solver.run(init, data, iterations=2, log_every=2, progress=False)
    (chunk,) = solver._compiled.values()
    _, inner, _ = solver._prepare(init, data, None, None)
    text = chunk.lower(initial_state(init, inner, 0), data).as_text()
    assert "dot_general" in text
    assert [l for l in text.splitlines() if CONTRACTION.search(l) and HIGHEST not in l] == []


CONTRACTING_FUNCTIONS = {"dot", "einsum", "matmul", "tensordot", "inner", "dot_general", "conv"}
CONTRACTING_FUNCTIONS |= {"conv_general_dilated", "batch_matmul"}


def test_every_contraction_in_the_source_passes_a_precision():
    """``jnp.dot``/``einsum``/``matmul``/``tensordot``/``lax.dot_general``/``lax.conv`` calls in
    calcil's source name ``precision=``; ``array @ array`` is not used (it cannot)."""
    root = Path(cc.__file__).parent
    missing = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            owner = ast.unparse(node.func.value)
            if node.func.attr in CONTRACTING_FUNCTIONS and owner in {
                "jnp",
                "lax",
                "jax.lax",
                "jax.numpy",
                "np",
            }:
                if owner == "np":
                    continue  # NumPy on the host: always full precision
                if not any(k.arg == "precision" for k in node.keywords):
                    missing.append(
                        f"{path.relative_to(root)}:{node.lineno} {ast.unparse(node)[:60]}"
                    )
    assert missing == [], "contractions without precision=jax.lax.Precision.HIGHEST: " + "; ".join(
        missing
    )
